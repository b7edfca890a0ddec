"""What power.psu and bmc.health share: every BMC source read into sensors and SEL events.

Sensors come from `ipmitool sdr -v`, `ipmitool sdr elist`/`sdr type` (pipes or `-c` CSV),
`ipmitool sensor`/`sdr list` and FreeIPMI `ipmi-sensors`; events from `ipmitool sel elist`
and FreeIPMI `ipmi-sel`. A source that cannot be parsed is reported, the others still count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clusterkit.evidence.kinds import Kind
from clusterkit.parsers import ParseError
from clusterkit.parsers.freeipmi import FREEIPMI_SEL, FREEIPMI_SENSORS
from clusterkit.parsers.ipmi import IPMI_SDR_PSU, IPMI_SEL, SelEvent, psu_problems, redundancy_lost
from clusterkit.parsers.ipmi_sensors import IPMI_SDR_CSV, IPMI_SDR_V, IPMI_SENSOR, Sensor, sensors_from_sdr
from clusterkit.results import Finding

if TYPE_CHECKING:
    from clusterkit.analysis import NodeContext

SENSOR_SOURCES: tuple[Kind, ...] = (IPMI_SDR_V, IPMI_SDR_PSU, IPMI_SDR_CSV, IPMI_SENSOR, FREEIPMI_SENSORS)
SEL_SOURCES: tuple[Kind, ...] = (IPMI_SEL, FREEIPMI_SEL)
BMC_SOURCES = SENSOR_SOURCES + SEL_SOURCES

_PSU_NAME = re.compile(r"\b(?:PSU?\s*\d*|Power Supply|PWS)", re.I)
_CRITICAL = {"cr", "nr", "lcr", "ucr", "lnr", "unr", "critical", "lower critical", "upper critical",
             "lower non-recoverable", "upper non-recoverable"}
_NONCRITICAL = {"nc", "lnc", "unc", "warning", "lower non-critical", "upper non-critical"}
# IPMI event texts a BMC logs when a sensor crosses into a critical state (generic severity offsets,
# threshold crossings), plus the OS stopping on a fatal error.
_SEL_CRITICAL = ("transition to critical", "transition to non-recoverable", "non-recoverable going",
                 "critical going", "run-time critical stop", "critical interrupt", "bus fatal error")
# ipmitool and FreeIPMI wordings of memory sensor offset 05h
_ECC_LIMIT = re.compile(r"correctable (?:ecc|memory error) logging limit reached", re.I)
# memory sensor offset 00h (and vendors' "Correctable memory error"); "Uncorrectable" has no word boundary there
_CORRECTABLE = re.compile(r"\bCorrectable (?:ECC|memory error)\b(?! logging limit)", re.I)
_UNCORRECTABLE = re.compile(r"\bUncorrectable ECC\b", re.I)
# ipmitool and FreeIPMI wordings of processor sensor offsets 00h (IERR), 06h (uncorrectable CPU-complex
# error), 0Bh (uncorrectable machine check) and 0Ch (correctable machine check): CPU errors, not memory
_MCE_UNCORRECTED = re.compile(r"\bUncorrectable machine check|\bMachine Check Exception \(Uncorrectable\)|\bIERR\b"
                              r"|\bUncorrectable CPU-complex Error", re.I)
_MCE_CORRECTED = re.compile(r"\bCorrectable machine check", re.I)
BMC_UNREACHABLE = re.compile(r"Unable to establish (?:IPMI v[\d.]+ / RMCP\+? |LAN )?session|Get Device ID command "
                             r"failed|Could not open device at /dev/ipmi|Error: Unable to establish")


@dataclass
class BmcEvidence:
    sensors: list[Sensor] = field(default_factory=list)
    events: list[SelEvent] = field(default_factory=list)
    unusable: list[Finding] = field(default_factory=list)
    unreachable: list[tuple[str, str]] = field(default_factory=list)   # (file, line) where the BMC did not answer
    sources: list[str] = field(default_factory=list)


def read_bmc(ctx: NodeContext) -> BmcEvidence:
    """Every BMC file of the node, parsed once per analysis."""
    key = ("bmc", "evidence")
    if key in ctx._cache:
        return ctx._cache[key]
    ev = BmcEvidence()
    for kind in BMC_SOURCES:
        if not ctx.exists(kind):
            continue
        text = ctx.text(kind.path) or ""
        for line in text.split("\n")[:20000]:
            if BMC_UNREACHABLE.search(line[:512]):
                ev.unreachable.append((kind.path, line.strip()[:200]))
        try:
            parsed = ctx.parsed(kind)
        except ParseError as e:
            if not ev.unreachable:
                ev.unusable.append(Finding("INPUT_UNUSABLE", "error", kind.path, f"{kind.path}: {e}",
                                           action="re-collect it (the tool's text as printed)"))
            continue
        ev.sources.append(kind.path)
        if kind in SEL_SOURCES:
            ev.events.extend(parsed)
            continue
        # The same sensor from two tools counts once: the first source (the most detailed) wins.
        seen = {s.name for s in ev.sensors}
        ev.sensors.extend(s for s in (sensors_from_sdr(parsed) if kind is IPMI_SDR_PSU else parsed)
                          if s.name not in seen)
    ctx._cache[key] = ev
    return ev


# ---------------------------------------------------------------- judging sensors

def is_redundancy(s: Sensor) -> bool:
    return "redundan" in s.name.lower() or any("redundan" in x.lower() for x in s.states)


def is_psu(s: Sensor) -> bool:
    return bool(_PSU_NAME.search(s.name)) or s.type == "Power Supply" or s.entity.split(".")[0] == "10"


def redundancy_state(s: Sensor) -> str | None:
    """The degraded redundancy state a redundancy sensor asserts, None when it is fine."""
    return next((x for x in s.states if redundancy_lost(x)), None)


def sensor_psu_problems(s: Sensor) -> list[str]:
    """Why a PSU sensor is not delivering: its asserted bad states, or a critical status."""
    return psu_problems(s.states, "ok") + ([f"sensor status '{s.status}'"] if s.status.lower() in _CRITICAL else [])


def sensor_level(s: Sensor) -> str | None:
    """fail for a critical/non-recoverable status, warn for non-critical, None when fine or unknown."""
    st = s.status.lower()
    if st in _CRITICAL:
        return "fail"
    if st in _NONCRITICAL:
        return "warn"
    return None


def ecc_limit(texts: list[str]) -> str | None:
    return next((t for t in texts if _ECC_LIMIT.search(t)), None)


def correctable(texts: list[str]) -> str | None:
    return next((t for t in texts if _CORRECTABLE.search(t)), None)


def uncorrectable(texts: list[str]) -> str | None:
    return next((t for t in texts if _UNCORRECTABLE.search(t)), None)


def machine_check(texts: list[str]) -> tuple[str, bool] | None:
    """The processor machine-check text asserted, and whether it is uncorrected (the worst one)."""
    if (t := next((t for t in texts if _MCE_UNCORRECTED.search(t)), None)) is not None:
        return t, True
    return next(((t, False) for t in texts if _MCE_CORRECTED.search(t)), None)


# ---------------------------------------------------------------- judging the event log

def psu_event_bad(e: SelEvent) -> bool:
    t = e.event.lower()
    return psu_problems([e.event], "ok") != [] or redundancy_lost(t) or any(c in t for c in _SEL_CRITICAL)


@dataclass
class PsuEventState:
    sensor: str
    opened: SelEvent | None = None          # a bad event still asserted at the end of the log
    history: list[tuple[SelEvent | None, SelEvent]] = field(default_factory=list)   # (asserted, deasserted)


def psu_event_states(events: list[SelEvent]) -> dict[str, PsuEventState]:
    """Per PSU sensor: what is still asserted at the end of the log, and what was asserted and cleared."""
    out: dict[str, PsuEventState] = {}
    for e in events:
        if not e.is_psu or not psu_event_bad(e):
            continue
        st = out.setdefault(e.sensor, PsuEventState(e.sensor))
        if e.direction == "Deasserted":
            st.history.append((st.opened, e))
            st.opened = None
        else:
            st.opened = e
    return out


def sel_critical(e: SelEvent) -> bool:
    """A critical event by the BMC's own word: FreeIPMI's State column, or a critical IPMI event text."""
    if getattr(e, "state", "") == "Critical":
        return True
    return any(c in e.event.lower() for c in _SEL_CRITICAL)


def when(e: SelEvent) -> str:
    return f"{e.date} {e.time}".strip()


def row(e: SelEvent) -> str:
    return " | ".join(x for x in (e.record, e.date, e.time, e.sensor, e.event, e.direction) if x)
