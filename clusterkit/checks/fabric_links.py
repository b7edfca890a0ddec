"""fabric.links: one verdict per physical link, both ends together when both are known.

Node checks speak about one port; this groups what they found per link (host
port <-> switch port, or host <-> host), decides which direction is bad
(errors at a receiver blame the path feeding it) and checks firmware across
the fleet. Runs at cluster scope so a back-to-back link's two ends meet.
"""

from __future__ import annotations

import re
from collections import defaultdict

from clusterkit.checks._fabric_common import Peer, node_fabric
from clusterkit.checks._fabric_models import silicon
from clusterkit.checks.fabric_counters import counter_findings, flap_findings
from clusterkit.checks.fabric_ports import check_ports
from clusterkit.checks.fabric_signal import ber_findings, optics_findings
from clusterkit.checks.registry import check
from clusterkit.results import CheckResult, Finding

_RX_CODES = ("IB_SYMBOL_ERROR_INCREASED", "IB_PORT_RCV_ERRORS_INCREASED", "IB_LOCAL_LINK_INTEGRITY_ERRORS_INCREASED",
             "ETH_RX_CRC_ERRORS_PHY_INCREASED", "ETH_RX_SYMBOL_ERR_PHY_INCREASED", "FABRIC_RX_LANE_WEAK_FIBER",
             "FABRIC_RX_POWER_LOW", "FABRIC_EFFECTIVE_BER_HIGH", "FABRIC_RAW_BER_HIGH", "FABRIC_RX_LOS")
_FLAP_CODES = ("IB_LINK_DOWNED_INCREASED", "FABRIC_CARRIER_CHANGES", "ETH_LINK_DOWN_EVENTS_INCREASED",
               "FABRIC_LINK_FLAPS_KERNEL_LOG", "IB_LINK_ERROR_RECOVERY_INCREASED")


def _verdict(here: list[Finding], there: list[Finding] | None, here_name: str, there_name: str) -> tuple[str, str]:
    codes = {f.code for f in here}
    far = {f.code for f in there or []}
    rx_here = codes & set(_RX_CODES)
    rx_far = far & set(_RX_CODES)
    if "FABRIC_TX_POWER_LOW" in far and rx_here:
        return (f"{there_name}'s transmitter is weak and {here_name} receives errors",
                f"replace the optic at {there_name}")
    if rx_here and rx_far:
        return "both directions see receive errors", "replace the cable (both directions are bad); clean both ends first"
    if "FABRIC_RX_LANE_WEAK_FIBER" in codes:
        lane_msg = next(f.message for f in here if f.code == "FABRIC_RX_LANE_WEAK_FIBER")
        far_ok = " (far end transmits normally)" if there is not None else ""
        return (f"{lane_msg}{far_ok}",
                f"clean/re-terminate the fiber feeding {here_name} (direction {there_name} -> {here_name}); "
                "replace the patch cable if it stays low")
    if rx_here:
        return (f"errors at {here_name}'s receiver",
                f"clean the fiber ends of direction {there_name} -> {here_name} and reseat; replace the cable, "
                f"then the optic at {here_name}, if errors continue")
    if "FABRIC_PORT_RATE_LOW" in codes or "FABRIC_PORT_DOWN" in codes:
        f = next(f for f in here if f.code in ("FABRIC_PORT_RATE_LOW", "FABRIC_PORT_DOWN"))
        return f.message, f.action or "reseat the cable at both ends; replace the cable or optic"
    if codes & set(_FLAP_CODES):
        return "the link went down", "reseat both ends; replace the cable if it flaps again"
    if "FABRIC_TX_POWER_LOW" in codes:
        return f"{here_name}'s transmitter is weak", f"replace the optic at {here_name}"
    worst = here[0]
    return worst.message, worst.action or ""


_PORT_CODES = ("FABRIC_PORT_RATE_LOW", "FABRIC_PORT_DOWN")
# Said of a port but not of its link: a host-side drop, a total with no window to judge a rate in.
_NOT_THE_LINK = ("ETH_RX_OUT_OF_BUFFER", "FABRIC_COUNTER_LIFETIME")
_PORT_KEY = re.compile(r"^(\S+) port (\d+)\b")


