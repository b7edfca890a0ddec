"""`ibstat` and `ibstatus` output -> one `IbPort` per HCA port.

ibstat prints `CA 'mlx5_0'` blocks with tab- or space-indented `Key: value`
lines and a `Port N:` sub-block; ibstatus prints `Infiniband device 'mlx5_0'
port 1 status:` blocks. Both are reduced to the same record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clusterkit.evidence.kinds import kind
from clusterkit.evidence.text import clean
from clusterkit.parsers import ParseError
from clusterkit.parsers._fabric_text import to_float, to_int


@dataclass
class IbPort:
    device: str
    port: int
    state: str | None = None          # Active, Down, Init, Armed, Polling
    phys_state: str | None = None     # LinkUp, Disabled, Polling, ...
    rate_gbps: float | None = None
    link_layer: str | None = None     # InfiniBand | Ethernet
    port_guid: str | None = None
    node_guid: str | None = None
    lid: int | None = None
    sm_lid: int | None = None
    ca_type: str | None = None
    firmware: str | None = None
    speed_name: str | None = None     # "4X EDR" from ibstatus

    @property
    def name(self) -> str:
        return f"{self.device} port {self.port}"

    @property
    def active(self) -> bool:
        return (self.state or "").lower() == "active" and (self.phys_state or "").lower() == "linkup"


_CA = re.compile(r"^CA '([^']+)'\s*$")
_PORT = re.compile(r"^\s+Port (\d+):\s*$")
# key and value end in a non-blank instead of lazy groups before `\s*`: one pass per line
_KV = re.compile(r"^\s+([A-Za-z](?:[A-Za-z _]*[A-Za-z_])?)\s*:\s*((?:.*\S)?)\s*$")
_IBSTATUS_HEAD = re.compile(r"^Infiniband device '([^']+)' port (\d+) status:\s*$")
_FAIL = re.compile(r"^(?:(ibpanic|ibwarn|ibstat:|ibstatus:).*|.*(No IB devices found|can't open|Couldn't).*)", re.I)


def _state_word(v: str) -> str:
    """`4: ACTIVE` -> `Active`; `5: LinkUp` -> `LinkUp`; `Active` stays."""
    w = v.split(":", 1)[1].strip() if re.match(r"^\d+:", v) else v.strip()
    return w.capitalize() if w.isupper() else w


def _failure(lines: list[str]) -> str | None:
    for ln in lines:
        if _FAIL.match(ln.strip()):
            return ln.strip()
    return None


@kind("ibstat", path="fabric/ibstat.txt", priority=60, description="ibstat (HCA ports, state, rate)")
def is_ibstat(text: str) -> bool:
    return bool(re.search(r"^CA '[^'\n]+'[ \t]*$", text, re.M)) and "CA type" in text or bool(
        re.match(r"\s*ibpanic:.*ibstat", text))


@kind("ibstatus", path="fabric/ibstatus.txt", priority=60, description="ibstatus (HCA ports)")
def is_ibstatus(text: str) -> bool:
    return bool(re.search(r"^Infiniband device '[^']+' port \d+ status:", text, re.M))


def parse_ibstat(text: str) -> list[IbPort]:
    lines = clean(text).split("\n")
    ports: list[IbPort] = []
    ca: dict[str, str] = {}
    device: str | None = None
    cur: IbPort | None = None
    for ln in lines:
        m = _CA.match(ln)
        if m:
            device, ca, cur = m.group(1), {}, None
            continue
        if device is None:
            continue
        m = _PORT.match(ln)
        if m:
            cur = IbPort(device, int(m.group(1)), ca_type=ca.get("CA type"),
                         firmware=ca.get("Firmware version"), node_guid=ca.get("Node GUID"))
            ports.append(cur)
            continue
        m = _KV.match(ln)
        if not m:
            continue
        key, val = m.group(1), m.group(2)
        if cur is None:
            ca[key] = val
            continue
        if key == "State":
            cur.state = _state_word(val)
        elif key == "Physical state":
            cur.phys_state = _state_word(val)
        elif key == "Rate":
            cur.rate_gbps = to_float(val.split()[0]) if val.split() else None
        elif key == "Link layer":
            cur.link_layer = val
        elif key == "Port GUID":
            cur.port_guid = val
        elif key == "Base lid":
            cur.lid = to_int(val)
        elif key == "SM lid":
            cur.sm_lid = to_int(val)
    if not ports:
        why = _failure(lines)
        raise ParseError(f"ibstat failed: {why}" if why else "no `CA '...'` block with a port in ibstat output")
    return ports


def parse_ibstatus(text: str) -> list[IbPort]:
    lines = clean(text).split("\n")
    ports: list[IbPort] = []
    cur: IbPort | None = None
    for ln in lines:
        m = _IBSTATUS_HEAD.match(ln.strip())
        if m:
            cur = IbPort(m.group(1), int(m.group(2)))
            ports.append(cur)
            continue
        m = _KV.match(ln)
        if not m or cur is None:
            continue
        key, val = m.group(1).lower(), m.group(2)
        if key == "state":
            cur.state = _state_word(val)
        elif key == "phys state":
            cur.phys_state = _state_word(val)
        elif key == "rate":
            r = re.match(r"([\d.]+)\s*Gb/sec(?:\s*\((.*)\))?", val)
            if r:
                cur.rate_gbps = to_float(r.group(1))
                cur.speed_name = r.group(2)
        elif key == "link_layer":
            cur.link_layer = val
        elif key == "base lid":
            cur.lid = to_int(val)
        elif key == "sm lid":
            cur.sm_lid = to_int(val)
        elif key == "default gid":
            cur.port_guid = val
    if not ports:
        why = _failure(lines)
        raise ParseError(f"ibstatus failed: {why}" if why else "no `Infiniband device '...' port N status:` block in ibstatus output")
    return ports
