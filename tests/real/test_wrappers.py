"""Wrapper invariance and the fatal-signature rule, as properties over every real output we have.

A user pastes what the terminal showed: a log prefix, a prompt, a markdown quote, a pdsh host prefix.
Rendering a real output (../shared/real-outputs and tests/real/corpus) through any wrapper users
paste must give the verdict and finding codes of the unwrapped output. And no input that holds a
fatal line (a lost GPU, a failed test, a dead PSU) may pass, wherever the line lands.
The wrappers are transforms written from the tools' documentation (dmesg(1), journalctl(1)
--output, RFC 5424, the CRI log format, pdsh(1), clush(1)); the outputs they wrap are real.
"""

from __future__ import annotations

import functools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterkit.evidence.text import strip_source_header
from tests.conftest import REAL_OUTPUTS
from tests.real.corpus import corpus_files, verdict

T0 = 1737128217.683113   # 2025-01-17 15:36:57 UTC


def _stamp(i: int) -> float:
    return 12.5 + 0.25 * i


# Journal/syslog wrappers name the program that logged the line: the kernel for kernel messages, another
# program for any other text (a user never finds nvidia-smi's screen in the kernel's journal).
WRAPPERS = {
    "dmesg": lambda i, l: f"[{_stamp(i):12.6f}] {l}",
    "dmesg -T": lambda i, l: f"[Fri Jan 17 15:36:{57 + i // 100 % 3:02d} 2025] {l}",
    "dmesg --decode": lambda i, l: f"kern  :warn  : [{_stamp(i):12.6f}] {l}",
    "dmesg --decode --time-format iso": lambda i, l: f"kern  :warn  : 2025-01-17T15:36:57,{683113 + i:06d}+00:00 {l}",
    "dmesg --time-format iso": lambda i, l: f"2025-01-17T15:36:57,{683113 + i:06d}+00:00 {l}",
    "dmesg --time-format reltime": lambda i, l: f"[Jan17 15:36] {l}" if i == 0 else f"[  +0.{i:06d}] {l}",
    "dmesg --time-format delta": lambda i, l: f"[<    0.{i:06d}>] {l}",
    "journalctl short": lambda i, l, p: f"Jan 17 15:36:57 gpu07 {p}: {l}",
    "journalctl short-iso": lambda i, l, p: f"2025-01-17T15:36:57+0000 gpu07 {p}: {l}",
    "journalctl short-precise": lambda i, l, p: f"Jan 17 15:36:57.{683113 + i:06d} gpu07 {p}: {l}",
    "journalctl short-monotonic": lambda i, l, p: f"[{_stamp(i):12.6f}] gpu07 {p}: {l}",
    "syslog with kernel stamp": lambda i, l, p: f"Jan 17 15:36:57 gpu07 {p}: [{_stamp(i):12.6f}] {l}",
    "RFC 5424": lambda i, l, p: f"<4>1 2025-01-17T15:36:57.683113Z gpu07 {p.split('[')[0]} - - - {l}",
    "bare program:": lambda i, l, p: f"{p}: {l}",
    "containerd CRI": lambda i, l: f"2025-01-17T15:36:57.{683113 + i:06d}Z stdout F {l}",
    "kubectl --timestamps": lambda i, l: f"2025-01-17T15:36:57.{683113 + i:06d}000Z {l}",
    "Talos": lambda i, l: f"172.20.0.2: kern: warning: [2025-01-17T15:36:57.{683113 + i:06d}Z]: {l}",
    "pdsh": lambda i, l: f"gpu07: {l}",
    "srun -l": lambda i, l: f"0: {l}",
    "indented": lambda i, l: f"    {l}",
}
WHOLE = {   # wrappers of the whole paste, not of each line
    "markdown fence": lambda t: "```text\n" + t + "\n```\n",
    "markdown quote": lambda t: "\n".join("> " + l if l else ">" for l in t.split("\n")),
    "shell prompt": lambda t: "root@gpu07:~# the-tool --its-options\n" + t + "\nroot@gpu07:~# ",
    "CRLF": lambda t: t.replace("\n", "\r\n"),
    "ANSI colour": lambda t: "\x1b[0m" + t.replace("ERR!", "\x1b[31mERR!\x1b[0m").replace("Fail", "\x1b[1;31mFail\x1b[0m"),
    "clush -b": lambda t: "---------------\ngpu[07]\n---------------\n" + t,
}


def wrap(text: str, name: str, prog: str = "kernel") -> str:
    if name in WHOLE:
        return WHOLE[name](text)
    f = WRAPPERS[name]
    if f.__code__.co_argcount == 3:
        return "\n".join(f(i, l, prog) for i, l in enumerate(text.split("\n")))
    return "\n".join(f(i, l) for i, l in enumerate(text.split("\n")))


