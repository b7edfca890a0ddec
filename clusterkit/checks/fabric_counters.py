"""fabric.counters and fabric.flaps: error-counter and link-down deltas over the test window."""

from __future__ import annotations

from collections import defaultdict

from clusterkit.checks._fabric_common import (AFTER, DMESG, DUMP, ETHTOOL_S, ETHTOOL_S_BEFORE, IBQUERYERRORS,
                                              MLXLINK, PERFQUERY, Delta, NodeFabric, component, counter_delta,
                                              describe, kernel_lines, mlxlink_reports, NO_FABRIC, no_fabric,
                                              node_fabric, parse_errors_finding)
from clusterkit.checks.registry import check
from clusterkit.parsers import ParseError
from clusterkit.parsers.ethtool import EthtoolStats, parse_ethtool_stats
from clusterkit.parsers.ibcounters import RCV_ERROR_DETAILS, XMIT_DISCARD_DETAILS
from clusterkit.parsers.link_events import flap_count, link_event
from clusterkit.results import CheckResult, Finding

RX_PATH = ("errors at this port's receiver: clean the fiber end faces at both ends (or reseat the DAC), "
           "then replace the cable or optic if the count keeps rising (fabric.optics names the weak lane)")
ACTIONS = {
    "symbol_error": RX_PATH, "port_rcv_errors": RX_PATH, "local_link_integrity_errors": RX_PATH,
    "link_error_recovery": "the link retrained: reseat the cable at both ends; replace it if it repeats",
    "port_rcv_remote_physical_errors": "packets arrived already corrupted upstream: check the switch's other "
                                       "links (their symbol errors), not this cable",
    "excessive_buffer_overrun_errors": "flow-control credit overrun: check the switch port's VL/buffer configuration",
    "port_xmit_discards": "the port dropped packets it could not send (congestion or a stuck peer): check the "
                          "switch port and the routing (ibdiagnet)",
    "rx_crc_errors_phy": RX_PATH, "rx_symbol_err_phy": RX_PATH,
}
# perfquery -E / -D break PortRcvErrors and PortXmitDiscards down by cause: each judged like its total
ROUTING = ("packets this port cannot forward by the subnet manager's tables (DLID/SL-to-VL mapping, loops): check "
           "the SM's log and routing (ibdiagnet --routing), then the switch port's configuration")
ACTIONS |= {
    "port_local_physical_errors": RX_PATH,
    "port_malformed_pkt_errors": RX_PATH + "; malformed packets with clean PHY counters point at the sender's firmware",
    "port_buffer_overrun_errors": ACTIONS["excessive_buffer_overrun_errors"],
    "port_dlid_mapping_errors": ROUTING, "port_vl_mapping_errors": ROUTING, "port_looping_errors": ROUTING,
    **dict.fromkeys(XMIT_DISCARD_DETAILS, ACTIONS["port_xmit_discards"]),
}
IB_LIMITED = ("symbol_error", "link_error_recovery", "port_rcv_errors", "port_rcv_remote_physical_errors",
              "local_link_integrity_errors", "excessive_buffer_overrun_errors", "port_xmit_discards",
              *RCV_ERROR_DETAILS, *XMIT_DISCARD_DETAILS)
ETH_LIMITED = ("rx_crc_errors_phy", "rx_symbol_err_phy")
# RoCE transport counters (sysfs hw_counters): lost or reordered packets make the HCA retransmit.
ROCE_LIMITED = ("local_ack_timeout_err", "out_of_sequence", "packet_seq_err")
ROCE_ACTION = ("packets are lost on the RoCE path (the HCA retransmits): check PFC/ECN settings and the switch "
               "port's drop counters; if this port also shows PHY errors, fix the cable first")
# Old (kernel 4.x) mlx5 names of the same PHY counters.
ETH_OLD_NAMES = {"symbol_err": "rx_symbol_err_phy", "check_seq_err": "rx_crc_errors_phy"}
RESET_HINT = " (perfquery -x -R <lid> <port>, or mlxlink -d <dev> -p <port> --pc)"
REMEASURE = ("reset the port counters" + RESET_HINT + " and re-measure over a known window (clusterkit verify "
             "snapshots them before and after its load): a total since the last reset says nothing about the rate")
