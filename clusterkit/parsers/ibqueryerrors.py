"""`ibqueryerrors` (infiniband-diags) output -> a counter `Snapshot`, one port per line.

    Errors for 0x2c903006e29b0 "MF0;ys23ib4:SX6036/U1"
       GUID 0x2c903006e29b0 port ALL: [LinkDownedCounter == 48] [PortXmitDiscards == 15854]
       GUID 0x2c903006e29b0 port 5: [SymbolErrorCounter == 65535] [LinkErrorRecoveryCounter == 8]
    Errors for "dl380g7 mlx4_0"
       GUID 0x7cfe900300179b31 port 1: [VL15Dropped == 14] [PortXmitWait == 4294967295]
    ## Summary: 4 nodes checked, 4 bad nodes found

Only counters above ibqueryerrors' thresholds are printed; the values are totals since the
counters were last cleared (no window). `port ALL` sums the node's ports: it is kept only
for a node whose ports are not listed one by one. Counter names are perfquery's.
"""

from __future__ import annotations

import re

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import normalize
from clusterkit.parsers import ParseError
from clusterkit.parsers.ibcounters import PERFQUERY_NAMES, PortSnapshot, Snapshot

_NODE = re.compile(r'^\s*Errors for\s+(?:(0x[0-9a-fA-F]+)\s+)?"([^"]*)"')
_PORT = re.compile(r"^\s*GUID\s+(0x[0-9a-fA-F]+)\s+port\s+(\d+|ALL)\s*:")
_COUNTER = re.compile(r"\[\s*(\w+)\s*==\s*(\d+)[^\]\[]*\]")   # stops at the next `[`: linear
ALL_PORTS = 255   # PortSelect 0xFF: the node's ports summed (IBA AllPortSelect)

IBQUERYERRORS = declare("ibqueryerrors", "fabric/ibqueryerrors.txt", command=("ibqueryerrors",), priority=60,
                        description="ibqueryerrors (fabric-wide port error counters above threshold)")


@IBQUERYERRORS.recognizer
def is_ibqueryerrors(text: str) -> bool:
    return bool(re.search(r"^[ \t]*GUID[ \t]+0x[0-9a-fA-F]+[ \t]+port[ \t]+(?:\d+|ALL)[ \t]*:[ \t]*\[\w+[ \t]*==", text, re.M))


@IBQUERYERRORS.parser
def parse_ibqueryerrors(text: str) -> Snapshot:
    snap = Snapshot(source="ibqueryerrors")
    node: str | None = None
    per_port: set[str] = set()
    totals: list[tuple[str, PortSnapshot]] = []
    for ln in normalize(text).split("\n"):
        m = _NODE.match(ln)
        if m:
            node = m.group(2) or m.group(1) or None
            continue
        m = _PORT.match(ln)
        if not m:
            continue
        guid, port = m.group(1).lower(), m.group(2)
        counters = {PERFQUERY_NAMES[c.group(1)]: int(c.group(2)) for c in _COUNTER.finditer(ln, m.end())
                    if c.group(1) in PERFQUERY_NAMES}
        whole = port == "ALL"
        label = (f'"{node}" (GUID {guid}) ' if node else f"GUID {guid} ") + ("all ports" if whole else f"port {port}")
        p = PortSnapshot(node or guid, ALL_PORTS if whole else int(port), counters, node_guid=guid, label=label)
        if whole:
            totals.append((guid, p))
        else:
            per_port.add(guid)
            snap.ports[f"{guid}/{port}"] = p
    for guid, p in totals:
        if guid not in per_port:
            snap.ports[f"{guid}/ALL"] = p
    if not snap.ports:
        raise ParseError("no `GUID 0x... port N: [Counter == value]` line in ibqueryerrors output")
    return snap
