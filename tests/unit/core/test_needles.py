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


@pytest.mark.parametrize("pattern,needles", [
    (r"NVRM:\s*Xid\s*\((\S+)\)", [{"NVRM:"}, {"Xid"}]),
    (r"(?:EXT4-fs|XFS) (?:error|\(\S+\): Corruption)", [{"EXT4-fs", "XFS"}, {"error", "Corruption"}]),
    (r"Test (?:CUDA |NCCL )?failure", [{"Test"}, {"failure"}]),
    (r"a.b|xy", None),                             # nothing three characters long is required
    (r"(?i)power supply.*lost", [{"supply"}, {"lost"}]),      # words: a scan may join lines with a space
    (r"^(?=.*?EDAC )(?=.*?\bUE\b)", [{"EDAC"}]),    # what a lookahead needs is in the line
])
def test_required_literals(pattern, needles):
    got = required_literals(re.compile(pattern))
    assert (None if got is None else sorted((sorted(n.text for n in r) for r in got))) == \
        (None if needles is None else sorted(sorted(s) for s in needles))


def test_case_folding_and_wrapped_logs_are_never_ruled_out():
    pre = Prefilter([re.compile(r"Redundancy Lost", re.I)])
    assert pre.might_match("PS1 | REDUNDANCY LOST | ok") and not pre.might_match("PS1 | Fully Redundant")
    assert pre.might_match("PS1 | redundancy loſt")              # non-ASCII: scanned, the regex folds 'ſ'
    assert pre.might_match('{"log":"Redundancy \\u004cost\\n","stream":"stdout"}')   # decoded by normalization
    assert Prefilter([re.compile(r"..?")]).might_match("anything")


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