# Host-side drop (mlx5): the receive queue had no buffer posted when a packet arrived.
OUT_OF_BUFFER = "rx_out_of_buffer"
OUT_OF_BUFFER_ACTION = ("the host dropped packets its receive rings had no buffers for (the application or driver "
                        "did not refill them in time): enlarge the rings (ethtool -G <if> rx <max>), spread the "
                        "interrupts/queues over more cores, check that the consumer keeps up. Not a cable or PHY fault")

COUNTER_PARAMS = {f"fabric.max_{n}_delta": float for n in IB_LIMITED + ETH_LIMITED + ROCE_LIMITED + (OUT_OF_BUFFER,)}
FLAP_PARAMS = {"fabric.max_link_downed_delta": float, "fabric.max_carrier_changes_delta": float,
               "fabric.max_link_down_events_phy_delta": float, "fabric.max_kernel_link_flaps_24h": float}


def _ethtool(ctx, fabric: NodeFabric) -> list[tuple[str, EthtoolStats, EthtoolStats | None]]:
    """(interface, after, before-or-None) for each ethtool -S file."""
    out = []
    for path in ctx.glob(ETHTOOL_S):
        ifname = ETHTOOL_S.field_of(path) or path
        try:
            after = ctx.parsed(path)
            bt = ctx.text(ETHTOOL_S_BEFORE.at(ifname=ifname))
            before = parse_ethtool_stats(bt) if bt is not None else None
        except ParseError as e:
            fabric.errors.append(f"{path}: {e}")
            continue
        if ifname == "pasted" and after.interface:
            ifname = after.interface
        out.append((ifname, after, before))
    return out


def _eth_counter(stats: EthtoolStats | None, name: str) -> int | None:
    if stats is None:
        return None
    if name in stats.counters:
        return stats.counters[name]
    for old, new in ETH_OLD_NAMES.items():
        if new == name and old in stats.counters:
            return stats.counters[old]
    return None


def counter_findings(ctx, fabric: NodeFabric) -> tuple[list[tuple[str, Finding]], dict]:
    """Per-port counter findings (port key, finding) and the metrics."""
    out: list[tuple[str, Finding]] = []
    window = fabric.window_s()
    maxima: dict[str, int] = defaultdict(int)
    saturated = 0
    after = fabric.after
    pasted = ctx.loose or bool(after and after.pasted)   # a printout with no window: judged as lifetime totals
    for key, p in sorted((after.ports if after else {}).items()):
        before_p = fabric.before.ports.get(key) if fabric.before else None
        comp = p.label or component(fabric, p.device, p.port)
        for name in IB_LIMITED:
            if name not in p.counters:
                continue
            d = counter_delta(name, before_p.counters.get(name) if before_p else None, p.counters[name])
            maxima[name] = max(maxima[name], d.value)
            saturated += d.at_least and "saturated" in d.note
            f = _judge(ctx, d, window, comp, f"IB_{name.upper()}_INCREASED", pasted)
            if f:
                out.append((key, f))
        for name in ROCE_LIMITED:
            if name not in p.hw_counters:
                continue
            d = counter_delta(name, before_p.hw_counters.get(name) if before_p else None, p.hw_counters[name], {})
            maxima[name] = max(maxima[name], d.value)
            f = _judge(ctx, d, window, comp, f"ROCE_{name.upper()}_INCREASED")
            if f:
                if f.severity == "fail":   # transport loss: congestion as often as cabling
                    f.severity, f.action = "warn", ROCE_ACTION
                out.append((key, f))
    for ifname, a, b in _ethtool(ctx, fabric):
        for name in ETH_LIMITED:
            av = _eth_counter(a, name)
            if av is None:
                continue
            d = counter_delta(name, _eth_counter(b, name), av, {})
            maxima[name] = max(maxima[name], d.value)
            dev = fabric.device_of_netdev(ifname) or ifname
            f = _judge(ctx, d, window, component(fabric, ifname), f"ETH_{name.upper()}_INCREASED", ctx.loose)
            if f:
                out.append((f"{dev}/1", f))
        if OUT_OF_BUFFER in a.counters:
            f = _out_of_buffer(ctx, ifname, counter_delta(OUT_OF_BUFFER, _eth_counter(b, OUT_OF_BUFFER),
                                                          a.counters[OUT_OF_BUFFER], {}), window, fabric)
            if f:
                out.append((f"{fabric.device_of_netdev(ifname) or ifname}/1", f))
    metrics = {f"{n}_delta_max": v for n, v in maxima.items()}
    metrics["counters_saturated"] = saturated
    if window is not None:
        metrics["window_s"] = round(window, 3)
    return out, metrics


