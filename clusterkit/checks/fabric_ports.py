"""fabric.ports: every declared HCA/interface present, up, and at the declared rate."""

from __future__ import annotations

from collections import Counter, defaultdict

from clusterkit.checks._fabric_common import (AFTER, IBLINKINFO, IBNETDISCOVER_PORTS, IBSTAT, IBSTATUS, IBV_DEVINFO, MLXLINK, NodeFabric,
                                              component, NO_FABRIC, no_fabric, node_fabric, parse_errors_finding)
from clusterkit.checks._fabric_shape import (CABLE_ACTION, aborted_findings, cable_findings, down_action,
                                             firmware_findings, undeclared_findings)
from clusterkit.checks.registry import check
from clusterkit.parsers._fabric_text import lane_rate
from clusterkit.parsers.iblinkinfo import IbLink
from clusterkit.results import CheckResult, Finding

def _host_links(fabric: NodeFabric, host: str) -> list[IbLink]:
    """The CA links that belong to this node (iblinkinfo and ibnetdiscover -p list the whole fabric)."""
    ca = _ca_links(fabric.links)
    guids = {g.lower() for p in fabric.ports for g in (p.node_guid, p.port_guid) if g}
    if guids:
        mine = [l for l in ca if l.node_guid and l.node_guid.lower() in guids]
        if mine:
            return mine
    short = host.split(".")[0].lower()
    mine = [l for l in ca if l.node_name.lower().split()[0] == short] if short else []
    return mine or ca


def _ca_links(links: list[IbLink]) -> list[IbLink]:
    """CA-side view of each host link, from the CA section or else the switch section."""
    out = [l for l in links if l.section == "CA"]
    seen = {(l.peer_name, l.peer_port) for l in out}
    for l in links:
        if (l.section == "Switch" and l.peer_port is not None and (l.node_name, l.port) not in seen and l.peer_name
                and l.peer_section in (None, "CA")):   # a switch-to-switch link is no host's
            out.append(IbLink("CA", l.peer_name, None, l.peer_lid or 0, l.peer_port, l.width, l.lane_gbps,
                              l.state, l.phys_state, l.lid, l.port, l.node_name, l.could_be_lane_gbps))
    return out


def switch_lane_max(links: list[IbLink]) -> dict[str, float]:
    """Fastest lane rate seen on any port of each switch: what the switch can do."""
    best: dict[str, float] = defaultdict(float)
    for l in links:
        if l.lane_gbps is None:
            continue
        sw = l.node_name if l.section == "Switch" else l.peer_name
        best[sw] = max(best[sw], l.lane_gbps)
    return dict(best)


def switch_width(links: list[IbLink]) -> dict[str, int]:
    """The width most trained links of each switch run (4 for 4X): what its ports are cabled for."""
    seen: dict[str, Counter[int]] = defaultdict(Counter)
    for l in links:
        if l.lanes and l.peer_name:
            seen[l.node_name if l.section == "Switch" else l.peer_name][l.lanes] += 1
    return {sw: widths.most_common(1)[0][0] for sw, widths in seen.items()}


