"""`ethtool -S <if>` (NIC statistics) and `ethtool -m <if>` (module EEPROM / DOM).

ethtool -S: `NIC statistics:` then `name: value` lines; mlx5 names differ by
driver age (old: symbol_err, check_seq_err; new: rx_symbol_err_phy,
rx_crc_errors_phy, rx_corrected_bits_phy, link_down_events_phy).
ethtool -m: `Key : value` lines. SFF-8636 (QSFP28) and CMIS (QSFP-DD/OSFP)
print per-lane values as `... (Channel N)` or `... (Lane N)`; SFF-8472 (SFP)
prints one value. Thresholds are the module's own (`... low alarm threshold`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from clusterkit.evidence.kinds import declare, variant
from clusterkit.evidence.normalize import normalize_document
from clusterkit.parsers import ParseError
from clusterkit.parsers._fabric_text import command_argument, to_float

_STAT = re.compile(r"^\s+([^:\s][^:]*?):\s+(-?\d+)\s*$")
# A filtered paste (`ethtool -S eth0 | grep err`) has no header: its lines are counters,
# the command line and the reporter's `..` elisions. mlx5 counter names tell it apart.
_FRAGMENT_STAT = re.compile(r"^\s*([A-Za-z][\w.\-\[\]]*):\s*(-?\d+)\s*$")
_ELISION = re.compile(r"^\s*(?:\.{2,}|\u2026)\s*$")
_ETHTOOL_CMD = re.compile(r"\bethtool\s+(?:-S|--statistics)\b")
_NIC_COUNTER = re.compile(r"^(?:(?:rx|tx)\d*_|ch\d+_)|_phy$")


@dataclass
class EthtoolStats:
    counters: dict[str, int]
    interface: str | None = None


ETHTOOL_S = declare("ethtool-S", "fabric/ethtool-S-{ifname}.txt", command=("ethtool", "-S", "{ifname}"), priority=55,
                    description="ethtool -S (NIC statistics)")
# The same counters before the load window.
ETHTOOL_S_BEFORE = variant(ETHTOOL_S, "fabric/before/ethtool-S-{ifname}.txt")


def _fragment_counters(lines: list[str]) -> dict[str, int] | None:
    """The counters of a header-less, filtered ethtool -S paste; None if any line is something else."""
    counters: dict[str, int] = {}
    for ln in lines:
        if not ln.strip() or _ELISION.match(ln) or _ETHTOOL_CMD.search(ln):
            continue
        m = _FRAGMENT_STAT.match(ln)
        if not m:
            return None
        counters[m.group(1)] = int(m.group(2))
    return counters if any(_NIC_COUNTER.search(n) for n in counters) else None


@ETHTOOL_S.recognizer
def is_ethtool_stats(text: str) -> bool:
    return bool(re.search(r"^[ \t]*NIC statistics:[ \t]*$", text, re.M)) or _fragment_counters(text.split("\n")) is not None


@ETHTOOL_S.parser
def parse_ethtool_stats(text: str) -> EthtoolStats:
    doc = normalize_document(text)
    t = doc.text
    counters: dict[str, int] = {}
    started = False
    for ln in t.split("\n"):
        if ln.strip() == "NIC statistics:":
            started = True
            continue
        if not started:
            continue
        m = _STAT.match(ln)
        if m:
            counters[m.group(1).strip()] = int(m.group(2))
    if not started:
        fragment = _fragment_counters(t.split("\n"))
        if fragment is None:
            raise ParseError("no `NIC statistics:` line: not ethtool -S output")
        counters = fragment
    if not counters:
        raise ParseError("ethtool -S output has no `name: value` counter lines")
    return EthtoolStats(counters, command_argument(doc, "ethtool", "-S"))


# ---- ethtool -m ------------------------------------------------------------------

@dataclass
class Range:
    """The module's own limits for one quantity (None where it gives none)."""

    low_alarm: float | None = None
    low_warn: float | None = None
    high_warn: float | None = None
    high_alarm: float | None = None