@functools.lru_cache(maxsize=None)
def program(i: int) -> str:
    """What a journal would name as the program that printed sample i."""
    from clusterkit.evidence.kinds import sniff
    from clusterkit.plugins import load_all

    load_all()
    k = sniff(SAMPLES[i][1])
    return "kernel" if k is not None and k.name == "kernel-log" else "collector[4242]"


def _shared() -> list[tuple[str, str]]:
    if not REAL_OUTPUTS.is_dir():
        return []
    return [(p.name, strip_source_header(p.read_text(errors="replace"))) for p in sorted(REAL_OUTPUTS.glob("*.txt"))]


SAMPLES = _shared() + [(f.id, f.text) for f in corpus_files()]
ALL_WRAPPERS = sorted(WRAPPERS) + sorted(WHOLE)


@functools.lru_cache(maxsize=None)
def baseline(i: int) -> tuple[str, frozenset[str]]:
    status, codes = verdict(SAMPLES[i][1], "paste.txt")
    return status, frozenset(codes)


def _plan() -> list[tuple[int, str]]:
    """Every wrapper on every shared output, and each corpus file through three wrappers (rotating)."""
    n_shared = len(_shared())
    out = [(i, w) for w in ALL_WRAPPERS for i in range(n_shared)]
    rng = random.Random(12)
    for i in range(n_shared, len(SAMPLES)):
        out += [(i, w) for w in rng.sample(ALL_WRAPPERS, 3)]
    return out


@pytest.mark.parametrize("i,wrapper", [pytest.param(i, w, id=f"{SAMPLES[i][0]}|{w}") for i, w in _plan()])
def test_wrapped_output_gets_the_same_verdict(i: int, wrapper: str):
    name, text = SAMPLES[i]
    want = baseline(i)
    status, codes = verdict(wrap(text, wrapper, program(i)), "paste.txt")
    assert (status, frozenset(codes)) == want, f"{name} wrapped in {wrapper!r}: {status} {sorted(codes)} != {want}"


# ---- truncation: what a cut paste keeps, it is judged on ------------------------------------------------

FATAL_LINES = [   # real-format lines each meaning a broken node (formats from the driver, nvidia-smi, NCCL, ipmitool)
    "NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.",
    "NVRM: Xid (PCI:0000:8a:00): 48, pid=91237, name=python3, An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 4, subpartition 1.",
    "NVRM: GPU 0000:5d:00.0: GPU has fallen off the bus.",
    "Unable to determine the device handle for GPU 0000:3B:00.0: Unknown Error",
    "|   3  NVIDIA H100 80GB HBM3          On  |   00000000:3B:00.0 Off |                  ERR! |",
    "gpu07:1234:1290 [3] NCCL WARN NET/IB : Got async event : port error",
    "gpu07: Test NCCL failure common.cu:1005 'unhandled system error (run with NCCL_DEBUG=INFO for details)'",
    "  1a | 01/17/2025 | 15:36:57 | Power Supply PS2 | Failure detected | Asserted",
    "Failed to initialize NVML: Driver/library version mismatch",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(i=st.integers(0, len(SAMPLES) - 1), fatal=st.sampled_from(FATAL_LINES), where=st.floats(0, 1),
       wrapper=st.sampled_from([None] + ALL_WRAPPERS))
def test_no_input_with_a_fatal_line_passes(i: int, fatal: str, where: float, wrapper: str | None):
    """Insert a fatal line anywhere into any real output (wrapped or not): the verdict is fail."""
    lines = SAMPLES[i][1].split("\n")
    k = int(where * len(lines))
    text = "\n".join(lines[:k] + [fatal] + lines[k:])
    status, codes = verdict(wrap(text, wrapper, program(i)) if wrapper else text, "paste.txt")
    assert status == "fail", f"{SAMPLES[i][0]} + {fatal!r} at line {k} ({wrapper}): {status} {sorted(codes)}"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(i=st.integers(0, len(SAMPLES) - 1), head=st.integers(0, 40), tail=st.integers(0, 40), fatal=st.sampled_from(FATAL_LINES))
def test_a_cut_paste_that_keeps_a_fatal_line_still_fails(i: int, head: int, tail: int, fatal: str):
    """Users paste half an output: cut lines off either end at a line boundary, keeping a fatal line inside."""
    lines = SAMPLES[i][1].split("\n")
    mid = len(lines) // 2
    lines = lines[:mid] + [fatal] + lines[mid:]
    cut = lines[min(head, mid):len(lines) - min(tail, len(lines) - mid - 1)]
    status, codes = verdict("\n".join(cut), "paste.txt")
    assert status == "fail", f"{SAMPLES[i][0]} cut {head}/{tail} around {fatal!r}: {status} {sorted(codes)}"
