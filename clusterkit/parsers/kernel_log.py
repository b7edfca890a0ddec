"""Kernel log: `dmesg`, `dmesg -T`, `dmesg -x`, journalctl and syslog lines -> LogLine records.

Every family scans the same parsed lines (Xid for GPUs, mlx5 link events for
the fabric, MCE/AER/hung tasks for the host); see checks/kernel_log_rules.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clusterkit.evidence.kinds import kind
from clusterkit.evidence.text import clean

PATH = "host/dmesg.txt"
# Messages are matched (rules, Xid, link events) on their first MAX_MATCH_CHARS characters
# only. The kernel prints at most 1,024 bytes per record, so no real message is cut; a
# hostile megabyte line costs no more than a real one.
MAX_MATCH_CHARS = 4096

_MONTHS = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_DMESG = re.compile(r"^\s*(?:(?P<fac>[a-z]+)\s*:\s*(?P<lvl>[a-z]+)\s*:\s*)?\[\s*(?P<sec>\d+\.\d+)\]\s?(?P<msg>.*)$")
_DMESG_T = re.compile(r"^\s*\[(?P<wall>(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) " + _MONTHS + r"\s+\d+ \d\d:\d\d:\d\d \d{4})\]\s?(?P<msg>.*)$")
_SYSLOG = re.compile(r"^(?P<wall>" + _MONTHS + r"\s+\d+ \d\d:\d\d:\d\d(?:\.\d+)?)\s+(?P<host>\S+)\s+(?P<src>[^:\s]+?)(?:\[\d+\])?:\s?(?P<msg>.*)$")
_ISO = re.compile(r"^(?P<wall>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)\s+(?P<host>\S+)\s+(?P<src>[^:\s]+?)(?:\[\d+\])?:\s?(?P<msg>.*)$")
_INNER_SEC = re.compile(r"^\[\s*(\d+\.\d+)\]\s?(.*)$")


@dataclass(frozen=True)
class LogLine:
    message: str
    raw: str
    seconds: float | None = None   # seconds since boot (dmesg), when printed
    wall: str | None = None        # wall-clock stamp as printed (dmesg -T, syslog, journal)
    source: str = "kernel"         # "kernel", or the program for journal/syslog lines
    lineno: int = 0


def parse_kernel_log(text: str) -> list[LogLine]:
    """Lines in any of the usual formats; unknown lines are kept as messages (never dropped)."""
    out: list[LogLine] = []
    for n, raw in enumerate(clean(text).split("\n"), 1):
        line = raw.rstrip()
        if not line.strip():
            continue
        m = _DMESG.match(line)
        if m:
            out.append(LogLine(m["msg"], raw, float(m["sec"]), None, "kernel", n))
            continue
        m = _DMESG_T.match(line)
        if m:
            out.append(LogLine(m["msg"], raw, None, m["wall"], "kernel", n))
            continue
        m = _SYSLOG.match(line) or _ISO.match(line)
        if m:
            msg, sec = m["msg"], None
            inner = _INNER_SEC.match(msg)
            if inner:
                sec, msg = float(inner.group(1)), inner.group(2)
            out.append(LogLine(msg, raw, sec, m["wall"], m["src"], n))
            continue
        out.append(LogLine(line.strip(), raw, None, None, "unknown", n))
    return out


def _looks_like_log(text: str) -> bool:
    lines = [l for l in text.split("\n")[:200] if l.strip()]
    if not lines:
        return False
    hits = sum(1 for l in lines if _DMESG.match(l) or _DMESG_T.match(l) or _SYSLOG.match(l) or _ISO.match(l))
    return hits >= max(1, len(lines) // 2)


@kind("kernel-log", path=PATH, priority=10)
def is_kernel_log(text: str) -> bool:
    """dmesg / journalctl -k / syslog lines."""
    return _looks_like_log(text)