def _out_of_buffer(ctx, ifname: str, d: Delta, window: float | None, fabric: NodeFabric) -> Finding | None:
    limit = ctx.profile.get(f"fabric.max_{OUT_OF_BUFFER}_delta", 0.0)
    if d.value <= limit:
        return None
    return Finding("ETH_RX_OUT_OF_BUFFER", "warn", component(fabric, ifname),
                   f"{ifname} {OUT_OF_BUFFER} {describe(d, window)}: packets dropped on the host side (no receive "
                   f"buffer posted), not on the wire", observed=d.value, limit=limit, unit="count",
                   action=OUT_OF_BUFFER_ACTION)


def _judge(ctx, d: Delta, window: float | None, comp: str, code: str, pasted: bool = False) -> Finding | None:
    limit = ctx.profile.get(f"fabric.max_{d.name}_delta")
    text = f"{d.name} {describe(d, window)}"
    ev = f"before={d.before} after={d.after}" + (f" window={window:.0f}s" if window else "")
    if d.lifetime:
        over = limit is not None and d.value > limit
        if d.at_least:
            # Saturated: at least this many since the last reset. On a printout that is all there is to judge.
            if pasted and over:
                return Finding("IB_COUNTER_SATURATED", "fail", comp,
                               f"{d.name} at least {d.value} since the counter was last reset (it stopped at its "
                               f"maximum): more than the {limit:g} a test window allows", observed=d.value, limit=limit,
                               unit="count",
                               action=ACTIONS.get(d.name, RX_PATH) + "; then " + REMEASURE, evidence=ev)
            return Finding("IB_COUNTER_SATURATED", "warn", comp, text, observed=d.value, unit="count",
                           action="reset the port counters so the next test window can be judged" + RESET_HINT,
                           evidence=ev)
        if pasted and over:
            return Finding("FABRIC_COUNTER_LIFETIME", "warn", comp,
                           text + f" (no time window: above the {limit:g} a test window allows, rate unknown)",
                           observed=d.value, limit=limit, unit="count", action=REMEASURE, evidence=ev)
        # clusterkit's own snapshot without its before-pair: the window check is what judges.
        return Finding("FABRIC_COUNTER_LIFETIME", "info", comp, text, observed=d.value, unit="count") if d.value else None
    if limit is not None and d.value > limit:
        action = ACTIONS.get(d.name, RX_PATH) + (("; " + d.note + RESET_HINT) if d.at_least else "")
        return Finding(code, "fail", comp, text, observed=d.value, limit=limit, unit="count", action=action, evidence=ev)
    if d.at_least:
        return Finding("IB_COUNTER_SATURATED", "warn", comp, text, observed=d.value, limit=limit, unit="count",
                       action="reset the port counters" + RESET_HINT + " and re-measure over a test window", evidence=ev)
    if d.value:
        return Finding(code, "info", comp, text + " (within limit)", observed=d.value, limit=limit, unit="count")
    return None


@check("fabric.counters", needs=(AFTER, DUMP, PERFQUERY, IBQUERYERRORS, ETHTOOL_S), needs_any=True,
       params=COUNTER_PARAMS)
def check_counters(ctx) -> CheckResult:
    """Error-counter deltas over the test window against the profile's limits (saturation-aware)."""
    fabric = node_fabric(ctx)
    if no_fabric(ctx, fabric):
        return CheckResult.skip("fabric.counters", NO_FABRIC)
    pairs, metrics = counter_findings(ctx, fabric)
    findings = parse_errors_finding(fabric.errors) + [f for _, f in pairs]
    w = fabric.window_s()
    if w is None:
        ok = "no before snapshot: lifetime totals only, no counter saturated"
    else:
        ok = f"no error counter rose beyond its limit over the {w:.0f} s window"
    return CheckResult.from_findings("fabric.counters", findings, ok, metrics)


