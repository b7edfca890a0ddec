"""`dmidecode -t bios` (DMI type 0): the BIOS vendor, version and date.

The power verdict compares a node's BIOS with the rest of the fleet: vendors
ship power-delivery fixes as BIOS updates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import normalize
from clusterkit.parsers import ParseError


@dataclass
class BiosInfo:
    vendor: str | None
    version: str
    release_date: str | None


DMIDECODE_BIOS = declare("dmidecode-bios", "host/dmidecode-bios.txt", command=("dmidecode", "-t", "bios"), priority=55, description="dmidecode -t bios")


@DMIDECODE_BIOS.recognizer
def is_dmidecode_bios(text: str) -> bool:
    return "BIOS Information" in text and bool(re.search(r"^[ \t]*Version:", text, re.M))


@DMIDECODE_BIOS.parser
def parse_dmidecode_bios(text: str) -> BiosInfo:
    t = normalize(text)
    i = t.find("BIOS Information")
    if i < 0:
        raise ParseError("no 'BIOS Information' section: not dmidecode -t bios output")
    body = t[i:].split("\n\n", 1)[0]

    def field_(name: str) -> str | None:
        # blanks within the line only, and a value ending in a non-blank: linear on any line
        m = re.search(rf"^[ \t]*{name}:[ \t]*(\S(?:.*\S)?)[ \t]*$", body, re.M)
        return m.group(1) if m else None

    version = field_("Version")
    if not version:
        raise ParseError("BIOS Information has no Version line")
    return BiosInfo(field_("Vendor"), version, field_("Release Date"))
