"""Link up/down events in kernel log messages (mlx5, generic netdev, IB port state).

A pure function on message strings, so it works on whatever parses host/dmesg.txt
(the kernel-log parser of the host family yields `LogLine`s with `.message`,
`.seconds` and `.wall`). Registers no kind. Messages are matched on their first
MAX_LINE_CHARS characters (clusterkit/evidence/normalize.py says why), and every
pattern is linear in the message's length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clusterkit.evidence.normalize import MAX_LINE_CHARS

# mlx5_core 0000:01:00.1 eth1: Link up / Link down
_MLX5 = re.compile(r"mlx5_core\s+(?P<pci>[0-9a-fA-F:.]+)\s+(?P<if>[\w.-]+):\s+Link (?P<ev>up|down)\b", re.I)
# "eth1: Link is Down" (many drivers), "IPv6: ADDRCONF(NETDEV_CHANGE): eth1: link becomes ready" is not an event.
# The name starts where no name character precedes it (lookbehind): a search would otherwise
# re-read a long run of name characters from each of its positions (quadratic).
_GENERIC = re.compile(r"(?<![\w.-])(?P<if>[\w.-]+):\s+(?:NIC )?Link is (?P<ev>Up|Down)\b", re.I)
_CARRIER = re.compile(r"(?<![\w.-])(?P<if>[\w.-]+):\s+(?:lost carrier|carrier lost)", re.I)
# mlx5_ib/ib_core port state changes: "mlx5_0: port 1 link down"... and "Port 1 Link Down".
# Read from the first device name on (a match from a later one implies one from the first),
# each step atomic: `mlx5_0 ... port N ... link down` in one pass instead of cubic backtracking.
_IBDEV = re.compile(r"(?P<if>mlx\d_\d+)\b", re.I)
_IBPORT_REST = re.compile(r"(?>.*?\bport (?P<port>\d+)\b)(?>.*?\b(?:link|state)[ :]+(?P<ev>up|down|active)\b)", re.I)


@dataclass(frozen=True)
class LinkEvent:
    interface: str          # eth1, mlx5_0
    event: str              # up | down
    pci: str | None = None


def link_event(message: str) -> LinkEvent | None:
    """The link event a kernel message reports, or None."""
    message = message[:MAX_LINE_CHARS]
    m = _MLX5.search(message)
    if m:
        return LinkEvent(m.group("if"), m.group("ev").lower(), m.group("pci"))
    m = _CARRIER.search(message)
    if m:
        return LinkEvent(m.group("if"), "down")
    m = _GENERIC.search(message)
    if m:
        return LinkEvent(m.group("if"), m.group("ev").lower())
    dev = _IBDEV.search(message)
    m = _IBPORT_REST.match(message, dev.end()) if dev else None
    if dev and m:
        ev = m.group("ev").lower()
        return LinkEvent(dev.group("if"), "up" if ev == "active" else ev)
    return None


def flap_count(events: list[str]) -> int:
    """Flaps in a time-ordered list of 'up'/'down' for one interface.

    Every down is a flap; an 'up' with no down logged before it (a repeated
    "Link up") also is, except the first one, which is the link coming up."""
    downs = events.count("down")
    ups_unpaired = 0
    seen_up = False
    pending_down = False
    for e in events:
        if e == "down":
            pending_down = True
        elif pending_down:
            pending_down = False
        elif seen_up:
            ups_unpaired += 1
        seen_up = seen_up or e == "up"
    return downs + ups_unpaired
