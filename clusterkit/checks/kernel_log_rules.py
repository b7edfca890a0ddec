"""Kernel log scan framework: families register message patterns with a finding.

Each family's check applies its own rules (`family="host"` for host.kernel_log,
"gpu" for gpu.xid, "fabric" for fabric.kernel_log) and counts repeats, so a storm
of 1,000 identical errors is one finding with a count, not 1,000 lines.

Patterns are searched in each message's first MAX_LINE_CHARS characters and must be
linear in its length: a literal anchor first, no nested quantifiers, no `X.*Y` that a
long line of many X's makes quadratic (anchor at the first X: `^(?=.*?X)...` or
`^(?>.*?X).*Y`), no lazy group before a blank run (end the group in a non-blank).
tests/unit/core/test_parser_time.py holds every rule to that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from clusterkit.evidence.normalize import MAX_LINE_CHARS
from clusterkit.parsers.kernel_log import LogLine
from clusterkit.results import Finding


@dataclass(frozen=True)
class KernelLogRule:
    code: str
    pattern: re.Pattern[str]
    severity: str                       # fail | warn | info
    action: str
    component: Callable[[re.Match[str]], str]
    description: str
    family: str = "host"
    unless: re.Pattern[str] | None = None   # a line that also matches this is not a hit
    min_count: int = 1                  # fewer hits than this are reported as info
    superseded_by: tuple[str, ...] = ()   # dropped when a hit of one of these codes exists


RULES: list[KernelLogRule] = []


def kernel_log_rule(code: str, pattern: str, severity: str, action: str, description: str,
                    component: Callable[[re.Match[str]], str] | str = "kernel", *, family: str = "host",
                    unless: str | None = None, min_count: int = 1, superseded_by: tuple[str, ...] = ()) -> None:
    comp = component if callable(component) else (lambda _m, c=component: c)
    RULES.append(KernelLogRule(code, re.compile(pattern), severity, action, comp, description, family,
                               re.compile(unless) if unless else None, min_count, superseded_by))


@dataclass
class RuleHit:
    rule: KernelLogRule
    component: str
    count: int
    first: LogLine
    last: LogLine
    amount: int = 0                     # sum of the numbers the lines report (a pattern's `amount` group)

    @property
    def severity(self) -> str:
        return self.rule.severity if self.count >= self.rule.min_count else "info"


def scan(lines: list[LogLine], ignore: list[str] | None = None, family: str | None = None) -> list[RuleHit]:
    """Every rule hit (of one family, or all) grouped by (code, component), in order of first appearance."""
    ign = [re.compile(p) for p in (ignore or [])]
    rules = [r for r in RULES if family is None or r.family == family]
    hits: dict[tuple[str, str], RuleHit] = {}
    for line in lines:
        msg = line.message[:MAX_LINE_CHARS]
        if ign and any(p.search(msg) for p in ign):
            continue
        for rule in rules:
            m = rule.pattern.search(msg)
            if m and not (rule.unless is not None and rule.unless.search(msg)):
                comp = rule.component(m)
                key = (rule.code, comp)
                amount = int(m.group("amount")) if "amount" in rule.pattern.groupindex and m.group("amount") else 0
                if key in hits:
                    hits[key].count += 1
                    hits[key].last = line
                    hits[key].amount += amount
                else:
                    hits[key] = RuleHit(rule, comp, 1, line, line, amount)
    codes = {k[0] for k in hits}
    return [h for h in hits.values() if not any(c in codes for c in h.rule.superseded_by)]


def hit_findings(hits: list[RuleHit], evidence_path: str) -> list[Finding]:
    """One finding per hit: the rule's code and action, the count, and the first line as evidence."""
    return [Finding(h.rule.code, h.severity, h.component,
                    f"{h.rule.description}" + (f" ({h.count} times)" if h.count > 1 else "") + f": {h.first.message[:160]}",
                    observed=h.count, unit="lines", action=h.rule.action, evidence=f"{evidence_path}:{h.first.lineno}")
            for h in hits]


def _group(name: str, fallback: str, fmt: str = "{}") -> Callable[[re.Match[str]], str]:
    """Component from a named group of the match, or a fixed name when the group did not match."""
    def comp(m: re.Match[str]) -> str:
        v = m.groupdict().get(name)
        return fmt.format(v) if v else fallback
    return comp


# ---- host rules; the GPU and fabric families add theirs in their own modules ------------------

_PCI = r"[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]"
MCE_ACTION = "run `ras-mc-ctl --errors` / check the BMC SEL for the failing DIMM or CPU; replace it"

# A machine check record ('CPU 2: Machine Check: 0 Bank 5: <status>'): bit 61 of the status (UC) is in
# its first hex digit. Bank 128 is not a bank: Linux logs CPU thermal-throttle events there.
kernel_log_rule("HOST_MCE_HARDWARE_ERROR",
                r"Machine Check(?: Exception)?: [0-9a-fA-F]+ Bank (?!128:)\d+: [2367abefABEF][0-9a-fA-F]{15}"
                r"|Kernel panic - not syncing: (?:Fatal )?[Mm]achine check|\[Hardware Error\]: (?:Uncorrected|Deferred) error"
                r"|mce: Uncorrected hardware memory error|Machine check: Processor context corrupt",
                "fail", MCE_ACTION, "uncorrected machine check (CPU or memory hardware error)", "CPU/memory")
