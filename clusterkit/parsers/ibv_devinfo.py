"""`ibv_devinfo [-v]` (rdma-core) output -> one `IbPort` per HCA port, like ibstat's.

    hca_id:	mlx5_0
    	transport:			InfiniBand (0)
    	fw_ver:				28.39.2048
    	node_guid:			58a2:e103:002a:09b8
    	sys_image_guid:			58a2:e103:002a:09b8
    	vendor_part_id:			4129
    	phys_port_cnt:			1
    		port:	1
    			state:			PORT_ACTIVE (4)
    			sm_lid:			1
    			port_lid:		12
    			link_layer:		InfiniBand
    			active_width:		4X (2)            (-v only)
    			active_speed:		100.0 Gbps (128)  (-v only)
    			phys_state:		LINK_UP (5)       (-v only)

Without -v there is no physical state and no rate: a port is then judged by `state` alone.
"""

from __future__ import annotations

import re

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import normalize
from clusterkit.parsers import ParseError
from clusterkit.parsers._fabric_text import to_float, to_int
from clusterkit.parsers.ibstat import IbPort, NoDevices, no_devices

_HCA = re.compile(r"^\s*hca_id:\s*(\S+)\s*$")
_PORT = re.compile(r"^\s*port:\s*(\d+)\s*$")
_KV = re.compile(r"^\s*([a-z][a-z0-9_]*):(.*)$")
_STATES = {"PORT_ACTIVE": "Active", "PORT_DOWN": "Down", "PORT_INIT": "Initializing", "PORT_ARMED": "Armed",
           "PORT_ACTIVE_DEFER": "ActiveDefer", "PORT_NOP": "Nop"}
_PHYS = {"LINK_UP": "LinkUp", "POLLING": "Polling", "DISABLED": "Disabled", "SLEEP": "Sleep",
         "PORT_CONFIGURATION TRAINING": "PortConfigurationTraining", "LINK_ERROR RECOVERY": "LinkErrorRecovery",
         "PHY TEST": "PhyTest"}
_WIDTH = re.compile(r"^\s*(\d+)X\b", re.I)
_SPEED = re.compile(r"^\s*([\d.]+)\s*Gbps", re.I)


def _word(value: str, table: dict[str, str]) -> str:
    """`PORT_DOWN (1)` -> `Down`; an unknown word is kept as printed."""
    w = value.strip()
    if w.endswith(")") and "(" in w:
        w = w[:w.rindex("(")].strip()
    return table.get(w.upper(), w)


def _colon_guid(v: str) -> str:
    """`58a2:e103:002a:09b8` -> `0x58a2e103002a09b8` (ibstat's form)."""
    h = v.strip().replace(":", "").lower()
    return f"0x{h}" if re.fullmatch(r"[0-9a-f]{1,16}", h) else v.strip()


IBV_DEVINFO = declare("ibv_devinfo", "fabric/ibv_devinfo.txt", command=("ibv_devinfo", "-v"), priority=60,
                      description="ibv_devinfo [-v] (HCA ports, state, rate)")


@IBV_DEVINFO.recognizer
def is_ibv_devinfo(text: str) -> bool:
    return bool(re.search(r"^[ \t]*hca_id:[ \t]*\S+[ \t]*$", text, re.M)) and bool(
        re.search(r"^[ \t]*(?:phys_port_cnt|port|state|fw_ver):", text, re.M))


@IBV_DEVINFO.parser
def parse_ibv_devinfo(text: str) -> list[IbPort]:
    ports: list[IbPort] = []
    hca: dict[str, str] = {}
    device: str | None = None
    cur: IbPort | None = None
    width: dict[int, int] = {}
    speed: dict[int, float] = {}
    lines = normalize(text).split("\n")
    for ln in lines:
        m = _HCA.match(ln)
        if m:
            device, hca, cur = m.group(1), {}, None
            continue
        if device is None:
            continue
        m = _PORT.match(ln)
        if m:
            part = hca.get("vendor_part_id", "").strip()
            cur = IbPort(device, int(m.group(1)), ca_type=f"MT{part}" if part.isdigit() else None,
                         firmware=hca.get("fw_ver"), node_guid=_colon_guid(hca["node_guid"]) if "node_guid" in hca
                         else None, sys_guid=_colon_guid(hca["sys_image_guid"]) if "sys_image_guid" in hca else None)
            ports.append(cur)
            continue
        m = _KV.match(ln)
        if not m:
            continue
        key, val = m.group(1), m.group(2).strip()
        if cur is None:
            hca[key] = val
        elif key == "state":
            cur.state = _word(val, _STATES)
        elif key == "phys_state":
            cur.phys_state = _word(val, _PHYS)
        elif key == "link_layer":
            cur.link_layer = val
        elif key == "port_lid":
            cur.lid = to_int(val)
        elif key == "sm_lid":
            cur.sm_lid = to_int(val)
        elif key == "active_width" and (w := _WIDTH.match(val)):
            width[id(cur)] = int(w.group(1))
        elif key == "active_speed" and (s := _SPEED.match(val)):
            v = to_float(s.group(1))
            if v is not None:
                speed[id(cur)] = v
    for p in ports:
        if id(p) in width and id(p) in speed:
            p.rate_gbps = _rate(width[id(p)], speed[id(p)])
    if not ports:
        fail = next((ln.strip() for ln in lines if re.search(r"(?i)no ib devices found|failed to get", ln)), None)
        if (none := no_devices(normalize(text).split("\n"))) is not None:
            raise NoDevices(none)
        raise ParseError(f"ibv_devinfo failed: {fail}" if fail else "no `hca_id:` block with a `port:` in ibv_devinfo output")
    return ports


def _rate(lanes: int, lane_gbps: float) -> float:
    """4 lanes x 14.0 Gbps (FDR) is printed `56` by ibstat; 4 x 25.0 is 100."""
    return float(round(lanes * lane_gbps))