def iblinkinfo_findings(fabric: NodeFabric, host: str, declared_rate: float | None) -> list[Finding]:
    """Host links (from iblinkinfo or ibnetdiscover -p) slower or narrower than their switch runs."""
    out: list[Finding] = []
    sw_max = switch_lane_max(fabric.links)
    sw_width = switch_width(fabric.links)
    for l in _host_links(fabric, host):
        if l.lane_gbps is None or l.section != "CA" or "aggregation node" in l.node_name.lower():
            continue
        can = max(sw_max.get(l.peer_name, 0.0), l.could_be_lane_gbps or 0.0)
        rate = l.rate_gbps or 0.0
        where = f"{l.node_name} port {l.port} (GUID {l.node_guid}, LID {l.lid}) -> {l.peer_name} port {l.peer_port}" \
            if l.node_guid else f"{l.node_name} port {l.port} -> {l.peer_name} port {l.peer_port}"
        if declared_rate and rate >= declared_rate:
            continue   # the inventory says this speed is intended (e.g. EDR HCAs behind an HDR switch)
        if can > l.lane_gbps * 1.05:
            sw_rate, sw_name = lane_rate(can)
            out.append(Finding(
                "IB_LINK_SPEED_BELOW_SWITCH", "fail", where,
                f"{l.node_name} port {l.port} trained at {l.speed_name} ({rate:g} Gb/s) but {l.peer_name} runs "
                f"{sw_name} ({sw_rate * l.lanes:g} Gb/s) on other ports",
                observed=rate, limit=sw_rate * l.lanes, unit="Gb/s", action=CABLE_ACTION,
                evidence=f"link: {l.width} {l.lane_gbps:g} Gbps {l.state}/{l.phys_state}"))
        elif l.lanes < sw_width.get(l.peer_name, 0):
            # a lane lost (1X/2X where the switch's other links run 4X): a cable or connector fault
            full = sw_width[l.peer_name]
            out.append(Finding(
                "FABRIC_PORT_RATE_LOW", "fail", where,
                f"{l.node_name} port {l.port} trained at {l.speed_name} ({rate:g} Gb/s) but most links of "
                f"{l.peer_name} run {full}X", observed=rate, limit=rate * full / l.lanes, unit="Gb/s",
                action=CABLE_ACTION, evidence=f"link: {l.width} {l.lane_gbps:g} Gbps {l.state}/{l.phys_state}"))
        elif declared_rate and rate < declared_rate:
            out.append(Finding("FABRIC_PORT_RATE_LOW", "fail", where,
                               f"{l.node_name} port {l.port} at {rate:g} Gb/s, declared {declared_rate:g}",
                               observed=rate, limit=declared_rate, unit="Gb/s", action=CABLE_ACTION))
    return out


@check("fabric.ports", needs=(IBSTAT, IBSTATUS, IBV_DEVINFO, IBLINKINFO, IBNETDISCOVER_PORTS, AFTER, MLXLINK), needs_any=True,
       params={"fabric.port_rate_far_below_fraction": float})
