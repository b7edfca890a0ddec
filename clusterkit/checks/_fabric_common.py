"""What the fabric checks share: reading a node's fabric evidence once, naming
ports the way a technician finds them, and counter deltas that respect
saturation and resets."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clusterkit.evidence.bundle import EvidenceError
from clusterkit.evidence.kinds import Kind
from clusterkit.parsers import ParseError
from clusterkit.parsers.ethtool import ETHTOOL_M, ETHTOOL_S, ETHTOOL_S_BEFORE  # noqa: F401 (the fabric checks' kinds)
from clusterkit.parsers.ibcounters import (COUNTERS_AFTER as AFTER, COUNTERS_BEFORE as BEFORE, COUNTERS_DUMP as DUMP,
                                           LEGACY_MAX, PERFQUERY, PortSnapshot, Snapshot)
from clusterkit.parsers.iblinkinfo import IBLINKINFO, IbLink
from clusterkit.parsers.ibnetdiscover import IBNETDISCOVER_PORTS
from clusterkit.parsers.ibqueryerrors import IBQUERYERRORS
from clusterkit.parsers.ibstat import BARE_PORT, IBSTAT, IBSTATUS, IbPort, NoDevices, aborted
from clusterkit.parsers.ibv_devinfo import IBV_DEVINFO
from clusterkit.parsers.kernel_log import KERNEL_LOG as DMESG  # noqa: F401
from clusterkit.parsers.mlxcables import MLXCABLES  # noqa: F401 (the fabric checks' kinds)
from clusterkit.parsers.mlxlink import MLXLINK, MlxlinkReport
from clusterkit.parsers.nvidia_smi import TOPO
from clusterkit.parsers.topo_nics import nic_gpus
from clusterkit.results import Finding

if TYPE_CHECKING:
    from clusterkit.analysis import NodeContext

@dataclass
class Peer:
    switch: str
    port: int | None
    lane_gbps: float | None = None
    lid: int | None = None

    def __str__(self) -> str:
        return f"{self.switch} port {self.port}" if self.port is not None else self.switch


@dataclass
class NodeFabric:
    """A node's fabric evidence, parsed once per analysis (cached on the context)."""

    ports: list[IbPort] = field(default_factory=list)
    links: list[IbLink] = field(default_factory=list)
    before: Snapshot | None = None
    after: Snapshot | None = None
    gpus: dict[str, list[str]] = field(default_factory=dict)   # mlx5_0 -> ["GPU0"]
    errors: list[str] = field(default_factory=list)            # unusable files, said why
    no_devices: str | None = None                              # a tool's own words that no IB device exists
    aborted: list[tuple[str, str | None]] = field(default_factory=list)   # (ibpanic line, device it names)
    mlxlink: dict[str, MlxlinkReport] = field(default_factory=dict)       # port name -> report
    _peer_index: dict | None = field(default=None, repr=False)
    _components: dict = field(default_factory=dict, repr=False)

    def port(self, device: str, port: int) -> IbPort | None:
        for p in self.ports:
            if p.device == device and p.port == port:
                return p
        return None

    def netdev_of(self, device: str) -> str | None:
        snap = self.after or self.before
        if snap:
            for p in snap.ports.values():
                if p.device == device and p.netdevs:
                    return p.netdevs[0]
        return None

    def device_of_netdev(self, ifname: str) -> str | None:
        snap = self.after or self.before
        if snap:
            for p in snap.ports.values():
                if ifname in p.netdevs:
                    return p.device
        return None

    def peer(self, device: str, port: int) -> Peer | None:
        """The switch (or host) port at the other end of this HCA port, from iblinkinfo."""
        if self._peer_index is None:
            self._peer_index = {}
            for link in self.links:
                if link.section == "CA" and link.node_guid:
                    self._peer_index.setdefault((guid_key(link.node_guid), link.port),
                                                Peer(link.peer_name, link.peer_port, link.lane_gbps, link.peer_lid))
        if not self._peer_index:
            return None
        ib = self.port(device, port)
        guids = [g for g in ((ib.node_guid, ib.port_guid) if ib else ()) if g]
        snap = self.after or self.before
        if snap:
            guids += [p.node_guid for p in snap.ports.values() if p.device == device and p.node_guid]
        for g in guids:
            hit = self._peer_index.get((guid_key(g), port))
            if hit:
                return hit
        return None

    def window_s(self) -> float | None:
        if self.before and self.after:
            if self.before.taken_at is not None and self.after.taken_at is not None:
                return max(0.0, self.after.taken_at - self.before.taken_at)
            if self.before.uptime_s is not None and self.after.uptime_s is not None:
                return max(0.0, self.after.uptime_s - self.before.uptime_s)
        return None


def guid_key(g: str) -> str:
    """0x946dae0300cde72c and 946d:ae03:00cd:e72c forms compare equal."""
    h = re.sub(r"[^0-9a-f]", "", g.lower().removeprefix("0x"))
    return h[-16:].rjust(16, "0")


