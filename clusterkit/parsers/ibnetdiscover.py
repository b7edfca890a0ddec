"""`ibnetdiscover -p` (the ports report of the whole fabric) -> the same link records as iblinkinfo.

Line shapes (infiniband-diags `dump_ports_report`: `%2s %5d %2d 0x%016x %s %s`, then either the peer
` - %2s %5d %2d 0x%016x ( '%s' - '%s' )` or, for a port with no peer, 36 blanks and `'%s'`):
    CA   134  1 0x7cfe9003003b4bde 4x EDR - SW  1719 10 0x7cfe9003009ce5b0 ( 'o0001 HCA-1' - 'ib-i1l1s01' )
    SW  2052 37 0x506b4b03005c2740 4x ???                                    'ib-i4l1s01'
Width is `1x`..`12x` or `???`, speed SDR..NDR, FDR10 or `???`. A port without a peer is not a link: the
width and speed it shows are what the port would try, not what trained, so they are not kept.
"""

from __future__ import annotations

import re

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import normalize
from clusterkit.parsers import ParseError
from clusterkit.parsers._fabric_text import LANE_SPEEDS
from clusterkit.parsers.iblinkinfo import IbLink

# One side: type, LID, port, GUID, width, speed. `[ \t]` only: a match never runs across lines.
_SIDE = r"(CA|SW|RT)[ \t]+(\d+)[ \t]+(\d+)[ \t]+(0x[0-9a-fA-F]+)"
_LINK = re.compile(rf"^[ \t]*{_SIDE}[ \t]+(\d+x|\?\?\?)[ \t]+([A-Z0-9]+|\?\?\?)[ \t]+-[ \t]+{_SIDE}[ \t]+\((.*)$")
_ALONE = re.compile(rf"^[ \t]*{_SIDE}[ \t]+(?:\d+x|\?\?\?)[ \t]+(?:[A-Z0-9]+|\?\?\?)[ \t]+'(.*)'[ \t]*$")
_SIGNATURE = re.compile(rf"^[ \t]*{_SIDE}[ \t]+(?:\d+x|\?\?\?)[ \t]+(?:[A-Z0-9]+|\?\?\?)[ \t]+(?:-[ \t]+(?:CA|SW|RT)[ \t]|')",
                        re.M)
_SECTION = {"CA": "CA", "SW": "Switch", "RT": "Router"}
_LANE_SIGNAL = {name: signal for signal, (_, name) in LANE_SPEEDS.items()}   # EDR -> 25.78125


IBNETDISCOVER_PORTS = declare("ibnetdiscover-ports", "fabric/ibnetdiscover-p.txt", command=("ibnetdiscover", "-p"),
                              priority=60, description="ibnetdiscover -p (ports report of the whole fabric)")


@IBNETDISCOVER_PORTS.recognizer
def is_ibnetdiscover_ports(text: str) -> bool:
    return _SIGNATURE.search(text) is not None


def _width(w: str) -> str | None:
    return w.upper() if w != "???" else None


def _names(tail: str) -> tuple[str, str] | None:
    """`'a' - 'b' )` -> (a, b), split at the first `' - '` (string methods: linear on any line)."""
    inner = tail.strip()
    if not inner.endswith(")"):
        return None
    inner = inner[:-1].strip()
    cut = inner.find("' - '")
    if not (inner.startswith("'") and inner.endswith("'")) or cut < 1:
        return None
    return inner[1:cut], inner[cut + 5:-1]


@IBNETDISCOVER_PORTS.parser
def parse_ibnetdiscover_ports(text: str) -> list[IbLink]:
    links: list[IbLink] = []
    for ln in normalize(text).split("\n"):
        m = _LINK.match(ln)
        if m:
            (kind, lid, port, guid, width, speed, pkind, plid, pport, _pguid, tail) = m.groups()
            names = _names(tail)
            if names is None:
                continue
            name, pname = names
            lane = _LANE_SIGNAL.get(speed)
            w = _width(width)
            links.append(IbLink(_SECTION[kind], name, guid, int(lid), int(port), w if lane else None, lane,
                                "Active", "LinkUp", int(plid), int(pport), pname, peer_section=_SECTION[pkind]))
            continue
        m = _ALONE.match(ln)
        if m:
            kind, lid, port, guid, name = m.groups()
            links.append(IbLink(_SECTION[kind], name, guid, int(lid), int(port), None, None,
                                "Down", "", None, None, ""))
    if not links:
        raise ParseError("no `TYPE LID PORT GUID WIDTH SPEED - TYPE LID PORT GUID ( 'name' - 'name' )` line "
                         "in ibnetdiscover -p output")
    return links