@dataclass
class ModuleInfo:
    """Optical module diagnostics (ethtool -m or mlxlink -m). Powers in dBm."""

    identifier: str | None = None
    vendor: str | None = None
    part_number: str | None = None
    serial: str | None = None
    media: str | None = None              # transceiver type / cable technology
    temperature_c: float | None = None
    rx_power_dbm: list[float] = field(default_factory=list)   # per lane, lane 1 first
    tx_power_dbm: list[float] = field(default_factory=list)
    bias_ma: list[float] = field(default_factory=list)
    rx_power_limits: Range = field(default_factory=Range)
    tx_power_limits: Range = field(default_factory=Range)
    bias_limits: Range = field(default_factory=Range)
    temperature_limits: Range = field(default_factory=Range)
    ddm: bool | None = None               # module reports diagnostics at all
    interface: str | None = None
    los_lanes: list[int] = field(default_factory=list)        # lanes flagged Rx LOS by the module
    wavelength_nm: float | None = None

    @property
    def is_copper(self) -> bool:
        m = (self.media or "").lower()
        return "copper" in m or "passive" in m and "optical" not in m

    @property
    def is_optical(self) -> bool:
        """An optic (SR/LR/SX/LX/DR/FR, a laser wavelength, an AOC): it has light levels to read."""
        return not self.is_copper and (self.wavelength_nm is not None or bool(_OPTICAL.search(self.media or "")))


_OPTICAL = re.compile(r"Base-?(?:[SLEDFZ]R\d*|[SLZ]X)|\b[SLEDF]R\d?\b|\d+\s*nm\b|optical|VCSEL|laser|\bAOC\b", re.I)
NO_LIGHT_DBM = -40.0   # what a 0 mW reading (printed -inf dBm) is taken as


def power_dbm(value: str) -> float | None:
    """`0.6910 mW / -1.61 dBm` -> -1.61; `0.0000 mW / -inf dBm` -> -40; `1.2 mW` -> dBm."""
    m = re.search(r"(-?[\d.]+|-inf)\s*dBm", value, re.I)
    if m:
        v = to_float(m.group(1))
        return None if v is None else (NO_LIGHT_DBM if v == -math.inf else v)
    m = re.search(r"([\d.]+)\s*mW", value)
    if m:
        mw = to_float(m.group(1))
        if mw is None:
            return None
        return NO_LIGHT_DBM if mw <= 0 else round(10 * math.log10(mw), 2)
    return None


def _first_number(value: str) -> float | None:
    m = re.match(r"\s*(-?[\d.]+)", value)
    return to_float(m.group(1)) if m else None


_LANE = re.compile(r"^(.*?)\s*\((?:Channel|Chan|Lane)\s*(\d+)\)\s*$", re.I)
_THRESH = re.compile(r"^(.*?)\s+(high|low)\s+(alarm|warning)\s+threshold$", re.I)


def _set_lane(values: list[float], lane: int, v: float | None) -> None:
    if v is None or lane < 1 or lane > 16:
        return
    while len(values) < lane:
        values.append(math.nan)
    values[lane - 1] = v


def _quantity(key: str) -> str | None:
    k = key.lower()
    if "bias" in k:
        return "bias"
    if "rx power" in k or "rcvr" in k or "receiver" in k or "rx optical" in k:
        return "rx"
    if "output power" in k or "transmit" in k or "tx power" in k or "tx optical" in k:
        return "tx"
    if "temperature" in k:
        return "temp"
    return None


ETHTOOL_M = declare("ethtool-m", "fabric/ethtool-m-{ifname}.txt", command=("ethtool", "-m", "{ifname}"), priority=55, description="ethtool -m (transceiver module EEPROM and diagnostics)")


# `ethtool -m eth0 | grep dBm`: only the power readings and thresholds, no Identifier line.
_DDM_POWER = re.compile(r"^\s*[A-Za-z][^:]*:\s*[\d.]+\s*mW\s*/\s*(?:-?[\d.]+|-inf)\s*dBm\s*$", re.I)


