"""`ibswinfo -d lid-N` (unmanaged Mellanox switch inventory and health) -> SwitchInfo.

`key | value` lines between dashed rules; PSU blocks are `PSUn status | OK` followed
by indented `P/N`, `S/N`, `DC power`, `fan status`, `power (W)` lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import normalize
from clusterkit.parsers import ParseError
from clusterkit.parsers._fabric_text import to_float

# cells end in a non-blank instead of lazy groups before `\s*`: one pass per line
_ROW = re.compile(r"^(\s*)([^|\s](?:[^|]*[^|\s])?)\s*\|\s*((?:.*\S)?)\s*$")


@dataclass
class Psu:
    name: str
    status: str
    part_number: str | None = None
    serial: str | None = None
    dc_power: str | None = None
    fan_status: str | None = None
    power_w: float | None = None


@dataclass
class SwitchInfo:
    product: str | None = None
    part_number: str | None = None
    serial: str | None = None
    guid: str | None = None
    firmware: str | None = None
    temperature_c: float | None = None
    max_temperature_c: float | None = None
    fan_status: str | None = None
    fans_rpm: dict[int, float] = field(default_factory=dict)
    psus: list[Psu] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " ".join(x for x in (self.product, f"GUID {self.guid}" if self.guid else None,
                                    f"S/N {self.serial}" if self.serial else None) if x) or "switch"


IBSWINFO = declare("ibswinfo", "fabric/ibswinfo-{switch}.txt", priority=60, description="ibswinfo (switch PSU, fans, temperature)")


@IBSWINFO.recognizer
def is_ibswinfo(text: str) -> bool:
    return bool(re.search(r"^PSU\d+ status[ \t]*\|", text, re.M)) or bool(re.search(r"^fan status[ \t]*\|", text, re.M))


@IBSWINFO.parser
def parse_ibswinfo(text: str) -> SwitchInfo:
    info = SwitchInfo()
    psu: Psu | None = None
    rows = 0
    for ln in normalize(text).split("\n"):
        m = _ROW.match(ln)
        if not m:
            continue
        indent, key, value = m.group(1), m.group(2).strip().lower(), m.group(3)
        rows += 1
        pm = re.match(r"^(psu\d+) status$", key)
        if pm:
            psu = Psu(pm.group(1).upper(), value)
            info.psus.append(psu)
            continue
        if indent and psu is not None:
            if key == "p/n":
                psu.part_number = value
            elif key == "s/n":
                psu.serial = value
            elif key == "dc power":
                psu.dc_power = value
            elif key == "fan status":
                psu.fan_status = value
            elif key.startswith("power"):
                psu.power_w = to_float(value)
            continue
        psu = None
        fm = re.match(r"^fan#(\d+)", key)
        if fm:
            v = to_float(value)
            if v is not None:
                info.fans_rpm[int(fm.group(1))] = v
        elif key == "product name":
            info.product = value
        elif key == "part number":
            info.part_number = value
        elif key == "serial number":
            info.serial = value
        elif key == "guid":
            info.guid = value
        elif key == "firmware version":
            info.firmware = value
        elif key.startswith("temperature"):
            info.temperature_c = to_float(value)
        elif key.startswith("max temp"):
            info.max_temperature_c = to_float(value)
        elif key == "fan status":
            info.fan_status = value
    if not rows or not (info.psus or info.fan_status or info.guid):
        raise ParseError("no `key | value` rows (PSU status, fan status, GUID) in ibswinfo output")
    return info
