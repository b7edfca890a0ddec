"""Kernel log scan framework: families register message patterns with a finding.

`host.kernel_log` applies every rule to the parsed log and counts repeats, so a
storm of 1,000 identical errors is one finding with a count, not 1,000 lines.

Rules are matched on a message's first MAX_MATCH_CHARS characters (clusterkit/parsers/
kernel_log.py), and must be linear in its length: no `X.*Y` that a long line of many
X's makes quadratic (anchor at the first X atomically: `^(?>.*?X).*Y`), no lazy group
before a blank run (end the group in a non-blank). tests/unit/core/test_parser_time.py holds
every rule to that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from clusterkit.parsers.kernel_log import MAX_MATCH_CHARS, LogLine


@dataclass(frozen=True)
class KernelLogRule:
    code: str
    pattern: re.Pattern[str]
    severity: str                       # fail | warn | info
    action: str
    component: Callable[[re.Match[str]], str]
    description: str


RULES: list[KernelLogRule] = []


def kernel_log_rule(code: str, pattern: str, severity: str, action: str, description: str,
                    component: Callable[[re.Match[str]], str] | str = "kernel") -> None:
    comp = component if callable(component) else (lambda _m, c=component: c)
    RULES.append(KernelLogRule(code, re.compile(pattern), severity, action, comp, description))


@dataclass
class RuleHit:
    rule: KernelLogRule
    component: str
    count: int
    first: LogLine
    last: LogLine


def scan(lines: list[LogLine], ignore: list[str] | None = None) -> list[RuleHit]:
    """Every rule hit grouped by (code, component), in order of first appearance."""
    ign = [re.compile(p) for p in (ignore or [])]
    hits: dict[tuple[str, str], RuleHit] = {}
    for line in lines:
        message = line.message[:MAX_MATCH_CHARS]
        if ign and any(p.search(message) for p in ign):
            continue
        for rule in RULES:
            m = rule.pattern.search(message)
            if m:
                comp = rule.component(m)
                key = (rule.code, comp)
                if key in hits:
                    hits[key].count += 1
                    hits[key].last = line
                else:
                    hits[key] = RuleHit(rule, comp, 1, line, line)
    return list(hits.values())


# Host-level rules; the GPU and fabric families add theirs in their own modules.
kernel_log_rule("HOST_MCE_HARDWARE_ERROR", r"mce: \[Hardware Error\]|Machine check events logged", "fail",
                "run `ras-mc-ctl --errors` / check the BMC SEL for the failing DIMM or CPU; replace it",
                "machine check exception (CPU or memory hardware error)", "CPU/memory")
kernel_log_rule("HOST_EDAC_UNCORRECTED", r"^(?>(?s:.*?)EDAC ).*(?:UE|Uncorrected|uncorrected)", "fail",
                "replace the DIMM named in the EDAC message", "uncorrected memory error",
                lambda m: "memory (EDAC)")
kernel_log_rule("HOST_PCIE_AER_UNCORRECTED",
                r"^(?>(?s:.*?)AER: (?:Uncorrected|Multiple Uncorrected) ).*error received: (?P<dev>\S+)", "fail",
                "reseat the device or riser at that PCI address; if it repeats, replace it",
                "PCIe uncorrectable error", lambda m: f"PCIe {m.group('dev')}")
kernel_log_rule("HOST_PCIE_AER_CORRECTED", r"AER: Corrected error received: (?P<dev>\S+)", "warn",
                "watch the count; many corrected errors on one device mean a marginal link (reseat)",
                "PCIe corrected error", lambda m: f"PCIe {m.group('dev')}")
kernel_log_rule("HOST_SOFT_LOCKUP", r"soft lockup - CPU#(?P<cpu>\d+) stuck", "warn",
                "look at what ran on that CPU; update BIOS/firmware if it repeats without load",
                "CPU soft lockup", lambda m: f"CPU {m.group('cpu')}")
kernel_log_rule("HOST_HUNG_TASK", r"task (?P<task>\S+):\d+ blocked for more than \d+ seconds", "warn",
                "check the storage or driver the task waits on", "hung task",
                lambda m: f"task {m.group('task')}")
kernel_log_rule("HOST_OOM_KILL", r"Out of memory: Kill(?:ed)? process \d+ \((?P<proc>[^)]+)\)", "warn",
                "the node ran out of memory: size the job or add swap/memory", "OOM killer",
                lambda m: f"process {m.group('proc')}")
kernel_log_rule("HOST_FS_ERROR", r"(?P<fs>EXT4-fs|XFS) (?:error|\(\S+\): (?:Corruption|metadata I/O error))", "fail",
                "unmount and fsck the filesystem; check the disk's SMART data", "filesystem error",
                lambda m: m.group("fs"))
