"""NVIDIA Xid events in kernel log messages.

Works on message strings (the kernel-log parser splits lines and timestamps);
repeated events of one GPU and Xid are folded into one `XidGroup` with a count,
so an Xid storm is one line, not a thousand.

Wordings read: `NVRM: Xid (PCI:0000:8a:00): 79, pid=..., GPU has fallen off the bus.`,
older `NVRM: Xid (0000:8a:00): 13, ...`, and the driver's non-Xid
`NVRM: GPU 0000:8a:00.0: GPU has fallen off the bus.` (counted as Xid 79).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from clusterkit.parsers.gpu_records import norm_bus_id

_XID = re.compile(r"NVRM:\s*Xid\s*\((?:PCI:)?([0-9a-fA-F:.]+)\)\s*:?\s*(\d+)\s*,?\s*(.*)$")
_OFF_BUS = re.compile(r"NVRM:\s*(?:GPU\s+(?:at\s+)?(?:PCI:)?([0-9a-fA-F:.]+):?\s*)?.*GPU has fallen off the bus", re.I)
XID_PATTERNS = (_XID, _OFF_BUS)     # what parse_xid_message matches (the fatal-signature scan's prefilter)
_PID = re.compile(r"^pid=('?[^,]*'?),\s*(?:name=[^,]*,\s*)?")


@dataclass(frozen=True)
class XidInfo:
    severity: str          # fail | warn | info
    meaning: str
    action: str


# The NVIDIA Xid catalogue, condensed to what a technician does next. Application
# Xids (13, 31, 43, 45) are info; a profile may ignore more (gpu.xid_ignore).
XID_CATALOGUE: dict[int, XidInfo] = {
    8: XidInfo("warn", "GPU stopped processing (timeout)", "check the application and the GPU's other Xids; reset the GPU if it repeats"),
    13: XidInfo("info", "graphics engine exception (usually the application)", "check the application; hardware only if it follows other Xids"),
    31: XidInfo("info", "GPU memory page fault (usually the application)", "check the application; hardware only if it follows other Xids"),
    32: XidInfo("warn", "invalid or corrupted push buffer stream (PCIe/driver)", "check PCIe errors and the driver; reseat if it repeats"),
    38: XidInfo("fail", "driver firmware error", "reset the GPU; update driver/VBIOS if it repeats"),
    43: XidInfo("info", "GPU stopped processing (application fault)", "check the application"),
    45: XidInfo("info", "preemptive cleanup after a previous error", "look at the Xid that came before it"),
    48: XidInfo("fail", "uncorrectable double-bit ECC error (DBE)", "drain, reset the GPU and check row remapping / retired pages; RMA if it recurs"),
    54: XidInfo("warn", "auxiliary power not connected", "check the GPU's power cables"),
    56: XidInfo("warn", "display engine error", "check the driver"),
    61: XidInfo("fail", "internal micro-controller breakpoint/warning", "reset the GPU; RMA if it recurs"),
    62: XidInfo("fail", "internal micro-controller halt", "reset the GPU; RMA if it recurs"),
    63: XidInfo("warn", "ECC page retirement or row remapping recorded", "reset the GPU (or reboot) to activate the remap / retirement, then check its counters"),
    64: XidInfo("fail", "ECC page retirement or row remapping FAILED", "RMA the GPU"),
    68: XidInfo("warn", "video processor exception", "check the driver; reset the GPU if it repeats"),
    69: XidInfo("fail", "graphics engine class error", "reset the GPU"),
    74: XidInfo("fail", "NVLink error", "reset the GPU; check NVLink/NVSwitch (fabric manager, baseboard); RMA the baseboard if it recurs"),
    79: XidInfo("fail", "GPU has fallen off the bus", "drain the node; check node power delivery (PSUs, cabling) and reseat the GPU; RMA if it recurs"),
    92: XidInfo("warn", "high single-bit ECC error rate", "watch row remapping; reset the GPU at the next maintenance"),
    94: XidInfo("warn", "contained ECC error", "restart the affected application; reset the GPU when it is idle"),
    95: XidInfo("fail", "uncontained ECC error", "drain and reset the GPU; check row remapping; RMA if it recurs"),
    109: XidInfo("warn", "context switch timeout", "check the application; reset the GPU if it repeats"),
    119: XidInfo("fail", "GSP RPC timeout", "reset the GPU; update the driver/GSP firmware if it recurs"),
    120: XidInfo("fail", "GSP error", "reset the GPU; update the driver/GSP firmware if it recurs"),
    121: XidInfo("warn", "C2C link error", "reset the GPU"),
    140: XidInfo("fail", "unrecovered ECC error", "drain and reset the GPU; RMA if it recurs"),
    143: XidInfo("fail", "GPU initialization failure", "reset the GPU; RMA if it recurs"),
    154: XidInfo("warn", "GPU recovery action changed (reset or reboot required)", "do the recovery action the message names (reset the GPU or reboot the node)"),
}
UNKNOWN_XID = XidInfo("warn", "Xid not in clusterkit's catalogue", "look the Xid up in NVIDIA's Xid catalogue for this driver")


@dataclass
class XidEvent:
    xid: int
    bus_id: str | None         # normalized, '0000:8a:00.0'
    detail: str
    seconds: float | None = None
    wall: str | None = None
    synthesized: bool = False  # from the 'fallen off the bus' line, not an Xid line


def parse_xid_message(message: str) -> XidEvent | None:
    """One kernel log message -> an Xid event, or None if it is not one."""
    m = _XID.search(message)
    if m:
        detail = _PID.sub("", m.group(3).strip())
        return XidEvent(int(m.group(2)), norm_bus_id(m.group(1)), detail.strip())
    m = _OFF_BUS.search(message)
    if m:
        return XidEvent(79, norm_bus_id(m.group(1)), "GPU has fallen off the bus", synthesized=True)
    return None


def xid_events(lines: Iterable[Any]) -> list[XidEvent]:
    """Kernel log lines (objects with .message, .seconds, .wall: parsers.kernel_log.LogLine) -> Xid events."""
    out = []
    for line in lines:
        e = parse_xid_message(line.message)
        if e is not None:
            e.seconds, e.wall = line.seconds, line.wall
            out.append(e)
    return out


@dataclass
class XidGroup:
    xid: int
    bus_id: str | None
    count: int = 0
    first_seconds: float | None = None
    last_seconds: float | None = None
    first_wall: str | None = None
    last_wall: str | None = None
    sample: str = ""
    details: list[str] = field(default_factory=list)  # distinct details, at most a few

    @property
    def info(self) -> XidInfo:
        return XID_CATALOGUE.get(self.xid, UNKNOWN_XID)


def group_xids(events: Iterable[XidEvent], max_details: int = 3) -> list[XidGroup]:
    """Fold events per (GPU, Xid), keeping counts and first/last times; order of first sight.

    A 'fallen off the bus' line next to its own Xid 79 is the same event: only
    counted when no real Xid 79 line exists for that GPU."""
    events = list(events)
    real79 = {e.bus_id for e in events if e.xid == 79 and not e.synthesized}
    groups: dict[tuple[int, str | None], XidGroup] = {}
    for e in events:
        if e.synthesized and e.bus_id in real79:
            continue
        g = groups.setdefault((e.xid, e.bus_id), XidGroup(e.xid, e.bus_id, sample=e.detail))
        g.count += 1
        if g.first_seconds is None:
            g.first_seconds = e.seconds
        if g.first_wall is None:
            g.first_wall = e.wall
        g.last_seconds = e.seconds if e.seconds is not None else g.last_seconds
        g.last_wall = e.wall if e.wall is not None else g.last_wall
        if e.detail not in g.details and len(g.details) < max_details:
            g.details.append(e.detail)
    return list(groups.values())
