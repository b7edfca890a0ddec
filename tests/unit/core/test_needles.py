"""The literal prefilter never rules out a text a pattern matches (property tests on every pattern the
fatal-signature scan uses), and rules out the usual healthy outputs."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterkit.checks.signatures import _prefilter, scan, scan_patterns
from clusterkit.evidence.needles import Prefilter, required_literals
from clusterkit.evidence.text import clean
from clusterkit.plugins import load_all

load_all()


@pytest.mark.parametrize("pattern", scan_patterns(), ids=lambda p: p.pattern[:40])
def test_every_text_a_scan_pattern_matches_passes_the_prefilter(pattern):
    pre = Prefilter([pattern])
    assert not pre.always, f"no literal found in {pattern.pattern!r}: the scan would read every file"

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(st.from_regex(pattern), st.text(max_size=20), st.text(max_size=20))
    def check(match, before, after):
        text = before + match + after
        if pattern.search(text):
            assert pre.might_match(text), (pattern.pattern, text)

    check()


@pytest.mark.parametrize("pattern,ruled_out,kept", [
    (r"NVRM:\s*Xid\s*\((\S+)\)", ["NVRM: loading NVIDIA UNIX", "Xid"], ["NVRM:  Xid (PCI:0000:1b:00)"]),
    (r"probe with driver nvidia failed|RmInitAdapter failed", ["nvidia driver 550 loaded"],
     ["NVRM: RmInitAdapter failed! (0x22:0x38:852)", "probe with\n driver nvidia failed"]),
    (r"(?:EXT4-fs|XFS) (?:error|\(\S+\): Corruption)", ["EXT4-fs (md0): mounted", "XFS (sda1): Mounting V5"],
     ["EXT4-fs error (device md0)", "XFS (sda1): Corruption detected"]),
    (r"(?i)power supply.*lost", ["PS1 | Power Supply | ok", "redundancy lost"], ["POWER SUPPLY 2: AC LOST"]),
    (r"^(?=.*?EDAC )(?=.*?\bUE\b)", ["mce: CPU0 thermal"], ["EDAC MC0: 1 UE on DIMM_A1"]),   # a lookahead's words
])
def test_required_words(pattern, ruled_out, kept):
    pre = Prefilter([re.compile(pattern)])
    assert not any(pre.might_match(t) for t in ruled_out) and all(pre.might_match(t) for t in kept)


def test_a_pattern_without_a_required_word_rules_nothing_out():
    assert required_literals(re.compile(r"a.b|xy")) is None
    assert Prefilter([re.compile(r"a.b|xy"), re.compile("fallen off")]).might_match("anything")


def test_case_folding_and_wrapped_logs_are_never_ruled_out():
    pre = Prefilter([re.compile(r"Redundancy Lost", re.I)])
    assert pre.might_match("PS1 | REDUNDANCY LOST | ok") and not pre.might_match("PS1 | Fully Redundant")
    assert pre.might_match("PS1 | redundancy loſt")              # non-ASCII: scanned, the regex folds 'ſ'
    assert pre.might_match('{"log":"Redundancy \\u004cost\\n","stream":"stdout"}')   # decoded by normalization


def test_a_colored_fatal_line_is_still_found():
    from clusterkit.analysis import NodeContext
    from clusterkit.evidence.bundle import Bundle
    from clusterkit.profiles import load_profile

    line = "\x1b[31mNVRM: Xi\x1b[0md (PCI:0000:1b:00): 79, pid=1, GPU has fallen off the bus.\n"
    assert _prefilter().might_match(clean(line))
    b = Bundle.virtual("n", {"notes/paste.txt": line})
    res = scan(NodeContext("n", b, load_profile("base")), [])
    assert res is not None and res.findings[0].code == "GPU_XID_79"


def test_a_message_split_over_two_lines_is_still_found():
    """The kernel-log parser joins an indented continuation line to its message: a phrase may span
    lines in the file, so the prefilter looks for single words."""
    from clusterkit.analysis import NodeContext
    from clusterkit.evidence.bundle import Bundle
    from clusterkit.profiles import load_profile

    text = ("[ 1302.612043] NVRM: The NVIDIA GPU 0000:b3:00.0 (PCI ID: 10de:20b2) installed in this system has\n"
            "               NVRM: fallen off the bus and is not responding to commands.\n")
    assert _prefilter().might_match(text)
    b = Bundle.virtual("n", {"notes/dmesg-paste.txt": text})
    res = scan(NodeContext("n", b, load_profile("base")), [])
    assert res is not None and {f.code for f in res.findings} == {"GPU_XID_79"}


_LINE = st.one_of(
    st.text(max_size=60),
    st.from_regex(r"\[ *[0-9]{1,6}\.[0-9]{6}\] [ -~]{0,40}", fullmatch=True),
    st.from_regex(r"(Nov|Dec) [ 0-9]{2} [0-9:]{8} [a-z0-9-]{1,8} [a-z_-]{1,10}(\[[0-9]+\])?: [ -~]{0,30}", fullmatch=True),
    st.from_regex(r"20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:]{8}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:?[0-9]{2})? [ -~]{0,30}",
                  fullmatch=True),
    st.from_regex(r"(kern|user|daemon) *: *(warn|err|info) *: [ -~]{0,30}", fullmatch=True),
    st.from_regex(r"<[0-9]{1,3}>1? ?[ -~]{0,40}", fullmatch=True),
    st.from_regex(r"([a-z]+@[a-z0-9-]+:~[#$] |\$ |# |bash-4\.2# |\[root@n1 ~\]# )[ -~]{0,30}", fullmatch=True),
)


@settings(max_examples=300, deadline=None)
@given(_LINE)
def test_the_combined_layer_and_prompt_tests_match_where_one_of_their_patterns_does(line):
    from clusterkit.evidence import normalize as n

    assert (n._ANY_LAYER.match(line) is not None) == any(p.match(line) for p, _ in n._LAYERS)
    assert (n._ANY_PROMPT.match(line) is not None) == any(p.match(line) for p in n._PROMPTS)