def check_ports(ctx) -> CheckResult:
    """HCA ports present, Active/LinkUp, link layer and rate as declared (else as the node's shape and the
    HCA model say); firmware consistent."""
    fabric = node_fabric(ctx)
    if no_fabric(ctx, fabric):
        return CheckResult.skip("fabric.ports", NO_FABRIC)
    decl = ctx.declared
    ib_devs: list[str] = list(decl.get("ib_devices") or [])
    roce: list[str] = list(decl.get("roce_interfaces") or [])
    ib_rate = decl.get("ib_rate_gbps")
    roce_rate = decl.get("roce_rate_gbps")
    findings = parse_errors_finding(fabric.errors) + aborted_findings(fabric)
    by_dev = defaultdict(list)
    for p in fabric.ports:
        by_dev[p.device].append(p)
    net = (fabric.after.net if fabric.after else {})

    def judge(p, want_layer: str, want_rate: float | None) -> None:
        """A declared port: up, in the declared link layer, at the declared rate."""
        comp = component(fabric, p.device, p.port)
        state = f"{p.state}/{p.phys_state}" if p.phys_state else f"{p.state}"
        if not p.active:
            findings.append(Finding("FABRIC_PORT_DOWN", "fail", comp,
                                    f"{p.device} port {p.port} ({p.link_layer or 'unknown'} link layer) is {state}",
                                    observed=state, limit="Active/LinkUp", action=down_action(p.phys_state)))
            return
        if p.link_layer and p.link_layer != want_layer:
            findings.append(Finding("FABRIC_LINK_LAYER_MISMATCH", "fail", comp,
                                    f"{p.device} link layer is {p.link_layer}, declared {want_layer}",
                                    observed=p.link_layer, limit=want_layer,
                                    action="set the port type with mlxconfig (LINK_TYPE_P1) and reboot, or fix the inventory"))
        if want_rate and p.rate_gbps is not None and p.rate_gbps < want_rate:
            findings.append(Finding("FABRIC_PORT_RATE_LOW", "fail", comp,
                                    f"{p.device} port {p.port} runs at {p.rate_gbps:g} Gb/s, declared {want_rate:g}",
                                    observed=p.rate_gbps, limit=want_rate, unit="Gb/s", action=CABLE_ACTION))

    if fabric.no_devices and not fabric.ports and not ib_devs and ctx.loose:
        findings.append(Finding("FABRIC_HCA_MISSING", "fail", "InfiniBand HCAs",
                                f"the tool found no InfiniBand device: {fabric.no_devices}", observed="none",
                                limit="the node's HCAs", action="check that the cards are seated and their drivers "
                                "loaded (`lspci | grep -i mellanox`, `lsmod | grep -e mlx5_ib -e ib_core`); reinstall "
                                "the OFED/DOCA stack if the modules do not load"))
    for dev in ib_devs:
        if dev not in by_dev:
            findings.append(Finding("FABRIC_HCA_MISSING", "fail", dev, f"declared HCA {dev} not found",
                                    observed="absent", limit="present",
                                    action="check that the card is seated and the driver (mlx5_core/mlx5_ib) loaded; "
                                           "`lspci | grep -i mellanox`"))
            continue
        for p in by_dev[dev]:
            judge(p, "InfiniBand", ib_rate)
    for name in roce:
        dev = name if name in by_dev else fabric.device_of_netdev(name)
        if dev and dev in by_dev:
            for p in by_dev[dev]:
                judge(p, "Ethernet", roce_rate)
        elif name in net:
            st = net[name]
            speed = st.get("speed") if isinstance(st.get("speed"), int) else None
            if st.get("operstate") != "up":
                findings.append(Finding("FABRIC_PORT_DOWN", "fail", name, f"{name} is {st.get('operstate')}",
                                        observed=st.get("operstate"), limit="up", action=CABLE_ACTION))
            elif roce_rate and speed and speed > 0 and speed / 1000 < roce_rate:
                findings.append(Finding("FABRIC_PORT_RATE_LOW", "fail", name,
                                        f"{name} at {speed / 1000:g} Gb/s, declared {roce_rate:g}",
                                        observed=speed / 1000, limit=roce_rate, unit="Gb/s", action=CABLE_ACTION))
        elif fabric.ports or net:
            findings.append(Finding("FABRIC_INTERFACE_MISSING", "fail", name, f"declared RoCE interface {name} not found",
                                    observed="absent", limit="present",
                                    action="check the NIC is seated, the driver loaded and the interface name"))
    declared_set = set(ib_devs) | {fabric.device_of_netdev(n) or n for n in roce}
    far = ctx.profile.get("fabric.port_rate_far_below_fraction", 0.1)
    findings += undeclared_findings(fabric, [p for p in fabric.ports if p.device not in declared_set],
                                    bool(ib_devs or roce), far)
    findings += firmware_findings(fabric.ports)
    findings += cable_findings(fabric, {f.component.split()[0] for f in findings if f.code == "FABRIC_PORT_RATE_LOW"})
    # A port already reported slow from ibstat is not reported twice from iblinkinfo.
    slow = {fabric.port(f.component.split()[0], 1).node_guid.lower() for f in findings
            if f.code == "FABRIC_PORT_RATE_LOW" and fabric.port(f.component.split()[0], 1)
            and fabric.port(f.component.split()[0], 1).node_guid}
    findings += [f for f in iblinkinfo_findings(fabric, ctx.host, ib_rate)
                 if not any(g in (f.component or "").lower() for g in slow)]
    active = [p for p in fabric.ports if p.active]
    metrics = {"ports_total": len(fabric.ports), "ports_active": len(active),
               "ports_down": len(fabric.ports) - len(active)}
    rates = [p.rate_gbps for p in active if p.rate_gbps and p.link_layer != "Ethernet"]
    if rates:
        metrics["ib_port_rate_min_gbps"] = min(rates)
    ok = f"{len(active)} port(s) Active/LinkUp" + (f", IB at {min(rates):g} Gb/s or more" if rates else "")
    if not fabric.ports and fabric.links:
        ok = f"{len(_ca_links(fabric.links))} host link(s) in the fabric's link report at the switch's speed and width"
    result = CheckResult.from_findings("fabric.ports", findings, ok, metrics)
    ctx._cache[("fabric", "ports-result")] = result   # fabric.links reuses it
    return result
