"""`mlxlink -d <dev> -p <port> [-m] [-c] [-e]` output -> link, module and BER facts.

Sections of `Key : value` lines (Operational Info, Troubleshooting Info,
Module Info, Physical Counters and BER Info). Newer MFT colours values with
ANSI codes, prints per-lane lists `a,b,c,d` followed by the module's range
`[lo..hi]`, and writes BER as `15E-255` (15 x 10^-255).

A paste may hold several devices' outputs (a shell loop over the HCAs, often
filtered through grep), each under a banner line that names the device
(`===== mlx5_3 FEC Counters =====`, `mlx5_3:`, `/dev/mst/mt4123_pciconf3`):
each becomes its own report, judged on the lines it has.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import normalize_document
from clusterkit.parsers import ParseError
from clusterkit.parsers._fabric_text import command_argument, speed_gbps, to_float, to_int
from clusterkit.parsers.ethtool import ModuleInfo, Range

_KV = re.compile(r"^([A-Za-z][^:]*):(.*)$")   # linear: key and value are stripped after
_BER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[eE]\s*([-+]?\d+)\s*$")
_RANGE = re.compile(r"\[\s*(-?[\d.]+)\s*\.\.\s*(-?[\d.]+)\s*\]")
# a line that only names a device (banner characters, the name, words without a colon, at most a trailing colon)
_DEVICE_BANNER = re.compile(r"[=#*\- \t]*(?:Device:?[ \t]*)?(?:/dev/mst/)?(mlx5_\d+|mt\d+_pciconf\d+(?:\.\d+)?)"
                            r"(?![\w/])[^:]*:?[ \t]*")


@dataclass
class MlxlinkReport:
    device: str | None = None
    port: int | None = None
    state: str | None = None
    phys_state: str | None = None
    speed: str | None = None              # "100G", "400G", "HDR"
    width: str | None = None
    fec: str | None = None
    recommendation: str | None = None
    firmware: str | None = None
    effective_ber: float | None = None    # after FEC
    raw_ber: float | None = None          # before FEC
    effective_errors: int | None = None
    raw_errors_per_lane: list[int] = field(default_factory=list)
    link_down_counter: int | None = None
    link_error_recovery_counter: int | None = None
    minutes_since_clear: float | None = None
    module: ModuleInfo | None = None
    enabled_speeds: list[str] = field(default_factory=list)   # "Enabled Link Speed": what the port may train at
    cable_speeds: list[str] = field(default_factory=list)     # "Supported Cable Speed": what the cable advertises
    status_opcode: int | None = None
    others: list[MlxlinkReport] = field(default_factory=list)   # the further devices of a multi-device paste

    @property
    def reports(self) -> list[MlxlinkReport]:
        """Every device's report of the paste: this one, then the others."""
        return [self, *self.others]

    @property
    def lanes(self) -> int:
        m = re.match(r"\s*(\d+)", self.width or "")
        return int(m.group(1)) if m else 4

    @property
    def link_layer(self) -> str | None:
        if not self.speed:
            return None
        return "InfiniBand" if self.speed.strip().upper().startswith("IB-") else "Ethernet"

    @property
    def rate_gbps(self) -> float | None:
        return speed_gbps(self.speed, self.lanes) if self.speed else None

    @property
    def cable_top_gbps(self) -> float | None:
        """The fastest speed the cable advertises, at this link's width."""
        rates = [r for r in (speed_gbps(t, self.lanes) for t in self.cable_speeds) if r is not None]
        return max(rates) if rates else None


def parse_ber(value: str) -> float | None:
    """`15E-255` -> 1.5e-254; `1.2e-12` -> 1.2e-12; N/A -> None."""
    m = _BER.match(value)
    if m:
        try:
            return float(m.group(1)) * 10.0 ** int(m.group(2)) if int(m.group(2)) > -300 else 0.0
        except OverflowError:
            return None
    return to_float(value)


def _lanes(value: str) -> tuple[list[float], Range | None]:
    rng = None
    r = _RANGE.search(value)
    if r:
        rng = Range(low_alarm=to_float(r.group(1)), high_alarm=to_float(r.group(2)))
        value = value[:r.start()]
    vals = [to_float(v) for v in value.split(",")]
    return [v for v in vals if v is not None], rng


def _speed_list(value: str) -> list[str]:
    """`0x0000001f (FDR,FDR10,QDR,DDR,SDR)` -> the names in the parentheses."""
    inner = value[value.find("(") + 1:value.rfind(")")] if "(" in value and ")" in value else ""
    return [w.strip() for w in inner.split(",") if w.strip()]


