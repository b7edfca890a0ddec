"""`ibstat` and `ibstatus` output -> one `IbPort` per HCA port.

ibstat prints `CA 'mlx5_0'` blocks with tab- or space-indented `Key: value`
lines and a `Port N:` sub-block; ibstatus prints `Infiniband device 'mlx5_0'
port 1 status:` blocks. Both are reduced to the same record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import normalize
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
    sys_guid: str | None = None       # System image GUID: the physical card (shared by its ports/functions)

    @property
    def name(self) -> str:
        return f"{self.device} port {self.port}"

    @property
    def active(self) -> bool:
        # ibv_devinfo without -v shows no physical state: Active alone is then enough.
        return (self.state or "").lower() == "active" and (self.phys_state or "linkup").lower() == "linkup"

    @property
    def lost_link(self) -> bool:
        """An InfiniBand port polling for a partner while it still holds the unicast LID a subnet manager gave it
        (and that SM's LID): it was part of the fabric and lost its link; a never-cabled port has LID 0."""
        return (not self.active and (self.phys_state or "").lower() == "polling"
                and (self.link_layer or "InfiniBand").lower() == "infiniband"
                and 0 < (self.lid or 0) < 0xC000 and 0 < (self.sm_lid or 0) < 0xC000)

    @property
    def trained(self) -> bool:
        """The physical link is up although the port is not Active (no subnet manager). Initializing and
        Armed are states the SM moves a trained port through, so they say so without a physical state."""
        return not self.active and ((self.phys_state or "").lower() == "linkup"
                                    or (self.state or "").lower() in ("initializing", "init", "armed"))


# ibstat's own words; matched without regard to indentation, which mail clients strip.
_CA = re.compile(r"^\s*CA '([^']+)'\s*$")
_PORT = re.compile(r"^\s*Port (\d+):\s*$")
_KV = re.compile(r"^\s*([A-Za-z][A-Za-z _]*):(.*)$")   # linear: key and value are stripped after
_IBSTATUS_HEAD = re.compile(r"^Infiniband device '([^']+)' port (\d+) status:\s*$")
_FAIL = re.compile(r"^(?:(ibpanic|ibwarn|ibstat:|ibstatus:).*|.*(No IB devices found|can't open|Couldn't).*)", re.I)
_PANIC = re.compile(r"^[ \t]*ibpanic:[^\n]*", re.M)
# The tools saying the node has no InfiniBand device at all (ibstat, ibv_devinfo, ibstatus).
_NO_DEVICES = re.compile(r"No IB devices found|sys files not found \(/sys/class/infiniband", re.I)


class NoDevices(ParseError):
    """The tool ran and found no InfiniBand device: evidence of absence, not unusable output."""


def no_devices(lines: list[str]) -> str | None:
    return next((ln.strip() for ln in lines if _NO_DEVICES.search(ln)), None)
_PANIC_DEVICE = re.compile(r"IB device '([^']+)'")
_PORT_KEYS = {"State", "Physical state", "Rate", "Base lid", "LMC", "SM lid", "Capability mask", "Port GUID",
              "Link layer"}
BARE_PORT = "HCA"   # the device name of a `Port 1:` block pasted without its `CA '...'` line


def _state_word(v: str) -> str:
    """`4: ACTIVE` -> `Active`; `5: LinkUp` -> `LinkUp`; `Active` stays."""
    w = v.split(":", 1)[1].strip() if re.match(r"^\d+:", v) else v.strip()
    return w.capitalize() if w.isupper() else w


def _failure(lines: list[str]) -> str | None:
    for ln in lines:
        if _FAIL.match(ln.strip()):
            return ln.strip()
    return None


def aborted(text: str) -> tuple[str, str | None] | None:
    """(the `ibpanic:` line, the device it names) when ibstat stopped part-way, else None."""
    m = _PANIC.search(normalize(text))
    if not m:
        return None
    d = _PANIC_DEVICE.search(m.group(0))
    return m.group(0).strip(), d.group(1) if d else None


IBSTAT = declare("ibstat", "fabric/ibstat.txt", command=("ibstat",), priority=60, description="ibstat (HCA ports, state, rate)")


@IBSTAT.recognizer
def is_ibstat(text: str) -> bool:
    return bool(re.search(r"^CA '[^'\n]+'[ \t]*$", text, re.M)) and "CA type" in text or bool(
        re.match(r"\s*ibpanic:.*ibstat", text)) or _is_port_block(text)


def _is_port_block(text: str) -> bool:
    """A bare `Port 1:` block (the CA header cut off): its first lines are the port's State."""
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()][:3]
    return (len(lines) >= 3 and bool(_PORT.match(lines[0])) and lines[1].startswith("State:")
            and lines[2].startswith("Physical state:"))


IBSTATUS = declare("ibstatus", "fabric/ibstatus.txt", command=("ibstatus",), priority=60, description="ibstatus (HCA ports)")


@IBSTATUS.recognizer
def is_ibstatus(text: str) -> bool:
    return bool(re.search(r"^Infiniband device '[^']+' port \d+ status:", text, re.M)
                or re.search(r"^Fatal error:\s+device '\*': sys files not found \(/sys/class/infiniband", text, re.M))


@IBSTAT.parser
def parse_ibstat(text: str) -> list[IbPort]:
    lines = normalize(text).split("\n")
    ports: list[IbPort] = []
    ca: dict[str, str] = {}
    device: str | None = None
    cur: IbPort | None = None
    for ln in lines:
        m = _CA.match(ln)
        if m:
            device, ca, cur = m.group(1), {}, None
            continue
        m = _PORT.match(ln)
        if m:
            cur = IbPort(device or BARE_PORT, int(m.group(1)), ca_type=ca.get("CA type"),
                         firmware=ca.get("Firmware version"), node_guid=ca.get("Node GUID"),
                         sys_guid=ca.get("System image GUID"))
            ports.append(cur)
            continue
        m = _KV.match(ln)
        if not m or (device is None and cur is None):
            continue
        key, val = m.group(1).strip(), m.group(2).strip()
        if cur is None or key not in _PORT_KEYS:
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
        if (none := no_devices(lines)) is not None:
            raise NoDevices(none)
        why = _failure(lines)
        raise ParseError(f"ibstat failed: {why}" if why else "no `CA '...'` block with a port in ibstat output")
    return ports


@IBSTATUS.parser
def parse_ibstatus(text: str) -> list[IbPort]:
    lines = normalize(text).split("\n")
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
        key, val = m.group(1).strip().lower(), m.group(2).strip()
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
        if (none := no_devices(lines)) is not None:
            raise NoDevices(none)
        why = _failure(lines)
        raise ParseError(f"ibstatus failed: {why}" if why else "no `Infiniband device '...' port N status:` block in ibstatus output")
    return ports