def flap_findings(ctx, fabric: NodeFabric) -> tuple[list[tuple[str, Finding]], dict]:
    out: list[tuple[str, Finding]] = []
    window = fabric.window_s()
    total = 0
    after, before = fabric.after, fabric.before
    reseat = "reseat the cable at both ends and check the switch port's log; replace the cable (or optic) if it repeats"
    if after and before:
        lim = ctx.profile.get("fabric.max_link_downed_delta", 0.0)
        for key, p in sorted(after.ports.items()):
            bp = before.ports.get(key)
            if not bp or "link_downed" not in p.counters or "link_downed" not in bp.counters:
                continue
            d = counter_delta("link_downed", bp.counters["link_downed"], p.counters["link_downed"])
            total += d.value
            if d.value > lim or d.at_least:
                out.append((key, Finding("IB_LINK_DOWNED_INCREASED", "fail" if d.value > lim else "warn",
                                         component(fabric, p.device, p.port),
                                         f"{p.device} port {p.port} went down: link_downed {describe(d, window)}",
                                         observed=d.value, limit=lim, unit="count", action=reseat)))
        lim = ctx.profile.get("fabric.max_carrier_changes_delta", 0.0)
        for ifname in _watched_interfaces(ctx, fabric):
            a, b = after.net.get(ifname, {}), before.net.get(ifname, {})
            if not isinstance(a.get("carrier_changes"), int) or not isinstance(b.get("carrier_changes"), int):
                continue
            d = counter_delta("carrier_changes", b["carrier_changes"], a["carrier_changes"], {})
            flaps = (d.value + 1) // 2   # a flap is a down and an up
            total += flaps
            if d.value > lim:
                dev = fabric.device_of_netdev(ifname) or ifname
                out.append((f"{dev}/1", Finding(
                    "FABRIC_CARRIER_CHANGES", "fail", component(fabric, ifname),
                    f"{ifname} carrier changed {d.value} time(s) over the window (~{flaps} flap(s))",
                    observed=d.value, limit=lim, unit="count", action=reseat,
                    evidence=f"carrier_changes {b['carrier_changes']} -> {a['carrier_changes']}")))
    for ifname, a, b in _ethtool(ctx, fabric):
        if "link_down_events_phy" not in a.counters:
            continue
        bv = b.counters.get("link_down_events_phy") if b else None
        d = counter_delta("link_down_events_phy", bv, a.counters["link_down_events_phy"], {})
        lim = ctx.profile.get("fabric.max_link_down_events_phy_delta", 0.0)
        dev = fabric.device_of_netdev(ifname) or ifname
        if not d.lifetime:
            total += d.value
        if not d.lifetime and d.value > lim:
            out.append((f"{dev}/1", Finding("ETH_LINK_DOWN_EVENTS_INCREASED", "fail", component(fabric, ifname),
                                            f"{ifname} link went down {describe(d, window)}",
                                            observed=d.value, limit=lim, unit="count", action=reseat)))
        elif d.lifetime and d.value:
            out.append((f"{dev}/1", Finding("FABRIC_COUNTER_LIFETIME", "info", component(fabric, ifname),
                                            f"{ifname} link_down_events_phy {describe(d, None)}", observed=d.value)))
    for dev, rep in mlxlink_reports(ctx, None):
        if rep.link_down_counter:
            out.append((f"{dev}/1", Finding("FABRIC_COUNTER_LIFETIME", "info", dev,
                                            f"mlxlink: {rep.link_down_counter} link down(s) since counters were cleared"
                                            + (f" {rep.minutes_since_clear:g} min ago" if rep.minutes_since_clear else ""),
                                            observed=rep.link_down_counter)))
    k_out, k_flaps = _kernel_flaps(ctx, fabric)
    out += k_out
    return out, {"link_flaps_total": total, "kernel_link_flaps_24h": k_flaps}


def _watched_interfaces(ctx, fabric: NodeFabric) -> list[str]:
    """Declared RoCE interfaces and the HCAs' netdevs: container veths flap by design."""
    names = list(ctx.declared.get("roce_interfaces") or [])
    snap = fabric.after
    for p in (snap.ports.values() if snap else []):
        names += [n for n in p.netdevs if n not in names]
    names += [n for n in ctx.params.get("interfaces", []) if n not in names]
    return names


