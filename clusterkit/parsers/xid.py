"""NVIDIA Xid events in kernel log messages.

Works on message strings (the kernel-log parser splits lines and timestamps);
repeated events of one GPU and Xid are folded into one `XidGroup` with a count,
so an Xid storm is one line, not a thousand.

Wordings read: `NVRM: Xid (PCI:0000:8a:00): 79, pid=..., GPU has fallen off the bus.`,
older `NVRM: Xid (0000:8a:00): 13, ...`, and the driver's non-Xid
`NVRM: GPU 0000:8a:00.0: GPU has fallen off the bus.` or its multi-line banner
`NVRM: The NVIDIA GPU 0000:b3:00.0 (PCI ID: ...) installed in this system has fallen off
the bus` (both counted as Xid 79). A secondary Xid that names its cause (`Xid 45, ...
caused by previous Xid 149`) is reported under that cause. NVSwitch `SXid` lines
(`nvidia-nvswitch3: SXid (PCI:0000:04:00.0): 22013, Non-fatal, Link 44 ...`) are folded
per switch and SXid into `SxidGroup`s, fatal or not by the driver's own words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from clusterkit.parsers.gpu_records import norm_bus_id
from clusterkit.evidence.normalize import MAX_LINE_CHARS

_XID = re.compile(r"NVRM:\s*Xid\s*\((?:PCI:)?([0-9a-fA-F:.]+)\)\s*:?\s*(\d+)\s*,?\s*(.*)$")
_GPU_BUS = re.compile(r"GPU\s+(?:at\s+)?(?:PCI:)?([0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}(?:\.[0-7])?)")
_PID = re.compile(r"^pid=('?[^,]*'?),\s*(?:name=[^,]*,\s*)?")
_CAUSED_BY = re.compile(r"caused by previous Xid (\d+)")
# The Kubernetes device plugin's own log of the Xid it saw (it then marks the GPU unhealthy).
_PLUGIN_XID = re.compile(r"XidCriticalError: Xid=(\d+) on Device=(GPU-[0-9a-fA-F-]+)")
_SXID = re.compile(r"nvidia-nvswitch(\d*):\s*SXid\s*\((?:PCI:)?([0-9a-fA-F:.]+)\)\s*:?\s*(\d+)\s*,?\s*(.*)$")
_LINK = re.compile(r"\bLink (\d+)")
# What parse_xid_message can match, as patterns (the second one looser than its test): the
# fatal-signature scan skips a text that holds none of their literals.
XID_PATTERNS = (_XID, re.compile("fallen off the bus"))


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
    136: XidInfo("fail", "NVLink training failed", "reset the GPU (reboot the node); RMA the GPU/baseboard if it recurs"),
    137: XidInfo("info", "NVLink privilege error: an illegal peer access (usually the application)",
                 "check the application; hardware only if NVLink Xids (74, 144-150) come with it"),
    140: XidInfo("fail", "unrecovered ECC error", "drain and reset the GPU; RMA if it recurs"),
    143: XidInfo("fail", "GPU initialization failure", "reset the GPU; RMA if it recurs"),
    151: XidInfo("warn", "key rotation error (confidential computing)", "restart the VM / reboot the node"),
    154: XidInfo("warn", "GPU recovery action changed (reset or reboot required)", "do the recovery action the message names (reset the GPU or reboot the node)"),
    155: XidInfo("warn", "NVLink software-defined error", "reset the GPU if its NVLinks stay down; check the driver"),
    156: XidInfo("warn", "resource retirement event", "watch the GPU; reset it at the next maintenance"),
    157: XidInfo("fail", "resource retirement failure: the GPU has no spare resources left", "RMA the GPU"),
    158: XidInfo("fail", "GPU fatal timeout", "reset the GPU (reboot the node); RMA if it recurs"),
}
# Blackwell NVLink 5 errors (SAW, RLW, TLW, TREX, NVLPW_CTRL, NETIR, MSE): NVIDIA's resolution needs
# the intrInfo/errorStatus decode, so the node is drained until it is done.
for _x, _unit in zip(range(144, 151), ("SAW", "RLW", "TLW", "TREX", "NVLPW_CTRL", "NETIR", "MSE")):
    XID_CATALOGUE[_x] = XidInfo("fail", f"NVLink 5 {_unit} error",
                                "drain; decode intrInfo/errorStatus with NVIDIA's Xid 144-150 table "
                                "(WORKFLOW_NVLINK5_ERR), reset the GPU, check the NVLink/NVSwitch tray if it recurs")
UNKNOWN_XID = XidInfo("warn", "Xid not in clusterkit's catalogue", "look the Xid up in NVIDIA's Xid catalogue for this driver")


@dataclass
class XidEvent:
    xid: int
    bus_id: str | None         # normalized, '0000:8a:00.0'
    detail: str
    seconds: float | None = None
    wall: str | None = None
    synthesized: bool = False  # from the 'fallen off the bus' line, not an Xid line
    cause: int | None = None   # the Xid this one says caused it ('caused by previous Xid 149')


def parse_xid_message(message: str) -> XidEvent | None:
    """One kernel log message -> an Xid event, or None if it is not one."""
    message = message[:MAX_LINE_CHARS]
    m = _XID.search(message)
    if m:
        detail = _PID.sub("", m.group(3).strip()).strip()
        c = _CAUSED_BY.search(detail)
        return XidEvent(int(m.group(2)), norm_bus_id(m.group(1)), detail, cause=int(c.group(1)) if c else None)
    m = _PLUGIN_XID.search(message)
    if m:
        return XidEvent(int(m.group(1)), None, f"reported by the Kubernetes device plugin for {m.group(2)}, "
                                               "which marked it unhealthy")
    if "fallen off the bus" in message and "NVRM" in message:
        b = _GPU_BUS.search(message)
        return XidEvent(79, norm_bus_id(b.group(1)) if b else None, "GPU has fallen off the bus", synthesized=True)
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
    secondary: dict[int, int] = field(default_factory=dict)  # Xids that named this one as their cause -> count

    @property
    def info(self) -> XidInfo:
        return XID_CATALOGUE.get(self.xid, UNKNOWN_XID)


def group_xids(events: Iterable[XidEvent], max_details: int = 3) -> list[XidGroup]:
    """Fold events per (GPU, Xid), keeping counts and first/last times; order of first sight.

    A 'fallen off the bus' line next to its own Xid 79 is the same event: only
    counted when no real Xid 79 line exists for that GPU. An Xid that names its
    cause is counted under the cause (`secondary`); the cause's group holds only
    its own lines in `count` (0 when the log shows the cause only through them)."""
    events = list(events)
    real79 = {e.bus_id for e in events if e.xid == 79 and not e.synthesized}
    groups: dict[tuple[int, str | None], XidGroup] = {}
    for e in events:
        if e.synthesized and e.bus_id in real79:
            continue
        if e.cause is not None:
            g = groups.setdefault((e.cause, e.bus_id), XidGroup(e.cause, e.bus_id))
            g.secondary[e.xid] = g.secondary.get(e.xid, 0) + 1
            if not g.sample:
                g.sample = f"Xid {e.xid}: {e.detail}"
            _stamp(g, e)
            continue
        g = groups.setdefault((e.xid, e.bus_id), XidGroup(e.xid, e.bus_id, sample=e.detail))
        if g.count == 0:
            g.sample = e.detail
        g.count += 1
        _stamp(g, e)
        if e.detail not in g.details and len(g.details) < max_details:
            g.details.append(e.detail)
    return list(groups.values())


def _stamp(g: XidGroup, e: XidEvent) -> None:
    if g.first_seconds is None:
        g.first_seconds = e.seconds
    if g.first_wall is None:
        g.first_wall = e.wall
    g.last_seconds = e.seconds if e.seconds is not None else g.last_seconds
    g.last_wall = e.wall if e.wall is not None else g.last_wall


# ---------------------------------------------------------------- NVSwitch SXid

@dataclass
class SxidGroup:
    sxid: int
    switch: str                  # 'nvidia-nvswitch3 (0000:04:00.0)'
    bus_id: str | None
    fatal: bool | None = None    # None: no line of it said fatal or non-fatal
    count: int = 0               # lines
    links: list[int] = field(default_factory=list)
    sample: str = ""             # the first line that describes the error ('Non-fatal, Link 44 ...')
    described: bool = False
    first_wall: str | None = None
    first_seconds: float | None = None


def sxid_groups(lines: Iterable[Any]) -> list[SxidGroup]:
    """NVSwitch SXid lines of a kernel log, per (switch, SXid).

    The driver prints each error as several lines (description, severity, data);
    'Fatal'/'Severity 1' on any of them makes the group fatal, 'Non-fatal'/'Severity 0'
    non-fatal (NVSWITCH_ERROR_SEVERITY_FATAL = 1)."""
    groups: dict[tuple[str | None, int], SxidGroup] = {}
    for line in lines:
        m = _SXID.search(line.message)
        if not m:
            continue
        bus = norm_bus_id(m.group(2))
        sx, rest = int(m.group(3)), m.group(4).strip()
        g = groups.get((bus, sx))
        if g is None:
            g = groups[(bus, sx)] = SxidGroup(sx, f"nvidia-nvswitch{m.group(1)} ({bus or m.group(2)})", bus,
                                              first_wall=line.wall, first_seconds=line.seconds)
        g.count += 1
        low = rest[:64].lower()
        if low.startswith(("fatal", "severity 1 ")):
            g.fatal = True
        elif low.startswith(("non-fatal", "nonfatal", "severity 0 ")) and g.fatal is None:
            g.fatal = False
        described = low.startswith(("fatal", "non-fatal", "nonfatal"))
        if not low.startswith("data") and (not g.sample or described and not g.described):
            g.sample, g.described = rest[:200], described
        for lk in _LINK.findall(rest[:200]):
            if int(lk) not in g.links:
                g.links.append(int(lk))
    return list(groups.values())