def _port_pairs(nctx) -> list[tuple[str, Finding]]:
    """fabric.ports' per-port findings, keyed like the others (`mlx5_3/1`)."""
    out = []
    result = nctx._cache.get(("fabric", "ports-result")) or check_ports(nctx)
    for f in result.findings:
        m = _PORT_KEY.match(f.component)
        if f.code in _PORT_CODES and f.severity == "fail" and m:
            out.append((f"{m.group(1)}/{m.group(2)}", f))
    return out


@check("fabric.links", scope="cluster")
def check_links(ctx) -> list[CheckResult]:
    """Per-link verdict across nodes (both ends when known) and firmware consistency across the fleet."""
    per_port: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    peers: dict[tuple[str, str], Peer] = {}
    by_lid: dict[tuple[int, int], tuple[str, str]] = {}
    firmware: dict[tuple[str, str | None], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for nctx in ctx.nodes:
        fabric = node_fabric(nctx)
        for fn in (counter_findings, flap_findings, ber_findings, optics_findings):
            try:
                pairs, _ = fn(nctx, fabric)
            except Exception:   # bad evidence is reported by the node checks themselves
                continue
            for key, f in pairs:
                if f.severity in ("fail", "warn") and f.code not in _NOT_THE_LINK:
                    per_port[(nctx.host, key)].append(f)
        try:
            for key, f in _port_pairs(nctx):
                per_port[(nctx.host, key)].append(f)
        except Exception:
            pass
        for p in fabric.ports:
            key = f"{p.device}/{p.port}"
            if p.lid:
                by_lid[(p.lid, p.port)] = (nctx.host, key)
            peer = fabric.peer(p.device, p.port)
            if peer:
                peers[(nctx.host, key)] = peer
            if p.firmware and p.ca_type:
                firmware[silicon(p.ca_type, p.firmware)][p.firmware].append(nctx.host)
    findings: list[Finding] = []
    done: set[tuple[str, str]] = set()
    for end, here in sorted(per_port.items()):
        if end in done:
            continue
        host, key = end
        here_name = f"{host} {key.replace('/', ' port ')}"
        peer = peers.get(end)
        # The other end is a node of this run when the peer's LID/port is one of their HCA ports (back-to-back).
        far_end = by_lid.get((peer.lid, peer.port)) if peer and peer.lid is not None and peer.port is not None else None
        there = per_port.get(far_end, []) if far_end else None
        there_name = f"{far_end[0]} {far_end[1].replace('/', ' port ')}" if far_end else (str(peer) if peer else "switch port")
        why, action = _verdict(here, there, here_name, there_name)
        sev = "fail" if any(f.severity == "fail" for f in here + (there or [])) else "warn"
        findings.append(Finding("FABRIC_LINK_BAD", sev, f"link {here_name} <-> {there_name}", why,
                                action=action, evidence="; ".join(f"{f.code}: {f.message}" for f in here[:4])))
        done.add(end)
        if far_end:
            done.add(far_end)
    for (ca_type, _), versions in firmware.items():
        if len(versions) > 1:
            common = max(versions, key=lambda v: len(versions[v]))
            odd = sorted(h for v, hs in versions.items() if v != common for h in hs)
            findings.append(Finding("FABRIC_FIRMWARE_MISMATCH", "warn", f"{ca_type} HCAs",
                                    f"{ca_type} firmware differs across the fleet: most run {common}, "
                                    f"{', '.join(odd[:8])}{' ...' if len(odd) > 8 else ''} do not",
                                    observed=sorted(versions), action=f"flash {common} (mlxfwmanager) on the odd nodes"))
    metrics = {"links_bad": sum(1 for f in findings if f.code == "FABRIC_LINK_BAD")}
    return [CheckResult.from_findings("fabric.links", findings, "no bad link across the fleet", metrics)]