def _kernel_flaps(ctx, fabric: NodeFabric) -> tuple[list[tuple[str, Finding]], int]:
    text = ctx.text(DMESG)
    if text is None:
        return [], 0
    lines = kernel_lines(text)
    events: dict[str, list[tuple[float | None, object, str, str]]] = defaultdict(list)
    boot_wall = next((w for _, w, m in lines if m.startswith("Linux version") and w is not None), None)
    for sec, wall, msg in lines:
        ev = link_event(msg)
        if ev:
            events[ev.interface].append((sec, wall, ev.event, msg))
    for ifname, evs in events.items():
        events[ifname] = evs[_boot_bringup(evs, boot_wall):]
    # "Last 24 h": relative to the newest line (a collected dmesg ends about now).
    secs = [s for s, _, _ in lines if s is not None]
    walls = [w for _, w, _ in lines if w is not None]
    newest_s = max(secs) if secs else None
    newest_w = max(walls) if walls else None
    win_start = fabric.before.uptime_s if fabric.before else None
    win_end = fabric.after.uptime_s if fabric.after else None
    out: list[tuple[str, Finding]] = []
    lim = ctx.profile.get("fabric.max_kernel_link_flaps_24h", 2.0)
    total = 0
    for ifname, evs in sorted(events.items()):
        recent = [e for e in evs if _within_24h(e[0], e[1], newest_s, newest_w)]
        n = flap_count([e[2] for e in recent])
        in_window = [e for e in evs if e[0] is not None and win_start is not None and win_end is not None
                     and win_start <= e[0] <= win_end and e[2] == "down"]
        total += n
        if not n and not in_window:
            continue
        dev = ifname if ifname.startswith("mlx") else (fabric.device_of_netdev(ifname) or ifname)
        sev = "fail" if n > lim or in_window else "warn"
        msg = f"{ifname}: {n} link flap(s) in the kernel log over the last 24 h" + (
            f", {len(in_window)} during the test window" if in_window else "")
        out.append((f"{dev}/1", Finding(
            "FABRIC_LINK_FLAPS_KERNEL_LOG", sev, component(fabric, ifname), msg, observed=n, limit=lim, unit="count",
            action="reseat the cable at both ends; if it keeps flapping replace the cable/optic, and check the "
                   "switch port (an unused port flapping can be shut down on the switch)",
            evidence=" | ".join(e[3] for e in recent[-3:]))))
    return out, total


BOOT_WINDOW_S = 300.0   # link events this soon after boot are the driver bringing the port up


def _boot_bringup(evs, boot_wall) -> int:
    """How many leading events of one interface are its bring-up while the node boots (downs, then its first up)."""
    for i, (sec, wall, ev, _) in enumerate(evs):
        if sec is not None:
            booting = sec <= BOOT_WINDOW_S
        else:
            try:
                booting = boot_wall is not None and wall is not None and 0 <= (wall - boot_wall).total_seconds() <= BOOT_WINDOW_S
            except TypeError:
                booting = False
        if not booting:
            return 0
        if ev == "up":
            return i + 1
    return 0


def _within_24h(sec, wall, newest_s, newest_w) -> bool:
    if sec is not None and newest_s is not None:
        return newest_s - sec <= 86400
    if wall is not None and newest_w is not None:
        try:
            return (newest_w - wall).total_seconds() <= 86400
        except TypeError:
            return True
    return True


@check("fabric.flaps", needs=(AFTER, DMESG, ETHTOOL_S, MLXLINK), needs_any=True, params=FLAP_PARAMS)
def check_flaps(ctx) -> CheckResult:
    """Link flaps: link_downed, carrier_changes and link_down_events_phy deltas, kernel log link events."""
    fabric = node_fabric(ctx)
    pairs, metrics = flap_findings(ctx, fabric)
    findings = [f for _, f in pairs]
    if fabric.after and fabric.before:
        ok = "no link went down during the window"
    else:
        ok = "no link flap in the evidence"
    return CheckResult.from_findings("fabric.flaps", findings, ok, metrics)