def _try(fabric: NodeFabric, kind: Kind, ctx: "NodeContext", fn: Any = None) -> Any:
    """Parse one file (by the kind's parser, or `fn`); an unusable one (or a failed command)
    becomes an error line, said why."""
    path, fn = kind.path, fn or kind.parse
    try:
        text = ctx.text(path)
    except EvidenceError as e:
        text, why = None, str(e)
    else:
        why = None
    cmd = ctx.bundle.command(path) or {}
    failed = cmd.get("exit_code") not in (None, 0)
    if text is not None:
        try:
            return fn(text)
        except NoDevices as e:
            fabric.no_devices = str(e)
            return None
        except ParseError as e:
            why = str(e)
    if why or failed and not ctx.bundle.not_installed(path):  # a missing tool is evidence, not an error
        detail = f"{cmd.get('command', path)} exited {cmd.get('exit_code')}" if failed else ""
        stderr = (cmd.get("stderr") or "").strip().splitlines()
        parts = [p for p in (why, detail, stderr[-1] if stderr else "") if p]
        fabric.errors.append(f"{path}: " + "; ".join(parts))
    return None


def node_fabric(ctx: "NodeContext") -> NodeFabric:
    key = ("fabric", "node")
    cached = ctx._cache.get(key)
    if cached is not None:
        return cached
    f = NodeFabric()
    f.ports = _try(f, IBSTAT, ctx) or _try(f, IBSTATUS, ctx) or _try(f, IBV_DEVINFO, ctx) or []
    # iblinkinfo and `ibnetdiscover -p` both list the fabric's links, as the same records
    f.links = _try(f, IBLINKINFO, ctx) or _try(f, IBNETDISCOVER_PORTS, ctx) or []
    f.before = _try(f, BEFORE, ctx)
    f.after = (_try(f, AFTER, ctx) or _try(f, DUMP, ctx) or _try(f, PERFQUERY, ctx)
               or _try(f, IBQUERYERRORS, ctx))
    f.gpus = _try(f, TOPO, ctx, nic_gpus) or {}
    try:
        stat = ctx.text(IBSTAT)
    except EvidenceError:
        stat = None   # already an error line from _try
    stop = aborted(stat) if stat else None
    if stop:
        f.aborted.append(stop)
    f.mlxlink = dict(mlxlink_reports(ctx, None))   # fabric.ber/optics report an unusable file
    if not f.ports and f.after:
        f.ports = [_port_from_snapshot(p) for p in f.after.ports.values() if p.state or p.rate]
    if not f.ports:
        f.ports = [_port_from_mlxlink(name, rep) for name, rep in f.mlxlink.items() if rep.state]
    ctx._cache[key] = f
    return f


def _port_from_snapshot(p: PortSnapshot) -> IbPort:
    """sysfs `4: ACTIVE`, `5: LinkUp`, `400 Gb/sec (4X NDR)` -> an IbPort."""
    def word(v: str | None) -> str | None:
        if v is None:
            return None
        w = v.split(":", 1)[1].strip() if ":" in v else v.strip()
        return w.capitalize() if w.isupper() else w
    rate = None
    if p.rate:
        m = re.match(r"\s*([\d.]+)", p.rate)
        rate = float(m.group(1)) if m else None
    return IbPort(p.device, p.port, word(p.state), word(p.phys_state), rate, p.link_layer,
                  node_guid=p.node_guid, firmware=p.firmware)


def each_parsed(ctx: "NodeContext", kind: Kind, own_name: Any, errors: list[str] | None):
    """(port name, parsed) per file of the kind; an unusable file becomes a line of `errors`.
    A pasted file has no name in its path: it takes the one it states (own_name(parsed))."""
    for path in ctx.glob(kind):
        try:
            parsed = ctx.parsed(path)
        except ParseError as e:
            if errors is not None:
                errors.append(f"{path}: {e}")
            continue
        name = kind.field_of(path) or path
        if name == "pasted" and own_name(parsed):
            name = own_name(parsed)
        yield name, parsed


def _mlxlink_name(rep: MlxlinkReport) -> str:
    return rep.device.rsplit("/", 1)[-1] if rep.device else BARE_PORT


def mlxlink_reports(ctx: "NodeContext", errors: list[str] | None):
    """(port name, report) per device: a paste of several devices' mlxlink outputs gives each its own."""
    for name, rep in each_parsed(ctx, MLXLINK, _mlxlink_name, errors):
        yield name, rep
        for other in rep.others:
            yield _mlxlink_name(other), other


def _port_from_mlxlink(name: str, rep: MlxlinkReport) -> IbPort:
    """mlxlink's Operational Info as a port, when no ibstat shows the ports."""
    return IbPort(name, rep.port or 1, rep.state, rep.phys_state, rep.rate_gbps, rep.link_layer,
                  firmware=rep.firmware)


