"""BMC sensors in every common form -> one `Sensor` model.

- `ipmitool sdr -v` (full sensor records): a discrete sensor's state is in `States Asserted`, so a
  `Pwr Unit Redund` that plain `ipmitool sdr` prints as `0x00 | ok` shows `[Redundancy Lost]` here;
  the `Assertions Enabled`/`Deassertions Enabled` lists are capabilities and are not read as states;
- `ipmitool sensor` (`name | reading | unit | status | lnr | lcr | lnc | unc | ucr | unr`) and plain
  `ipmitool sdr` / `sdr list` (`name | reading | status`);
- `ipmitool -c sdr elist` / `-c sdr type ...` CSV (`name,77h,ok,7.1,Fully Redundant`);
- FreeIPMI `ipmi-sensors` (with or without `--output-sensor-state`) and `ipmimonitoring`.

`ipmitool sdr elist` / `sdr type` (pipes) stay with parsers/ipmi.py (`IPMI_SDR_PSU`); checks turn
its rows into `Sensor`s with `sensors_from_sdr`. Judging the sensors is the checks' job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import MAX_LINE_CHARS, normalize
from clusterkit.parsers import ParseError
from clusterkit.parsers.ipmi import PsuReport


@dataclass
class Sensor:
    name: str
    type: str = ""            # sensor type as printed ('Power Supply', 'Temperature'); '' when not shown
    status: str = ""          # ok/nc/cr/nr/ns/na, 'Upper Critical', FreeIPMI Nominal/Warning/Critical; '' when not shown
    reading: str = ""         # as printed, unit included
    states: list[str] = field(default_factory=list)   # asserted discrete states / event texts
    entity: str = ""          # '10.1' (entity 10 is a power supply)


def _cells(line: str, sep: str = "|") -> list[str]:
    return [c.strip() for c in line[:MAX_LINE_CHARS].split(sep)]


# ---------------------------------------------------------------- ipmitool sdr -v

IPMI_SDR_V = declare("ipmitool-sdr-v", "host/ipmitool-sdr-v.txt", command=("ipmitool", "sdr", "-v"), priority=57,
                     description="ipmitool sdr -v (full sensor records, asserted states included)")

_KEY = re.compile(r"[A-Z][A-Za-z ()/-]{0,40}")
_BRACKET = re.compile(r"^\s*\[(?P<state>[^\]]*)\]\s*$")
_STATE_LISTS = {"States Asserted", "Assertion Events"}   # what holds now / what the sensor reported


@IPMI_SDR_V.recognizer
def is_sdr_v(text: str) -> bool:
    """Sensor records: 'Sensor ID : name (0x..)' followed by its indented fields."""
    return bool(re.search(r"(?m)^Sensor ID\s+: .+\(0x[0-9a-fA-F]+\)\s*$", text[:200000])) and " Entity ID " in text


@IPMI_SDR_V.parser
def parse_sdr_v(text: str) -> list[Sensor]:
    out: list[Sensor] = []
    cur: Sensor | None = None
    listing: str | None = None        # the field whose [state] continuation lines follow
    for line in normalize(text).split("\n"):
        if not line.strip():
            listing = None
            continue
        b = _BRACKET.match(line[:MAX_LINE_CHARS])
        if b and cur is not None and listing is not None:
            if listing in _STATE_LISTS and b["state"] not in cur.states:
                cur.states.append(b["state"])
            continue
        key, sep, val = line[:MAX_LINE_CHARS].partition(":")
        key, val = key.strip(), val.strip()
        if not sep or not _KEY.fullmatch(key):
            continue
        if key == "Sensor ID":
            cur = Sensor(re.sub(r"\s*\(0x[0-9a-fA-F]+\)$", "", val))
            out.append(cur)
            listing = None
            continue
        if cur is None:
            continue
        listing = key
        if key == "Entity ID":
            cur.entity = val.split()[0] if val else ""
        elif key.startswith("Sensor Type"):
            cur.type = re.sub(r"\s*\(0x[0-9a-fA-F]+\)$", "", val)
        elif key == "Sensor Reading":
            cur.reading = val
        elif key == "Status":
            cur.status = val
    if not out:
        raise ParseError("no 'Sensor ID : name (0x..)' records (ipmitool sdr -v)")
    return out


# ---------------------------------------------------------------- ipmitool sensor / sdr list

IPMI_SENSOR = declare("ipmitool-sensor", "host/ipmitool-sensor.txt", command=("ipmitool", "sensor"), priority=54,
                      description="ipmitool sensor (readings with thresholds) / ipmitool sdr list")

_NUMBER = re.compile(r"^(?:-?\d+(?:\.\d+)?|na|0x[0-9a-fA-F]+)$")
_STATUS = re.compile(r"^(?:ok|nc|cr|nr|ns|na|lnc|lcr|lnr|unc|ucr|unr|0x[0-9a-fA-F]{2,4})$")


def _sensor_row(line: str) -> Sensor | None:
    c = _cells(line)
    if len(c) == 10 and c[0] and _STATUS.match(c[3]) and all(_NUMBER.match(x) for x in c[4:10] if x):
        return Sensor(c[0], status=c[3], reading=f"{c[1]} {c[2]}".strip())
    if len(c) == 3 and c[0] and _STATUS.match(c[2]) and c[1]:
        return Sensor(c[0], status=c[2], reading=c[1])
    return None


@IPMI_SENSOR.recognizer
def is_ipmitool_sensor(text: str) -> bool:
    """Rows of `ipmitool sensor` (10 columns) or `ipmitool sdr` (3 columns)."""
    rows = [l for l in text.split("\n")[:2000] if "|" in l]
    good = sum(1 for l in rows if _sensor_row(l))
    return good >= 1 and good >= 0.6 * len(rows)


@IPMI_SENSOR.parser
def parse_ipmitool_sensor(text: str) -> list[Sensor]:
    # A discrete sensor's hex state bits (status 0x0100) mean nothing without its type: not judged.
    out = [s for l in normalize(text).split("\n") if "|" in l and (s := _sensor_row(l))]
    if not out:
        raise ParseError("no 'name | reading | unit | status | thresholds' rows (ipmitool sensor / sdr)")
    return out


# ---------------------------------------------------------------- ipmitool -c sdr (CSV)

IPMI_SDR_CSV = declare("ipmitool-sdr-csv", "host/ipmitool-sdr-csv.txt", command=("ipmitool", "-c", "sdr", "elist"),
                       priority=53, description="ipmitool -c sdr elist / -c sdr type ... (CSV)")
_CSV_ROW = re.compile(r"^[^,|]+,[0-9A-Fa-f]{2}h,[a-z]{2,3},\d+\.\d+,")


@IPMI_SDR_CSV.recognizer
def is_sdr_csv(text: str) -> bool:
    """`name,77h,ok,7.1,state` rows."""
    rows = [l for l in text.split("\n")[:2000] if l.strip()]
    good = sum(1 for l in rows if _CSV_ROW.match(l[:MAX_LINE_CHARS]))
    return good >= 1 and good >= 0.6 * len(rows)


@IPMI_SDR_CSV.parser
def parse_sdr_csv(text: str) -> list[Sensor]:
    out = []
    for line in normalize(text).split("\n"):
        if not _CSV_ROW.match(line[:MAX_LINE_CHARS]):
            continue
        c = _cells(line, ",")
        states = [x for x in c[4:] if x]        # a multi-state reading holds commas of its own
        out.append(Sensor(c[0], status=c[2], reading=", ".join(states), states=states, entity=c[3]))
    if not out:
        raise ParseError("no 'name,77h,ok,7.1,state' rows (ipmitool -c sdr)")
    return out


def sensors_from_sdr(rep: PsuReport) -> list[Sensor]:
    """`ipmitool sdr elist` rows (parsers/ipmi.py) as sensors."""
    return [Sensor(r.name, status=r.status, reading=r.reading, entity=r.entity,
                   states=[e.strip() for e in r.reading.split(",") if e.strip()]) for r in rep.rows]