kernel_log_rule("HOST_MCE_CORRECTED",
                r"Machine Check(?: Event)?: [0-9a-fA-F]+ Bank (?!128:)\d+: [014589cdCD][0-9a-fA-F]{15}"
                r"|\[Hardware Error\]: Corrected error",
                "warn", "corrected by the hardware: watch the count; the EDAC/SEL record names the DIMM or CPU to replace "
                "if it keeps rising", "corrected machine check", "CPU/memory",
                superseded_by=("HOST_EDAC_CORRECTED", "HOST_EDAC_UNCORRECTED"))
kernel_log_rule("HOST_CPU_THERMAL_THROTTLE",
                r"(?P<cpu>CPU\d+): (?:Core|Package) temperature above threshold|Machine Check: [0-9a-fA-F]+ Bank 128: ",
                "warn", "the CPU overheats: check its heatsink and fans, the inlet temperature and the BIOS fan profile",
                "CPU thermal throttling", "CPU cooling")
# 'Machine check events logged' only says records went to mcelog; alone it is a failure until
# the log shows what they were (then the record's own rule decides).
kernel_log_rule("HOST_MCE_HARDWARE_ERROR", r"Machine check events logged", "fail", MCE_ACTION,
                "machine check events logged (read them with mcelog / ras-mc-ctl)", "CPU/memory (mcelog)",
                superseded_by=("HOST_MCE_CORRECTED", "HOST_EDAC_CORRECTED", "HOST_CPU_THERMAL_THROTTLE",
                               "HOST_EDAC_UNCORRECTED"))
# (anchored lookaheads: one pass over the line, however many 'EDAC' it holds)
kernel_log_rule("HOST_EDAC_UNCORRECTED", r"EDAC (?:\S+ )?MC\d+: \d+ UE |^(?=.*?EDAC )(?=.*?\b(?:UE|[Uu]ncorrect(?:ed|able))\b)",
                "fail", "replace the DIMM named in the EDAC message", "uncorrected memory error",
                lambda m: "memory (EDAC)")
_EDAC_LABEL = re.compile(r" on ([^\s(]+)")


def _edac_dimm(m: re.Match[str]) -> str:
    """The DIMM label EDAC prints after ' on ' (looked for in the 200 characters after the match)."""
    d = _EDAC_LABEL.search(m.string, m.end(), m.end() + 200)
    return f"DIMM {d.group(1)}" if d else "memory (EDAC)"


# (the count each line reports is summed per DIMM: host.kernel_log fails a DIMM past the profile's limit)
kernel_log_rule("HOST_EDAC_CORRECTED", r"EDAC (?:\S+ )?MC\d+: (?P<amount>\d{1,12}) CE\b", "warn",
                "corrected memory errors: watch this DIMM (`ras-mc-ctl --error-count`); replace it if the count keeps "
                "rising or an uncorrected error follows", "corrected memory error", _edac_dimm)
def _aer_device(m: re.Match[str]) -> str:
    """The device that sent the error; the reporting port when the kernel could not tell (source 0000:00:00.0)."""
    dev = m.group("dev").rstrip(".,")
    return f"PCIe {m.group('port') if dev.endswith('0000:00:00.0') and m.group('port') else dev}"


kernel_log_rule("HOST_PCIE_AER_UNCORRECTED",
                r"(?:(?P<port>" + _PCI + r"): )?AER: (?:Multiple )?Uncorrect(?:ed|able) \([\w-]+\) error (?:message )?"
                r"received(?::| from) (?P<dev>\S+)", "fail",
                "reseat the device or riser at that PCI address; if it repeats, replace it",
                "PCIe uncorrectable error", _aer_device)
# the driver could not recover the device from an uncorrectable error (no AER callbacks, or recovery failed):
# it stays unusable until a reset or reboot
kernel_log_rule("HOST_PCIE_AER_UNCORRECTED",
                r"(?P<dev>" + _PCI + r"): AER: (?:can't recover \(no error_detected callback\)|device recovery failed)",
                "fail", "the device is unusable until the node reboots: drain; reseat the device or riser (an eGPU: its "
                "cable and enclosure), replace it if it repeats", "PCIe error recovery failed",
                lambda m: f"PCIe {m.group('dev')}")
kernel_log_rule("HOST_PCIE_AER_CORRECTED",
                r"(?:(?P<port>" + _PCI + r"): )?AER: (?:Multiple )?Correct(?:ed|able) error (?:message )?"
                r"received(?::| from) (?P<dev>\S+)", "warn",
                "watch the count; many corrected errors on one device mean a marginal link (reseat)",
                "PCIe corrected error", lambda m: _aer_device(m))
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
# Dell OpenManage (OMSA) writes the BMC's PSU state to the system log (EventID 1354, 1306).
kernel_log_rule("POWER_PSU_FAILED", r"Power supply detected a failure(?:\s+Sensor location: (?P<loc>[\w #./-]{1,40}?)(?:\s\s|$))?",
                "fail", "check that PSU's AC feed and cord, then reseat or replace it",
                "PSU failure reported by the server's management agent", _group("loc", "PSU"))
kernel_log_rule("POWER_PSU_REDUNDANCY_LOST", r"Redundancy lost(?:\s+Redundancy unit: (?P<unit>[\w #./-]{1,40}?)(?:\s\s|$))?",
                "fail", "restore the failed PSU: the node has no power headroom",
                "PSU redundancy lost (server management agent)", _group("unit", "PSU redundancy"))
