"""ipmitool power supply state: `ipmitool sdr type "Power Supply"` and the SEL (`sel elist`/`sel list`).

A PSU row whose status column says "ok" while its event text says "AC lost" is
a lost PSU: BMCs keep the sensor "ok" (it reads fine) and put the state in the
event text, so both columns are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import normalize
from clusterkit.parsers import ParseError

# Event texts (IPMI sensor type 08h offsets and vendor wordings) that mean a PSU is not delivering.
_PSU_BAD = (
    "failure detected", "ac lost", "ac out-of-range", "ac out of range", "predictive failure",
    "power supply input lost", "input lost", "configuration error", "inactive",
)
_REDUNDANCY_BAD = ("redundancy lost", "redundancy degraded", "non-redundant", "insufficient resources")
# ipmitool sdr status column: ok, ns (no reading), nc/cr/nr (non-critical/critical/non-recoverable), lnc...
_STATUS_BAD = {"cr", "nr", "lcr", "ucr", "lnr", "unr"}


@dataclass
class SdrRow:
    name: str
    sensor_id: str
    status: str
    entity: str
    reading: str


@dataclass
class PsuState:
    name: str
    status: str
    events: list[str]
    problems: list[str] = field(default_factory=list)   # why it is not delivering; empty = fine

    @property
    def failed(self) -> bool:
        return bool(self.problems)


@dataclass
class PsuReport:
    psus: list[PsuState] = field(default_factory=list)
    redundancy: list[tuple[str, str]] = field(default_factory=list)   # (sensor, state text) when degraded
    rows: list[SdrRow] = field(default_factory=list)


# cells end in a non-blank instead of lazy groups before `\s*`: one pass per line (a lazy
# first cell retried every blank run, and a 64 KB line took minutes)
_SDR_ROW = re.compile(r"^\s*([^|\s](?:[^|]*[^|\s])?)\s*\|\s*([0-9A-Fa-f]{2}h)\s*\|\s*([a-z]{2,3})\s*\|\s*([0-9.]+)\s*\|"
                      r"\s*((?:.*\S)?)\s*$")


IPMI_SDR_PSU = declare("ipmitool-sdr-psu", "host/ipmitool-sdr-psu.txt", command=("ipmitool", "sdr", "type", "Power Supply"), priority=55, description='ipmitool sdr type "Power Supply" (or sdr elist)')


@IPMI_SDR_PSU.recognizer
def is_sdr(text: str) -> bool:
    rows = [ln for ln in text.split("\n") if _SDR_ROW.match(ln)]
    return len(rows) >= 1 and any(re.search(r"\b(PS|PSU|Power Supply)", r, re.I) for r in rows)


def _is_psu_name(name: str) -> bool:
    return bool(re.search(r"\b(PSU?\s*\d*|Power Supply|PWS)", name, re.I))


def psu_problems(events: list[str], status: str) -> list[str]:
    """Why a PSU sensor is not delivering: its bad event texts, and a critical status column."""
    out = [e for e in events if any(b in e.lower() for b in _PSU_BAD)]
    if status.lower() in _STATUS_BAD:
        out.append(f"sensor status '{status}'")
    return out


def redundancy_lost(text: str) -> bool:
    """A redundancy sensor's state text says redundancy is degraded or gone."""
    t = text.lower()
    return any(b in t for b in _REDUNDANCY_BAD) and "fully redundant" not in t


@IPMI_SDR_PSU.parser
def parse_sdr_psu(text: str) -> PsuReport:
    rep = PsuReport()
    for line in normalize(text).split("\n"):
        m = _SDR_ROW.match(line)
        if not m:
            continue
        row = SdrRow(*(g.strip() for g in m.groups()))
        rep.rows.append(row)
        reading = row.reading.lower()
        if "redundan" in row.name.lower() or "redundan" in reading:
            if redundancy_lost(reading):
                rep.redundancy.append((row.name, row.reading))
            continue
        if not _is_psu_name(row.name):
            continue
        events = [e.strip() for e in row.reading.split(",") if e.strip()]
        rep.psus.append(PsuState(row.name, row.status, events, psu_problems(events, row.status)))
    if not rep.rows:
        raise ParseError("no ipmitool sdr rows ('name | 00h | ok | 10.1 | reading')")
    return rep


# ---------------------------------------------------------------- SEL

@dataclass
class SelEvent:
    record: str
    date: str
    time: str
    sensor: str
    event: str
    direction: str      # Asserted | Deasserted | ''

    @property
    def is_psu(self) -> bool:
        return _is_psu_name(self.sensor) or "power supply" in self.event.lower()


# cells end in a non-blank instead of lazy groups before `\s*\|`: one pass per line (a lazy cell
# retried every blank run, quadratic in a long one)
_SEL_CELL = r"\s*((?:[^|]*[^|\s])?)\s*"
_SEL_ROW = re.compile(r"^\s*([0-9a-fA-F]+)\s*\|" + r"\|".join([_SEL_CELL] * 4)
                      + r"(?:\|\s*(Asserted|Deasserted)\s*)?(?:\|.*)?$")


