"""Every parser (every kind's recognizer and parser, the helpers, normalization, recognition, the
kernel-log rules and the fatal-line scan) is linear in its input: lines of 1 MB, each line shape of
its own format stretched to 64 KB, and files of 10^5 lines (at most 10 MB) come back in bounded
time, as a result or a ParseError.

The bound is a complexity check, not a speed figure (benchmarks/parser_long_lines.py measures
those): a linear parser reads 1 MB in well under a second, while a backtracking regex took over
60 s on a 64 KB kernel-log line and never finished on 1 MB. An alarm interrupts a call that
overruns (the re module checks for signals), so a regression fails here instead of hanging."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.parser_inputs import (FILLERS, MB, SHORT_LINES, call_within, hostile_lines, long_line, many_lines,
                                         parsers, registered_kinds, samples, shapes, stretched)

BOUND_S = 10.0
PARSERS = parsers()


def _bounded(func, text: str) -> None:
    # unusable input said as such (ParseError is a ValueError) is an answer; anything else fails here
    if call_within(func, text, BOUND_S, answers=(ValueError,)) is None:
        pytest.fail(f"did not finish within {BOUND_S:g} s on {len(text):,} characters")


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    return samples()


def test_every_parser_is_covered():
    """Every declared kind's recognizer and parser is here (a new kind joins by itself), and so are
    the helpers, normalization, recognition, the rules and the fatal-line scan."""
    funcs = set(PARSERS.values())
    kinds = registered_kinds()
    assert len(kinds) >= 50
    missing = [f"{k.name}.{f.__name__}" for k in kinds for f in (k.sniff, k.parse) if f is not None and f not in funcs]
    assert not missing
    names = {getattr(f, "__name__", "") for f in funcs}
    assert {"parse_kernel_log", "link_event", "parse_xid_message", "parse_nvidia_smi_q", "parse_sdr_psu", "parse",
            "normalize", "normalize_document", "normalize_lines", "_recognize", "_scan_kernel_log",
            "_scan_fatal_lines"} <= names
    assert len(PARSERS) >= 110


def test_most_parsers_get_their_own_format(texts):
    """Samples from the simulator and the real-output corpus reach nearly every parser."""
    without = sorted(n for n in PARSERS if n not in texts)
    assert len(without) <= len(PARSERS) // 10, without


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_a_one_megabyte_line_of_its_own_format(name, texts):
    sample = texts.get(name)
    if sample:   # the longest line of a real-format sample, its second half repeated to 1 MB
        line = max(sample.splitlines(), key=len)
        text = long_line(line[: len(line) // 2], line[len(line) // 2:] or " ")
    else:
        text = long_line("a: ", "a ")
    _bounded(PARSERS[name], text)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_line_shape_of_its_own_format_stretched(name, texts):
    """Each structure of its format (a `key: value` line, a table row, a `# meta` line...) cut in half
    and followed by 64 KB of blanks, letters or digits: a pattern quadratic on any one line takes
    seconds on it (a lazy group before a blank run, a word or a number read from each of its
    characters)."""
    lines = shapes(texts.get(name) or "")
    for filler in (" ", "a", "0"):
        for i in range(0, len(lines), 16):
            _bounded(PARSERS[name], stretched(lines[i:i + 16], filler))


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_a_hundred_thousand_lines(name, texts):
    _bounded(PARSERS[name], many_lines(texts.get(name)))


RECOGNIZERS = {n: f for n, f in PARSERS.items() if f in {k.sniff for k in registered_kinds()}}


@pytest.mark.parametrize("name", sorted(RECOGNIZERS))
def test_a_recognizer_reads_a_run_of_blank_lines_once(name):
    """Recognizers search the whole text: a `^\\s*` under re.M would rescan a run of blank lines from each
    of its line starts (quadratic); within a line it is `[ \\t]*`."""
    _bounded(RECOGNIZERS[name], "x\n" + "\n" * (256 * 1024) + " \n\t" * (64 * 1024) + "x\n")


@pytest.mark.parametrize("filler", SHORT_LINES)
def test_normalization_on_many_short_lines(filler):
    """Normalization decides its layers per document and strips them per line: linear in the lines,
    whatever they look like (blank, quoted, prompts, host prefixes, stamps, fences)."""
    from clusterkit.evidence.normalize import normalize_document

    _bounded(normalize_document, long_line("", filler, 256 * 1024))


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_parser_on_hostile_one_megabyte_lines(texts, data):
    name = data.draw(st.sampled_from(sorted(PARSERS)))
    cases = hostile_lines(texts.get(name), MB)
    label, text = data.draw(st.sampled_from(cases), label="input")
    _bounded(PARSERS[name], text)


def test_the_fillers_include_what_made_the_old_patterns_backtrack():
    """The inputs that hung clusterkit before (issue 18) stay in the sweep."""
    assert {"mlx5_0 port 1 ", "EDAC ", "AER: Uncorrected ", " ", "\n"} <= set(FILLERS)


# The lines of issue 18: a 64 KB kernel-log line took over 60 s (link events, IPMI SDR rows),
# a 1 MB line never finished. Here each is 1 MB.
ISSUE_CASES = {
    "checks.kernel_log_rules.scan": "[   12.000000] " + "EDAC " * 200_000 + "\n",
    "link_events.link_event": "mlx5_core 0000:01:00.0 " + "mlx5_0 port 1 " * 75_000,
    "ipmi.parse_sdr_psu": "PSU1 Status" + " " * MB + "x\n",
    "ipmi.is_sdr": "PS1 Status " + "\t" * MB + "x\n",
    "xid.parse_xid_message": "NVRM: GPU " * 100_000,
    "nvidia_smi.parse_nvidia_smi_q": "GPU 00000000:1B:00.0\n    Product Name" + " " * MB + "x\n",
    "ibstat.parse_ibstat": "CA 'mlx5_0'\n\tPort 1:\n\t\tState" + " " * MB + "x\n",
    "ethtool.is_ethtool_stats": "\n" * MB,
    # found later, by the stretched-lines sweep above: a trace's `# key: value` line
    "power_trace.parse_power_trace": "t_s,gpu,phase,power_w,sm_clock_mhz,temp_c\n# a: a" + " " * MB + "x\n",
}


@pytest.mark.parametrize("name", sorted(ISSUE_CASES))
def test_the_lines_that_hung_clusterkit(name):
    _bounded(PARSERS[name], ISSUE_CASES[name])
