"""Port counter snapshots: the collector's JSON, a `=== ./name ===` shell dump of
a sysfs counters directory, and `perfquery [-x]` output -> one `Snapshot`.

Counter names are the sysfs ones (symbol_error, link_downed, ...); perfquery's
names are mapped onto them so every source is judged by the same limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from clusterkit.evidence.kinds import declare, variant
from clusterkit.evidence.normalize import normalize
from clusterkit.parsers import ParseError, json_object

SCHEMA = "clusterkit.fabric.counters/1"

# `perfquery -E` (PortRcvErrorDetails, IBA 16.1.4.8) breaks PortRcvErrors down by cause, `perfquery -D`
# (PortXmitDiscardDetails, 16.1.4.9) PortXmitDiscards; 16-bit counters each.
RCV_ERROR_DETAILS = ("port_local_physical_errors", "port_malformed_pkt_errors", "port_buffer_overrun_errors",
                     "port_dlid_mapping_errors", "port_vl_mapping_errors", "port_looping_errors")
XMIT_DISCARD_DETAILS = ("port_inactive_discards", "port_neighbor_mtu_discards", "port_sw_lifetime_limit_discards",
                        "port_sw_hoq_lifetime_limit_discards")

# Width of the legacy PortCounters fields (IBA 16.1.3.5): a value at the top
# of its range means "at least this many", the counter stopped counting.
LEGACY_MAX: dict[str, int] = {
    "symbol_error": 0xFFFF, "link_error_recovery": 0xFF, "link_downed": 0xFF,
    "port_rcv_errors": 0xFFFF, "port_rcv_remote_physical_errors": 0xFFFF,
    "port_rcv_switch_relay_errors": 0xFFFF, "port_xmit_discards": 0xFFFF,
    "port_xmit_constraint_errors": 0xFF, "port_rcv_constraint_errors": 0xFF,
    "local_link_integrity_errors": 0xF, "excessive_buffer_overrun_errors": 0xF,
    "VL15_dropped": 0xFFFF, "port_xmit_wait": 0xFFFFFFFF,
    **dict.fromkeys(RCV_ERROR_DETAILS + XMIT_DISCARD_DETAILS, 0xFFFF),
}

PERFQUERY_NAMES = {
    "SymbolErrorCounter": "symbol_error", "LinkErrorRecoveryCounter": "link_error_recovery",
    "LinkDownedCounter": "link_downed", "PortRcvErrors": "port_rcv_errors",
    "PortRcvRemotePhysicalErrors": "port_rcv_remote_physical_errors",
    "PortRcvSwitchRelayErrors": "port_rcv_switch_relay_errors", "PortXmitDiscards": "port_xmit_discards",
    "PortXmitConstraintErrors": "port_xmit_constraint_errors",
    "PortRcvConstraintErrors": "port_rcv_constraint_errors",
    "LocalLinkIntegrityErrors": "local_link_integrity_errors",
    "ExcessiveBufferOverrunErrors": "excessive_buffer_overrun_errors", "VL15Dropped": "VL15_dropped",
    "PortXmitData": "port_xmit_data", "PortRcvData": "port_rcv_data",
    "PortXmitPkts": "port_xmit_packets", "PortRcvPkts": "port_rcv_packets", "PortXmitWait": "port_xmit_wait",
    # perfquery -E
    "PortLocalPhysicalErrors": "port_local_physical_errors", "PortMalformedPktErrors": "port_malformed_pkt_errors",
    "PortBufferOverrunErrors": "port_buffer_overrun_errors", "PortDLIDMappingErrors": "port_dlid_mapping_errors",
    "PortVLMappingErrors": "port_vl_mapping_errors", "PortLoopingErrors": "port_looping_errors",
    # perfquery -D
    "PortInactiveDiscards": "port_inactive_discards", "PortNeighborMTUDiscards": "port_neighbor_mtu_discards",
    "PortSwLifetimeLimitDiscards": "port_sw_lifetime_limit_discards",
    "PortSwHOQLifetimeLimitDiscards": "port_sw_hoq_lifetime_limit_discards",
}


@dataclass
class PortSnapshot:
    device: str
    port: int
    counters: dict[str, int] = field(default_factory=dict)
    hw_counters: dict[str, int] = field(default_factory=dict)
    state: str | None = None
    phys_state: str | None = None
    rate: str | None = None
    link_layer: str | None = None
    firmware: str | None = None
    node_guid: str | None = None
    netdevs: list[str] = field(default_factory=list)
    label: str | None = None      # how a port that is no local HCA's is named (a switch's, from ibqueryerrors)

    @property
    def key(self) -> str:
        return f"{self.device}/{self.port}"


@dataclass
class Snapshot:
    ports: dict[str, PortSnapshot] = field(default_factory=dict)   # "mlx5_0/1" -> port
    net: dict[str, dict[str, Any]] = field(default_factory=dict)   # ifname -> carrier counts etc.
    taken_at: float | None = None
    uptime_s: float | None = None
    source: str = "collector"                                       # collector | dump | perfquery | ibqueryerrors

    @property
    def pasted(self) -> bool:
        """Counters a person pasted (a tool's printout), not clusterkit's own snapshot: with no
        window they are all there is to judge, so they are judged as lifetime totals."""
        return self.source != "collector"


def _int_map(d: Any) -> dict[str, int]:
    if not isinstance(d, dict):
        return {}
    return {str(k): int(v) for k, v in d.items() if isinstance(v, int) and not isinstance(v, bool)}


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)


def _opt_float(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


COUNTERS_AFTER = declare("fabric-counters", "fabric/counters-after.json", command=("python3", "-", "--phase", "after"),
                         priority=70, description="clusterkit fabric counter snapshot (JSON)")


@COUNTERS_AFTER.recognizer
def is_counters_snapshot(text: str) -> bool:
    return SCHEMA in text[:4096] or '"schema"' in text[:200] and SCHEMA in text


@COUNTERS_AFTER.parser
def parse_counters_snapshot(text: str) -> Snapshot:
    doc = json_object(text, "counter snapshot")
    if doc.get("schema") != SCHEMA:
        raise ParseError(f"not a clusterkit counter snapshot (schema {SCHEMA!r} expected)")
    snap = Snapshot(taken_at=_opt_float(doc.get("taken_at")), uptime_s=_opt_float(doc.get("uptime_s")))
    ib = doc.get("ib") if isinstance(doc.get("ib"), dict) else {}
    for key, e in ib.items():
        if not isinstance(e, dict):
            continue
        dev, _, port = str(key).partition("/")
        try:
            pnum = int(e.get("port", port or 1))
        except (TypeError, ValueError):
            continue
        p = PortSnapshot(str(e.get("device") or dev), pnum, _int_map(e.get("counters")),
                         _int_map(e.get("hw_counters")), _opt_str(e.get("state")), _opt_str(e.get("phys_state")),
                         _opt_str(e.get("rate")), _opt_str(e.get("link_layer")), _opt_str(e.get("fw_ver")),
                         _opt_str(e.get("node_guid")),
                         [str(n) for n in e.get("netdevs") or [] if isinstance(n, str)])
        snap.ports[p.key] = p
    net = doc.get("net") if isinstance(doc.get("net"), dict) else {}
    snap.net = {str(k): v for k, v in net.items() if isinstance(v, dict)}
    return snap


# ---- `=== ./name ===` dumps ----------------------------------------------------------
# the name neither starts nor ends with '=' (it may hold one): `=` runs are read once
_DUMP_HEAD = re.compile(r"^=+\s*([^=\s](?:\S*[^=\s])?)\s*=+\s*$")
_DUMP_PATH = re.compile(r"(?:^|/)(?P<dev>[^/]+)/ports/(?P<port>\d+)/(?P<kind>hw_counters|counters)/(?P<name>[^/]+)$")


COUNTERS_DUMP = declare("ib-counters-dump", "fabric/counters-dump.txt", priority=65, description="shell dump of a sysfs counters directory (`=== ./name ===` then the value)")


@COUNTERS_DUMP.recognizer
def is_counters_dump(text: str) -> bool:
    heads = [ln for ln in text.split("\n") if _DUMP_HEAD.match(ln.strip())]
    return len(heads) >= 2 and any(n in text for n in ("symbol_error", "link_downed", "port_rcv_errors"))


@COUNTERS_DUMP.parser
def parse_counters_dump(text: str, device: str = "unknown", port: int = 1) -> Snapshot:
    snap = Snapshot(source="dump")
    current: tuple[str, int, str, str] | None = None
    for ln in normalize(text).split("\n"):
        s = ln.strip()
        m = _DUMP_HEAD.match(s)
        if m:
            path = m.group(1)
            pm = _DUMP_PATH.search(path)
            if pm:
                current = (pm.group("dev"), int(pm.group("port")), pm.group("kind"), pm.group("name"))
            else:
                current = (device, port, "counters", path.rsplit("/", 1)[-1])
            continue
        if current is None or not s:
            continue
        try:
            value = int(s.split()[0], 0)
        except ValueError:
            current = None  # "cat: ...: Permission denied" and the like
            continue
        dev, pnum, ckind, name = current
        p = snap.ports.setdefault(f"{dev}/{pnum}", PortSnapshot(dev, pnum))
        (p.hw_counters if ckind == "hw_counters" else p.counters)[name] = value
        current = None
    if not any(p.counters or p.hw_counters for p in snap.ports.values()):
        raise ParseError("no `=== name ===` heading followed by a number in the counters dump")
    return snap


# ---- perfquery -------------------------------------------------------------------------
_PQ_LINE = re.compile(r"^(\w+):\.*(\S+)\s*$")
# `# Port counters:`, `# Port extended counters:`, `# PortRcvErrorDetails counters:` (-E), `# PortXmitDiscardDetails
# counters:` (-D), then `Lid 134 port 1`
_PQ_HEAD = re.compile(r"#[ \t]*Port(?: extended |\w+ | )counters:[ \t]*Lid[ \t]+(\d+)[ \t]+port[ \t]+(\d+)", re.I)


PERFQUERY = declare("perfquery", "fabric/perfquery.txt", command=("perfquery", "-x"), priority=60,
                    description="perfquery [-x|-E|-D] port counters (error and discard details too)")


@PERFQUERY.recognizer
def is_perfquery(text: str) -> bool:
    return bool(re.search(r"^(SymbolErrorCounter|PortXmitData|PortSelect|PortLocalPhysicalErrors|PortInactiveDiscards)"
                          r":\.+", text, re.M))


@PERFQUERY.parser
def parse_perfquery(text: str) -> Snapshot:
    snap = Snapshot(source="perfquery")
    p: PortSnapshot | None = None
    for ln in normalize(text).split("\n"):
        h = _PQ_HEAD.search(ln)
        if h:
            key = f"lid{h.group(1)}/{h.group(2)}"
            p = snap.ports.setdefault(key, PortSnapshot(f"lid{h.group(1)}", int(h.group(2))))
            continue
        m = _PQ_LINE.match(ln.strip())
        if not m or m.group(1) not in PERFQUERY_NAMES:
            continue
        try:
            value = int(m.group(2), 0)
        except ValueError:
            continue
        if p is None:
            p = snap.ports.setdefault("lid?/1", PortSnapshot("lid?", 1))
        p.counters[PERFQUERY_NAMES[m.group(1)]] = value
    if not any(p.counters for p in snap.ports.values()):
        raise ParseError("no `CounterName:....value` line in perfquery output")
    return snap


# The snapshot taken before the load window: counters are judged by their increase.
COUNTERS_BEFORE = variant(COUNTERS_AFTER, "fabric/counters-before.json")