# ipmitool 1.8.19+ prints the date with strftime's %x (locale: `12/14/22`, `14.12.2022`) and the time with
# `%X %Z` (`23:09:44 CET`); older ones `12/14/2022` and a bare time. The time cell is read as printed.
_SEL_DATE = re.compile(r"(?:\d\d/\d\d/\d\d(?:\d\d)?|\d\d\.\d\d\.\d\d(?:\d\d)?|\d{4}-\d\d-\d\d|Pre-Init)")


IPMI_SEL = declare("ipmitool-sel", "host/ipmitool-sel.txt", command=("ipmitool", "sel", "elist"), priority=55, description="ipmitool sel elist / sel list")


@IPMI_SEL.recognizer
def is_sel(text: str) -> bool:
    rows = [m for m in map(_SEL_ROW.match, text.split("\n")) if m]
    return len(rows) >= 1 and all(_SEL_DATE.match(m.group(2)) for m in rows[:5])


@IPMI_SEL.parser
def parse_sel(text: str) -> list[SelEvent]:
    out: list[SelEvent] = []
    for line in normalize(text).split("\n"):
        m = _SEL_ROW.match(line)
        if not m or not _SEL_DATE.match(m.group(2)):
            continue
        out.append(SelEvent(m.group(1), m.group(2), m.group(3), m.group(4), m.group(5), m.group(6) or ""))
    if not out and "SEL has no entries" not in text:
        raise ParseError("no ipmitool SEL rows ('id | date | time | sensor | event | Asserted')")
    return out


# ---- SEL info: how full the BMC's event log is (ipmitool sel info, FreeIPMI ipmi-sel --info) ---------

IPMI_SEL_INFO = declare("ipmitool-sel-info", "host/ipmitool-sel-info.txt", command=("ipmitool", "sel", "info"),
                        priority=56, description="ipmitool sel info / FreeIPMI ipmi-sel --info (SEL size, free space, "
                                                 "overflow)")
# ipmitool: `Entries : 909`, `Free Space : 0 bytes`, `Percent Used : 100%`, `Overflow : true`, `# of Alloc Units : 909`,
# `# Free Units : 0`. FreeIPMI: `Number of log entries : 909`, `Free space remaining : 0 bytes`, `Events dropped due to
# lack of space : No`, `Number of possible allocation units : 909`, `Number of free allocation units : 0`.
_SEL_INFO_KEYS = {
    "entries": "entries", "number of log entries": "entries",
    "free space": "free", "free space remaining": "free",
    "percent used": "percent", "overflow": "overflow", "events dropped due to lack of space": "overflow",
    "# of alloc units": "units", "number of possible allocation units": "units",
    "# free units": "free_units", "number of free allocation units": "free_units",
}
_SEL_INFO_KV = re.compile(r"^[ \t]*(" + "|".join(re.escape(k) for k in sorted(_SEL_INFO_KEYS, key=len, reverse=True))
                          + r")[ \t]*:[ \t]*(\S+)", re.I)
_FREEIPMI_SEL_INFO = re.compile(r"^[ \t]*(?:Number of log entries|Free space remaining|Events dropped due to lack of "
                                r"space|Number of free allocation units)[ \t]*:", re.M)


@dataclass
class SelInfo:
    entries: int | None = None
    free_bytes: int | None = None
    percent_used: float | None = None
    overflow: bool | None = None

    @property
    def full(self) -> bool:
        """New events are being dropped, or will be at the next few."""
        return bool(self.overflow) or self.free_bytes == 0 or (self.percent_used or 0) >= 95


@IPMI_SEL_INFO.recognizer
def is_sel_info(text: str) -> bool:
    if re.search(r"^[ \t]*SEL Information[ \t]*$", text, re.M) and "Percent Used" in text:
        return True
    # FreeIPMI prints no title: two of its own key lines (a grep'd fragment keeps at least those)
    return len(_FREEIPMI_SEL_INFO.findall(text[:400000])) >= 2


def _int(val: str) -> int | None:
    return int(val) if val.isdigit() else None


@IPMI_SEL_INFO.parser
def parse_sel_info(text: str) -> SelInfo:
    info = SelInfo()
    units = free_units = None
    for line in normalize(text).split("\n"):
        m = _SEL_INFO_KV.match(line)
        if not m:
            continue
        key, val = _SEL_INFO_KEYS[m.group(1).lower()], m.group(2)
        if key == "entries":
            info.entries = _int(val)
        elif key == "free":
            info.free_bytes = _int(val)
        elif key == "percent":
            info.percent_used = float(val.rstrip("%")) if val.rstrip("%").replace(".", "", 1).isdigit() else None
        elif key == "overflow":
            info.overflow = val.lower() in ("true", "yes")
        elif key == "units":
            units = _int(val)
        else:
            free_units = _int(val)
    if info.percent_used is None and units and free_units is not None and free_units <= units:
        # FreeIPMI prints no percentage: the allocation units say how much is used
        info.percent_used = round(100.0 * (units - free_units) / units, 1)
    if info.entries is None and info.percent_used is None and info.free_bytes is None:
        raise ParseError("no `Entries :` / `Percent Used :` (ipmitool) or `Number of log entries :` (FreeIPMI) lines: "
                         "not SEL info")
    return info