def component(fabric: NodeFabric, device: str, port: int | None = None, netdev: str | None = None) -> str:
    """`mlx5_2 port 1 (GUID 0x..., ens3np0, serves GPU2/GPU3) -> sw port 7`."""
    key = (device, port, netdev)
    if key not in fabric._components:
        fabric._components[key] = _component(fabric, device, port, netdev)
    return fabric._components[key]


def _component(fabric: NodeFabric, device: str, port: int | None, netdev: str | None) -> str:
    name = device if port is None else f"{device} port {port}"
    extra: list[str] = []
    ib = fabric.port(device, port or 1)
    if ib and ib.port_guid and ib.link_layer != "Ethernet":
        extra.append(f"GUID {ib.port_guid}")
    nd = netdev or fabric.netdev_of(device)
    if nd and nd != device:
        extra.append(nd)
    dev = device if device.startswith("mlx") else (fabric.device_of_netdev(device) or device)
    if dev in fabric.gpus:
        extra.append("serves " + "/".join(fabric.gpus[dev]))
    out = name + (f" ({', '.join(extra)})" if extra else "")
    peer = fabric.peer(dev, port or 1)
    if peer:
        out += f" -> {peer}"
    return out


@dataclass
class Delta:
    name: str
    before: int | None
    after: int
    value: int               # the delta, or the lower bound when `at_least`
    at_least: bool = False   # saturated or reset: the true number is larger
    note: str = ""           # why it is a lower bound
    lifetime: bool = False   # no before snapshot: a total since the last reset


def counter_delta(name: str, before: int | None, after: int, widths: dict[str, int] = LEGACY_MAX) -> Delta:
    """The increase of one counter over the window, honest about what it cannot know."""
    top = widths.get(name)
    if before is None:
        if top is not None and after >= top:
            return Delta(name, None, after, after, True, f"counter saturated at {after}: reset it", True)
        return Delta(name, None, after, after, lifetime=True)
    if after < before:
        return Delta(name, before, after, after, True, "counter was reset during the window")
    if top is not None and after >= top:
        if before >= top:
            return Delta(name, before, after, 0, True,
                         f"counter was already saturated at {top} before the window: errors cannot be counted, reset it")
        return Delta(name, before, after, after - before, True, f"counter saturated at {top}: reset it")
    return Delta(name, before, after, after - before)


def describe(d: Delta, window_s: float | None) -> str:
    if d.lifetime:
        txt = f"{'at least ' if d.at_least else ''}{d.value} since the counter was last reset"
    else:
        txt = f"{'at least ' if d.at_least else '+'}{d.value} over the window"
        if window_s and window_s > 0 and not (d.at_least and d.value == 0):
            txt += f" ({d.value * 3600.0 / window_s:.3g}/h)"
    return txt + (f"; {d.note}" if d.note else "")


def severity_over(value: float, limit: float | None) -> str | None:
    if limit is None or value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return "fail" if value > limit else None


NO_FABRIC = "no InfiniBand/RoCE device declared or found"


def no_fabric(ctx: "NodeContext", fabric: NodeFabric) -> bool:
    """Nothing to judge: no HCA port seen, none declared, no unusable evidence."""
    decl = ctx.declared
    snap_ports = (fabric.after.ports if fabric.after else {}) or (fabric.before.ports if fabric.before else {})
    return not (fabric.ports or fabric.links or snap_ports or fabric.errors or decl.get("ib_devices")
                or (fabric.no_devices and ctx.loose)   # a paste of a tool finding no HCA: judged
                or decl.get("roce_interfaces") or ctx.glob(ETHTOOL_S) or ctx.glob(ETHTOOL_M) or ctx.glob(MLXLINK))


def parse_errors_finding(errors: list[str]) -> list[Finding]:
    return [Finding("INPUT_UNUSABLE", "error", e.split(":", 1)[0], e,
                    action="re-collect the file (the tool's text as printed)") for e in errors]


def _wall_time(wall: Any) -> Any:
    """A kernel log wall-clock stamp as a datetime (syslog lines carry no year: 2000 is assumed)."""
    import datetime as dt

    if wall is None or isinstance(wall, dt.datetime):
        return wall
    w = " ".join(str(wall).split())
    for fmt, text in (("%a %b %d %H:%M:%S %Y", w), ("%Y %b %d %H:%M:%S", f"2000 {w.split('.')[0]}")):
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            pass
    try:
        t = dt.datetime.fromisoformat(w.replace("Z", "+00:00").replace(",", "."))
        return t.replace(tzinfo=None)
    except ValueError:
        return None


def kernel_lines(text: str) -> list[tuple[float | None, Any, str]]:
    """(uptime seconds, wall datetime, message) for each kernel log line (host family's parser)."""
    from clusterkit.parsers.kernel_log import parse_kernel_log

    try:
        return [(ln.seconds, _wall_time(ln.wall), ln.message) for ln in parse_kernel_log(text)]
    except ParseError:
        return []