MLXLINK = declare("mlxlink", "fabric/mlxlink-{device}.txt", command=("mlxlink", "-d", "{device}", "-p", "1", "-m", "-c"), priority=60, description="mlxlink (port, module, BER)")


@MLXLINK.recognizer
def is_mlxlink(text: str) -> bool:
    # the BER lines are mlxlink's own words: a `--show_counters | grep` keeps them without any section title
    return bool(re.search(r"^(?:Operational Info[ \t]*|(?:Effective|Raw) Physical BER[ \t]*:.*)$", text, re.M)) or (
        "Physical BER" in text and "Link Down Counter" in text)


def _blocks(lines: list[str], device: str | None) -> list[tuple[str | None, list[str]]]:
    """(device, lines) per device banner; the lines before the first banner belong to `device`."""
    out: list[tuple[str | None, list[str]]] = [(device, [])]
    for ln in lines:
        m = _DEVICE_BANNER.fullmatch(ln) if len(ln) < 200 else None
        if m:
            out.append((m.group(1), []))
        else:
            out[-1][1].append(ln)
    return out


@MLXLINK.parser
def parse_mlxlink(text: str) -> MlxlinkReport:
    doc = normalize_document(text)
    port = command_argument(doc, "mlxlink", "-p")
    reports = []
    for device, lines in _blocks(doc.text.split("\n"), command_argument(doc, "mlxlink", "-d")):
        rep = _parse_block(lines, MlxlinkReport(device=device, port=to_int(port) if port else None))
        if rep is not None:
            reports.append(rep)
    if not reports:
        raise ParseError("no known `Key : value` line (State, Speed, BER, Module Info) in mlxlink output")
    reports[0].others = reports[1:]
    return reports[0]


def _parse_block(lines: list[str], rep: MlxlinkReport) -> MlxlinkReport | None:
    """One device's `Key : value` lines into `rep`; None when it has none mlxlink prints."""
    mod = ModuleInfo()
    keys = 0
    for ln in lines:
        m = _KV.match(ln.strip())
        if not m:
            continue
        key, value = m.group(1).strip(), m.group(2).strip()
        lk = key.lower()
        keys += 1
        if lk == "state":
            rep.state = value
        elif lk == "physical state":
            rep.phys_state = value
        elif lk == "speed":
            rep.speed = value
        elif lk == "width":
            rep.width = value
        elif lk == "fec":
            rep.fec = value
        elif lk.startswith("enabled link speed"):
            rep.enabled_speeds = _speed_list(value)
        elif lk.startswith("supported cable speed"):
            rep.cable_speeds = _speed_list(value)
        elif lk == "status opcode":
            rep.status_opcode = to_int(value)
        elif lk == "recommendation":
            rep.recommendation = value
        elif lk == "firmware version":
            rep.firmware = value
        elif lk == "effective physical ber":
            rep.effective_ber = parse_ber(value)
        elif lk == "raw physical ber":
            rep.raw_ber = parse_ber(value)
        elif lk == "effective physical errors":
            rep.effective_errors = to_int(value)
        elif lk == "raw physical errors per lane":
            rep.raw_errors_per_lane = [int(v) for v in _lanes(value)[0] if math.isfinite(v)]
        elif lk == "link down counter":
            rep.link_down_counter = to_int(value)
        elif lk == "link error recovery counter":
            rep.link_error_recovery_counter = to_int(value)
        elif lk.startswith("time since last clear"):
            rep.minutes_since_clear = to_float(value)
        elif lk.startswith("temperature"):
            vals, rng = _lanes(value)
            mod.temperature_c = vals[0] if vals else None
            mod.temperature_limits = rng or mod.temperature_limits
        elif lk.startswith("rx power current"):
            mod.rx_power_dbm, rng = _lanes(value)
            mod.rx_power_limits = rng or mod.rx_power_limits
        elif lk.startswith("tx power current"):
            mod.tx_power_dbm, rng = _lanes(value)
            mod.tx_power_limits = rng or mod.tx_power_limits
        elif lk.startswith("bias current"):
            mod.bias_ma, rng = _lanes(value)
            mod.bias_limits = rng or mod.bias_limits
        elif lk == "identifier":
            mod.identifier = value
        elif lk == "vendor name":
            mod.vendor = value
        elif lk == "vendor part number":
            mod.part_number = value
        elif lk == "vendor serial number":
            mod.serial = value
        elif lk == "cable technology":
            mod.media = value
        elif lk == "digital diagnostic monitoring":
            mod.ddm = value.lower().startswith("yes")
        else:
            keys -= 1
    if keys == 0:
        return None
    if mod.identifier or mod.rx_power_dbm or mod.vendor:
        rep.module = mod
    return rep
