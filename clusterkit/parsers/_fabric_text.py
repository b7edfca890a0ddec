"""Small helpers shared by the fabric parsers (prompt lines, numbers, rates)."""

from __future__ import annotations

import math
import re

from clusterkit.evidence.normalize import Document


def command_argument(doc: Document, tool: str, flag: str | None = None) -> str | None:
    """The argument after `flag` (or after the tool when `flag` is None) on a pasted prompt
    line, or on a command line pasted without its prompt."""
    for ln in doc.commands + doc.text.splitlines()[:20]:
        words = ln.split()
        if tool not in words:
            continue
        rest = words[words.index(tool) + 1:]
        if flag is None:
            args = [w for w in rest if not w.startswith("-")]
            return args[0] if args else None
        if flag in rest and rest.index(flag) + 1 < len(rest):
            return rest[rest.index(flag) + 1]
    return None


def to_float(s: str) -> float | None:
    """A number from tool text; None for N/A and other non-numbers (never NaN)."""
    s = s.strip()
    if not s or s.upper() in {"N/A", "NA", "-"}:
        return None
    if s.lower() in {"-inf", "-infinity"}:
        return -math.inf
    try:
        v = float(s)
    except ValueError:
        return None
    return None if math.isnan(v) or v == math.inf else v


def to_int(s: str) -> int | None:
    s = s.strip()
    try:
        return int(s, 0) if s.lower().startswith("0x") else int(s)
    except ValueError:
        return None


# Per-lane signalling (Gbps as iblinkinfo prints it) -> data rate per lane and IB speed name.
LANE_SPEEDS: dict[float, tuple[float, str]] = {
    2.5: (2.5, "SDR"), 5.0: (5.0, "DDR"), 10.0: (10.0, "QDR"), 10.3125: (10.0, "FDR10"),
    14.0625: (14.0, "FDR"), 25.78125: (25.0, "EDR"), 53.125: (50.0, "HDR"), 106.25: (100.0, "NDR"),
    212.5: (200.0, "XDR"),
}


def lane_rate(signal_gbps: float) -> tuple[float, str]:
    """Nominal data rate per lane and speed name for a lane signalling rate."""
    best = min(LANE_SPEEDS, key=lambda k: abs(k - signal_gbps))
    if abs(best - signal_gbps) < 0.05 * best:
        return LANE_SPEEDS[best]
    return signal_gbps, f"{signal_gbps:g} Gbps/lane"


# Data rate per lane of each InfiniBand speed, as ibstat's `Rate` counts it (4X FDR = 56).
IB_LANE_GBPS: dict[str, float] = {"SDR": 2.5, "DDR": 5.0, "QDR": 10.0, "FDR10": 10.0, "FDR": 14.0, "EDR": 25.0,
                                  "HDR": 50.0, "NDR": 100.0, "XDR": 200.0}
_SPEED_TOKEN = re.compile(r"^(?:IB-)?(SDR|DDR|QDR|FDR10|FDR|EDR|HDR|NDR|XDR)$|^(\d+(?:\.\d+)?)([GM])(?:b?E)?(?:_\d+X)?$",
                          re.I)


def speed_gbps(token: str, lanes: int = 4) -> float | None:
    """A link speed word -> Gb/s: `IB-FDR` (4 lanes) 56, `EDR` 100, `100G_4X` 100, `40G` 40, `100M` 0.1."""
    m = _SPEED_TOKEN.match(token.strip())
    if not m:
        return None
    if m.group(1):
        return float(round(IB_LANE_GBPS[m.group(1).upper()] * lanes, 1))
    v = float(m.group(2))
    return v if m.group(3).upper() == "G" else v / 1000.0
