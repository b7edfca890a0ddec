"""`iblinkinfo` output -> the links between CAs and switch ports.

Line shapes (CA and Switch sections):
    0xb883...c4   6    1[  ] ==( 4X  25.78125 Gbps Active/  LinkUp)==>   3    3[  ] "MF0;sw:MQM8700/U1" ( )
                  3    1[  ] ==( 4X  25.78125 Gbps Active/  LinkUp)==>   1    1[  ] "gpu-0 HCA-1" ( )
                  3   10[  ] ==(                Down/ Polling)==>             [  ] "" ( )
The trailing `( ... )` may say `Could be 4X 53.125 Gbps` when both ends support more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import normalize
from clusterkit.parsers import ParseError
from clusterkit.parsers._fabric_text import lane_rate, to_float

# The name: what precedes an optional last ':' and trailing blanks, found in one pass (a lazy
# name before `:?\s*$` retried every blank run). Alternatives: ends in neither ':' nor a blank;
# ends in ':' or a blank before that last ':'; empty.
_SECTION = re.compile(r"^(CA|Switch):\s*(?:(0x[0-9a-fA-F]+)\s+)?(.*[^:\s]|.*[\s:](?=:\s*$)|):?\s*$")
_LINK = re.compile(
    r"^\s*(?:(?P<guid>0x[0-9a-fA-F]+)\s+)?(?P<lid>\d+)\s+(?P<port>\d+)\[[^\]]*\]\s*==\(\s*"
    r"(?:(?P<width>\d+X)\s+(?P<speed>[\d.]+)\s+Gbps\s+)?(?P<state>\w+)/\s*(?P<phys>\w+)\s*\)==>\s*"
    r"(?:(?P<plid>\d+)\s+(?P<pport>\d+))?\s*\[[^\]]*\]\s*\"(?P<pname>[^\"]*)\"\s*\((?P<note>[^)]*)\)?")
_COULD = re.compile(r"Could be\s+(\d+X)?\s*([\d.]+)\s*Gbps", re.I)


@dataclass
class IbLink:
    section: str                 # CA | Switch
    node_name: str               # "gpu-v100-3 HCA-1" or the switch description
    node_guid: str | None
    lid: int
    port: int
    width: str | None            # "4X"
    lane_gbps: float | None      # signalling per lane as printed (25.78125)
    state: str
    phys_state: str
    peer_lid: int | None
    peer_port: int | None
    peer_name: str
    could_be_lane_gbps: float | None = None
    peer_section: str | None = None   # CA | Switch | Router where the tool says (ibnetdiscover -p), else None

    @property
    def lanes(self) -> int:
        return int(self.width[:-1]) if self.width else 0

    @property
    def rate_gbps(self) -> float | None:
        """Nominal data rate (4X EDR = 100)."""
        if self.lane_gbps is None or not self.lanes:
            return None
        return lane_rate(self.lane_gbps)[0] * self.lanes

    @property
    def speed_name(self) -> str:
        if self.lane_gbps is None:
            return "no link"
        return f"{self.width} {lane_rate(self.lane_gbps)[1]}"


IBLINKINFO = declare("iblinkinfo", "fabric/iblinkinfo.txt", command=("iblinkinfo",), priority=60, description="iblinkinfo (CA and switch port links)")


@IBLINKINFO.recognizer
def is_iblinkinfo(text: str) -> bool:
    return "==(" in text and ")==>" in text and bool(re.search(r"^(CA|Switch):", text, re.M))


@IBLINKINFO.parser
def parse_iblinkinfo(text: str) -> list[IbLink]:
    links: list[IbLink] = []
    section, name, guid = None, "", None
    for ln in normalize(text).split("\n"):
        m = _SECTION.match(ln.strip())
        if m and ")==>" not in ln:
            section, guid, name = m.group(1), m.group(2), m.group(3).strip()
            continue
        m = _LINK.match(ln)
        if not m or section is None:
            continue
        note = m.group("note") or ""
        could = _COULD.search(note)
        links.append(IbLink(
            section, name, m.group("guid") or guid, int(m.group("lid")), int(m.group("port")),
            m.group("width"), to_float(m.group("speed")) if m.group("speed") else None,
            m.group("state"), m.group("phys"),
            int(m.group("plid")) if m.group("plid") else None,
            int(m.group("pport")) if m.group("pport") else None,
            m.group("pname"), to_float(could.group(2)) if could else None))
    if not links:
        raise ParseError("no `==( ... )==>` link line under a CA:/Switch: heading in iblinkinfo output")
    return links
