"""`mlxcables` (NVIDIA MFT) output -> one `ModuleInfo` per cable, named by its cable name.

    Querying Cables ....

    Cable #1:
    ---------
    Cable name    : mt4119_pciconf0_cable_0
    >> No FW data to show
    -------- Cable EEPROM --------
    Identifier                     : QSFP28 (11h)
    Technology                     : Copper cable unequalized (a0h)
    Vendor                         : Mellanox
    Serial number                  : MT1707FT01544
    Part number                    : MCP1600-E002
    Temperature [c]                : N/A          (`Temperature : 31 C` in other MFT versions)
    Digital Diagnostic Monitoring  : NO
    Length [m]                     : 2 m
"""

from __future__ import annotations

import re

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import normalize
from clusterkit.parsers import ParseError
from clusterkit.parsers._fabric_text import to_float
from clusterkit.parsers.ethtool import ModuleInfo

_CABLE = re.compile(r"^\s*Cable #(\d+):?\s*$")
_KV = re.compile(r"^\s*([A-Za-z][^:]*):(.*)$")
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)")
_FIELDS = {"identifier": "identifier", "vendor": "vendor", "serial number": "serial", "part number": "part_number",
           "technology": "media"}

MLXCABLES = declare("mlxcables", "fabric/mlxcables.txt", command=("mlxcables",), priority=60,
                    description="mlxcables (cable EEPROM: type, vendor, part and serial number)")


@MLXCABLES.recognizer
def is_mlxcables(text: str) -> bool:
    return "Querying Cables" in text or (bool(re.search(r"^[ \t]*Cable #\d+:?[ \t]*$", text, re.M)) and "Cable name" in text)


@MLXCABLES.parser
def parse_mlxcables(text: str) -> list[ModuleInfo]:
    cables: list[ModuleInfo] = []
    cur: ModuleInfo | None = None
    errors: list[str] = []
    for ln in normalize(text).split("\n"):
        if _CABLE.match(ln):
            cur = ModuleInfo(interface=f"cable #{_CABLE.match(ln).group(1)}")
            cables.append(cur)
            continue
        if ln.strip().startswith("-E-"):
            errors.append(ln.strip())
        m = _KV.match(ln)
        if not m or cur is None:
            continue
        key, value = m.group(1).strip().lower(), m.group(2).strip()
        if key == "cable name":
            cur.interface = value or cur.interface
        elif key in _FIELDS:
            setattr(cur, _FIELDS[key], value)
        elif key.startswith("temperature"):
            n = _NUMBER.match(value)
            cur.temperature_c = to_float(n.group(1)) if n else None
        elif key == "digital diagnostic monitoring":
            cur.ddm = value.lower().startswith("yes")
    if not cables:
        why = errors[0] if errors else "no `Cable #N:` block"
        raise ParseError(f"mlxcables: {why}")
    return cables
