"""FreeIPMI: `ipmi-sel` (the BMC's event log) and `ipmi-sensors` / `ipmimonitoring`.

Both print `|`-separated tables, usually with a header row that names the columns:
`ID | Date | Time | Name | Type | State | Event` (`--output-event-state`; without it no
State column; `--output-event-direction` adds `Event Direction`), and
`ID | Name | Type | State | Reading | Units | Event` (`ipmi-sensors --output-sensor-state`,
`ipmimonitoring`; without the option no State column). Without a header the column count
decides. Dates print as `Mar-19-2018`. A sensor's Event cell holds its asserted states,
each in quotes: `'Presence detected' 'Power Supply Failure detected'`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import MAX_LINE_CHARS, normalize
from clusterkit.parsers import ParseError
from clusterkit.parsers.ipmi import SelEvent
from clusterkit.parsers.ipmi_sensors import Sensor

_DATE = re.compile(r"^(?:[A-Z][a-z]{2}-\d\d-\d{4}|\d\d/\d\d/\d{4}|\d{4}-\d\d-\d\d|PostInit|Pre-Init|N/A)$")
_STATES = ("Nominal", "Warning", "Critical", "N/A")
_QUOTED = re.compile(r"'([^']*)'")


@dataclass
class FreeIpmiSelEvent(SelEvent):
    type: str = ""
    state: str = ""            # Nominal | Warning | Critical | N/A; '' without --output-event-state


def _rows(text: str) -> tuple[list[str] | None, list[list[str]]]:
    """(header cells or None, data rows) of a FreeIPMI table (rows start with a record id)."""
    header: list[str] | None = None
    rows: list[list[str]] = []
    for line in normalize(text).split("\n"):
        if "|" not in line:
            continue
        c = [x.strip() for x in line[:MAX_LINE_CHARS].split("|")]
        if c and c[0] in ("ID", "Record ID"):
            header = c
        elif c and c[0].isdigit():
            rows.append(c)
    return header, rows


def _table(text: str) -> tuple[dict[str, int], list[list[str]]]:
    """(column index by header name, {} without a header; data rows)."""
    header, rows = _rows(text)
    return ({name: i for i, name in enumerate(header)} if header else {}), rows


# ---------------------------------------------------------------- ipmi-sel

FREEIPMI_SEL = declare("freeipmi-sel", "host/ipmi-sel.txt", command=("ipmi-sel", "--output-event-state"), priority=56,
                       description="FreeIPMI ipmi-sel (BMC event log)")


def _is_sel_row(c: list[str]) -> bool:
    return len(c) >= 6 and bool(_DATE.match(c[1])) and ":" in c[2]


@FREEIPMI_SEL.recognizer
def is_freeipmi_sel(text: str) -> bool:
    """`ID | Date | Time | Name | Type | (State |) Event` rows, dates like Mar-19-2018."""
    header, rows = _rows(text[:400000])
    if header is not None and header[1:3] == ["Date", "Time"]:
        return True
    return bool(rows) and all(_is_sel_row(r) for r in rows[:5]) and any(re.match(r"[A-Z][a-z]{2}-", r[1]) for r in rows)


@FREEIPMI_SEL.parser
def parse_freeipmi_sel(text: str) -> list[FreeIpmiSelEvent]:
    cols, rows = _table(text)
    out: list[FreeIpmiSelEvent] = []
    for c in rows:
        if not _is_sel_row(c):
            continue
        state_i = cols.get("State", 5 if len(c) >= 7 and c[5] in _STATES else None)
        event_i = cols.get("Event", len(c) - 1)
        dir_i = cols.get("Event Direction")
        direction = ""
        if dir_i is not None and dir_i < len(c):
            direction = "Deasserted" if c[dir_i].lower().startswith("deassertion") else "Asserted"
        out.append(FreeIpmiSelEvent(c[0], c[1], c[2], c[3], c[event_i] if event_i < len(c) else "", direction,
                                    type=c[4], state=c[state_i] if state_i is not None and state_i < len(c) else ""))
    if not out and "SEL Record" not in text and "no entries" not in text.lower():
        raise ParseError("no ipmi-sel rows ('ID | Date | Time | Name | Type | Event')")
    return out


# ---------------------------------------------------------------- ipmi-sensors / ipmimonitoring

FREEIPMI_SENSORS = declare("freeipmi-sensors", "host/ipmi-sensors.txt",
                           command=("ipmi-sensors", "--output-sensor-state"), priority=56,
                           description="FreeIPMI ipmi-sensors / ipmimonitoring")


def _is_sensor_row(c: list[str]) -> bool:
    return len(c) in (6, 7) and not _DATE.match(c[1]) and (len(c) == 6 or c[3] in _STATES)


@FREEIPMI_SENSORS.recognizer
def is_freeipmi_sensors(text: str) -> bool:
    """`ID | Name | Type | (State |) Reading | Units | Event` rows."""
    header, rows = _rows(text[:400000])
    if header is not None and len(header) > 2 and header[1] == "Name" and "Reading" in header:
        return True
    return len(rows) >= 1 and all(_is_sensor_row(r) and len(r) == 7 for r in rows[:5])


@FREEIPMI_SENSORS.parser
def parse_freeipmi_sensors(text: str) -> list[Sensor]:
    cols, rows = _table(text)
    out: list[Sensor] = []
    for c in rows:
        if not _is_sensor_row(c):
            continue
        state_i = cols.get("State", 3 if len(c) == 7 else None)
        reading_i, units_i, event_i = cols.get("Reading", len(c) - 3), cols.get("Units", len(c) - 2), cols.get("Event", len(c) - 1)
        get = (lambda i: c[i] if i is not None and i < len(c) else "")
        reading = " ".join(x for x in (get(reading_i), get(units_i)) if x and x != "N/A")
        event = get(event_i)
        states = _QUOTED.findall(event) or ([event] if event and event != "N/A" else [])
        out.append(Sensor(c[1], type=get(cols.get("Type", 2)), status=get(state_i), reading=reading,
                          states=[s for s in states if s.upper() != "OK"]))
    if not out:
        raise ParseError("no ipmi-sensors rows ('ID | Name | Type | State | Reading | Units | Event')")
    return out
