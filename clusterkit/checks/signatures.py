"""The fatal-signature scan: every input, recognized or not, is read for lines that mean a broken node.

A GPU that fell off the bus, a driver that lost its device, an Xid the catalogue calls fatal, a test
that failed, a power supply that died: such a line fails the node whatever file it sits in and
whatever the file's own checks concluded. The scan runs after a node's checks; a signature that a
check already reported (the same finding code, or one its family names) is not repeated, so it only
adds what the kind-specific checks missed: a fatal line in a file of another kind, in a fragment, or
in text clusterkit does not recognize at all.

The signatures come from the tables the checks already use (the Xid catalogue, the kernel-log rules
with severity `fail`, NCCL's fatal-line rule) plus the few tool messages below.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

from clusterkit.evidence.bundle import EvidenceError
from clusterkit.evidence.kinds import kind_of_path
from clusterkit.evidence.needles import Prefilter
from clusterkit.evidence.normalize import MAX_LINE_CHARS
from clusterkit.evidence.text import clean
from clusterkit.checks.registry import check
from clusterkit.results import CheckResult, Finding

if TYPE_CHECKING:
    from clusterkit.analysis import NodeContext
    from clusterkit.checks.kernel_log_rules import KernelLogRule

CHECK_ID = "evidence.fatal_signatures"
SCAN_MAX_CHARS = 16 * 1024 * 1024
# clusterkit's own snapshots and traces: data it wrote, not messages a tool printed
_OWN_KINDS = {"nvml-json", "power-trace", "power-trace-columns", "fabric-counters", "nccl-localize"}


@dataclass(frozen=True)
class Signature:
    code: str
    pattern: re.Pattern[str]
    component: Callable[[re.Match[str]], str]
    action: str
    meaning: str
    covered_by: tuple[str, ...] = ()   # finding-code prefixes that already say this


def _sig(code: str, pattern: str, meaning: str, action: str, component: str | Callable[[re.Match[str]], str],
         covered_by: tuple[str, ...] = (), flags: int = 0) -> Signature:
    comp = component if callable(component) else (lambda _m, c=component: c)
    return Signature(code, re.compile(pattern, flags), comp, action, meaning, (code,) + covered_by)


def _gpu(m: re.Match[str]) -> str:
    bus = m.groupdict().get("bus")
    return f"GPU at PCI {bus}" if bus else "GPU"


# Tool messages that mean a lost GPU, a dead driver, a failed test or a dead power supply.
TOOL_SIGNATURES: list[Signature] = [
    _sig("GPU_UNREADABLE", r"Unable to determine the device handle for GPU\s*(?P<bus>[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d)?",
         "NVML cannot reach the GPU (GPU lost)", "drain the node; reset the GPU or reboot; reseat/RMA if it stays lost", _gpu,
         ("GPU_XID_79", "GPU_LOST", "GPU_COUNT")),
    _sig("GPU_UNREADABLE", r"\bGPU is lost\b", "the driver reports the GPU lost",
         "drain the node; reset the GPU or reboot; reseat/RMA if it recurs", "GPU", ("GPU_XID_79", "GPU_LOST", "GPU_COUNT")),
    _sig("GPU_UNREADABLE", r"^\|.*\bERR!", "nvidia-smi shows ERR! for a GPU (GPU lost or unreadable)",
         "drain the node; check `nvidia-smi -q` and the kernel log for Xid 79; reset the GPU or reboot; RMA if it recurs",
         "GPU row of nvidia-smi", ("GPU_XID_79", "GPU_LOST", "GPU_COUNT", "GPU_FAN_ERR", "NVSMI_FIELD_UNKNOWN_ERROR")),
    _sig("GPU_XID_79", r"fallen off the bus", "a GPU has fallen off the bus",
         "drain the node; check node power delivery (PSUs, cabling) and reseat the GPU; RMA if it recurs", "GPU",
         ("GPU_UNREADABLE", "GPU_LOST")),
    _sig("NVSMI_DRIVER_MISMATCH", r"Driver/library version mismatch", "user-space NVML differs from the loaded driver",
         "reload the nvidia kernel modules (or reboot) so the driver matches the installed library", "NVIDIA driver"),
    _sig("NVSMI_NO_DRIVER", r"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver",
         "no NVIDIA driver is loaded", "rebuild/load the driver for the running kernel (dkms status; modprobe nvidia)",
         "NVIDIA driver"),
    _sig("NCCL_TEST_FAILED", r"Test (?:NCCL|CUDA) failure\b.*|\bunhandled (?:system|cuda) error\b.*",
         "the NCCL/CUDA test failed", "read the failing line: it names the HCA, GPU or service to fix; rerun the test",
         "NCCL test"),
    _sig("POWER_PSU_FAILED", r"Power Supply.*\|\s*(?:Failure detected|Power Supply AC lost|AC lost|Predictive failure)\s*\|\s*Asserted",
         "a power supply reports a failure in the event log", "check the PSU's AC feed and cord, then reseat or replace it",
         "PSU", ("POWER_PSU",), re.I),
    # an event ('... | Redundancy Lost | Asserted', 'Power supply redundancy is lost'), never the bracketed
    # state lists of `ipmitool sdr -v` ('[Redundancy Lost]' under Assertions Enabled): power.psu reads those
    _sig("POWER_PSU_REDUNDANCY_LOST", r"(?<!\[)\bRedundancy (?:is |has been )?Lost\b(?!\s*\])(?!.*\|\s*Deasserted)",
         "power supply redundancy lost",
         "find the failed or unplugged PSU (ipmitool sdr type 'Power Supply') and restore its feed", "PSU redundancy",
         ("POWER_PSU",), re.I),
]


_NCCL = next(s for s in TOOL_SIGNATURES if s.code == "NCCL_TEST_FAILED")
_XID_LINE = re.compile(r"Xid")


@dataclass
class Hit:
    sig: Signature
    path: str
    lineno: int
    line: str
    component: str


def _rule_signature(rule: "KernelLogRule") -> Signature:
    return Signature(rule.code, rule.pattern, rule.component, rule.action, rule.description, (rule.code,))


def _scan_text(path: str, text: str) -> Iterator[Hit]:
    from clusterkit.checks.kernel_log_rules import scan as scan_rules
    from clusterkit.parsers.kernel_log import parse_kernel_log
    from clusterkit.parsers.nccl_tests import is_fatal_nccl_line
    from clusterkit.parsers.xid import UNKNOWN_XID, XID_CATALOGUE, parse_xid_message

    lines = parse_kernel_log(text)   # any text: normalized lines (multi-line driver messages joined)
    for ln in lines:
        line = ln.message[:MAX_LINE_CHARS]
        xid = parse_xid_message(line)
        info = XID_CATALOGUE.get(xid.xid, UNKNOWN_XID) if xid is not None else None
        if xid is not None and info is not None and info.severity == "fail":
            comp = f"GPU at PCI {xid.bus_id}" if xid.bus_id else "GPU"
            yield Hit(Signature(f"GPU_XID_{xid.xid}", _XID_LINE, lambda _m: comp, info.action,
                                f"Xid {xid.xid}: {info.meaning}", (f"GPU_XID_{xid.xid}",)),
                      path, ln.lineno, line, comp)
            continue
        if is_fatal_nccl_line(line):
            yield Hit(_NCCL, path, ln.lineno, line, "NCCL test")
            continue
        for sig in TOOL_SIGNATURES:
            m = sig.pattern.search(line)
            if m:
                yield Hit(sig, path, ln.lineno, line, sig.component(m))
                break
    # the kernel-log rules as the host.kernel_log check applies them (counts, exceptions, what supersedes what)
    for h in scan_rules(lines):
        if h.severity == "fail":
            yield Hit(_rule_signature(h.rule), path, h.first.lineno, h.first.message[:MAX_LINE_CHARS], h.component)


def scan_patterns() -> list[re.Pattern[str]]:
    """Every pattern that can make a hit in `_scan_text` (keep the two in step)."""
    from clusterkit.checks.kernel_log_rules import RULES
    from clusterkit.parsers.nccl_tests import NCCL_FATAL_PATTERNS
    from clusterkit.parsers.xid import XID_PATTERNS

    return ([s.pattern for s in TOOL_SIGNATURES] + [r.pattern for r in RULES if r.severity == "fail"]
            + list(NCCL_FATAL_PATTERNS) + list(XID_PATTERNS))


@functools.lru_cache(maxsize=1)
def _prefilter() -> Prefilter:
    """A file that holds none of the scan patterns' literals is not normalized and scanned at all
    (most files of a healthy node)."""
    return Prefilter(scan_patterns())


def _files(ctx: "NodeContext") -> Iterator[tuple[str, str]]:
    for path in ctx.bundle.paths():
        k = kind_of_path(path)
        if k is not None and k.name.split("@")[0] in _OWN_KINDS:
            continue
        try:
            text = ctx.text(path)
        except EvidenceError:
            continue
        if text and len(text) <= SCAN_MAX_CHARS and _prefilter().might_match(clean(text)):
            yield path, text


@check(CHECK_ID, after_others=True)
def scan(ctx: "NodeContext", results: list[CheckResult]) -> CheckResult | None:
    """Fatal lines (lost GPU, fatal Xid, failed test, dead PSU...) in any input that no other check reported."""
    # What a check already judged, at whatever severity (a profile may ignore an Xid on purpose);
    # an `error` finding only says the check could not judge, so the line still counts.
    reported = {f.code for r in results for f in r.findings if f.severity != "error"}
    findings: dict[tuple[str, str], tuple[Finding, int]] = {}
    for path, text in _files(ctx):
        for hit in _scan_text(path, text):
            if any(c.startswith(p) for c in reported for p in hit.sig.covered_by):
                continue
            key = (hit.sig.code, hit.component)
            if key in findings:
                f, n = findings[key]
                findings[key] = (f, n + 1)
                continue
            findings[key] = (Finding(hit.sig.code, "fail", hit.component, f"{hit.sig.meaning}: {hit.line[:240]}",
                                     action=hit.sig.action, evidence=f"{hit.path}:{hit.lineno}"), 1)
    if not findings:
        return None
    out = []
    for f, n in findings.values():
        if n > 1:
            f.observed, f.unit = n, "lines"
        out.append(f)
    return CheckResult.from_findings(CHECK_ID, out, "no fatal signature")