def _is_power_fragment(text: str) -> bool:
    body = [ln for ln in text.split("\n") if ln.strip() and "ethtool" not in ln]
    power = sum(1 for ln in body if _DDM_POWER.match(ln))
    return power >= 2 and power * 2 >= len(body)


@ETHTOOL_M.recognizer
def is_ethtool_module(text: str) -> bool:
    return bool(re.search(r"^[ \t]*Identifier[ \t]*:[ \t]*0x[0-9a-f]{2}", text, re.M | re.I)) and "Vendor" in text or (
        _is_power_fragment(text))


@ETHTOOL_M.parser
def parse_ethtool_module(text: str) -> ModuleInfo:
    doc = normalize_document(text)
    t = doc.text
    mi = ModuleInfo(interface=command_argument(doc, "ethtool", "-m"))
    seen = False
    for ln in t.split("\n"):
        if ":" not in ln:
            continue
        key, _, value = ln.partition(":")
        key, value = key.strip(), value.strip()
        lk = key.lower()
        if lk == "identifier":
            seen = True
            m = re.search(r"\((.*)\)", value)
            mi.identifier = m.group(1) if m else value
            continue
        if lk == "vendor name":
            mi.vendor = value
        elif lk == "vendor pn":
            mi.part_number = value
        elif lk == "vendor sn":
            mi.serial = value
        elif lk in ("transceiver type", "transmitter technology"):
            mi.media = value
        elif lk == "connector" and mi.media is None:
            mi.media = value
        elif lk == "laser wavelength":
            mi.wavelength_nm = to_float(value.lower().replace("nm", ""))
        elif lk == "optical diagnostics support":
            mi.ddm = value.lower().startswith("yes")
        elif "loss of signal" in lk and lk.startswith("rx"):
            flags = re.findall(r"(Yes|No|On|Off)", value, re.I)
            mi.los_lanes = [i + 1 for i, f in enumerate(flags) if f.lower() in ("yes", "on")]
        th = _THRESH.match(key)
        if th:
            q = _quantity(th.group(1))
            if q is None:
                continue
            v = power_dbm(value) if q in ("rx", "tx") else _first_number(value)
            rng = {"rx": mi.rx_power_limits, "tx": mi.tx_power_limits, "bias": mi.bias_limits,
                   "temp": mi.temperature_limits}[q]
            attr = {("low", "alarm"): "low_alarm", ("low", "warning"): "low_warn",
                    ("high", "warning"): "high_warn", ("high", "alarm"): "high_alarm"}[
                (th.group(2).lower(), th.group(3).lower())]
            setattr(rng, attr, v)
            continue
        if "alarm" in lk or "warning" in lk or "threshold" in lk:
            continue
        lane_m = _LANE.match(key)
        base, lane = (lane_m.group(1), int(lane_m.group(2))) if lane_m else (key, 1)
        q = _quantity(base)
        if q == "temp" and "module" in base.lower():
            mi.temperature_c = _first_number(value)
        elif q == "bias":
            _set_lane(mi.bias_ma, lane, _first_number(value))
        elif q in ("rx", "tx") and ("dBm" in value or "mW" in value):
            _set_lane(mi.rx_power_dbm if q == "rx" else mi.tx_power_dbm, lane, power_dbm(value))
    if not seen and not (_is_power_fragment(t) and (mi.rx_power_dbm or mi.tx_power_dbm)):
        raise ParseError("no `Identifier :` line: not ethtool -m module output")
    for lst in (mi.rx_power_dbm, mi.tx_power_dbm, mi.bias_ma):
        # a lane the module skipped must not pass for a reading
        lst[:] = [v for v in lst if not math.isnan(v)]
    if mi.ddm is None and (mi.rx_power_dbm or mi.tx_power_dbm):
        mi.ddm = True      # readings prove it; without them, and unstated, it stays unknown (None)
    return mi
