"""Judging ports no inventory declares, from the shape of the node itself.

Without an inventory a Down port may simply be unused. The text still tells a lot:
- fleet shape: when most ports of one HCA model (and link layer) are Active at one rate,
  a Down or slower port of that model is a failure, not "ignore if unused";
- a port whose physical link trained (LinkUp) but never went Active has a cable and a far
  end: it is meant to carry traffic and a subnet manager did not configure it;
- the other port of a card (same System image GUID) being Active makes a Down port the
  card's unused second port: reported as info only;
- the HCA model (CA type, firmware major) bounds the rate: a port below every SKU of its
  model is slow, far below it is broken.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from clusterkit.checks._fabric_common import NodeFabric, component, guid_key
from clusterkit.checks._fabric_models import GENERIC_VF, HcaModel, fw_major, hca_model, silicon
from clusterkit.parsers._fabric_text import IB_LANE_GBPS, speed_gbps
from clusterkit.parsers.ibstat import IbPort
from clusterkit.results import Finding

CABLE_ACTION = ("reseat the cable at both ends; if the rate stays low, replace the cable (or optic), "
                "then check the switch port's configured speed")
SM_ACTION = ("the cable and the far end are fine but no subnet manager activated this port: check that opensm (or "
             "the switch/UFM SM) runs on this fabric and sees the port (sminfo, the SM log); for a virtual function "
             "check its GUID is configured for the SM")


def down_action(phys: str | None) -> str:
    ph = (phys or "").lower()
    if ph == "disabled":
        return "the port is disabled: enable it (ip link set <if> up / switch port admin state) if it should carry traffic"
    if ph == "polling":
        return "no link partner: check the cable is plugged in at both ends and the switch port is up; reseat or replace the cable"
    if ph == "linkup":
        return "physical link up but not Active: check the subnet manager (opensm) is running and sees this port"
    return "reseat the cable at both ends; replace the cable or optic if it stays down"


@dataclass(frozen=True)
class Shape:
    """Most ports of one model and link layer are Active at `rate`."""
    model: str
    layer: str
    rate: float
    active: int
    total: int

    def says(self) -> str:
        return f"{self.active} of the {self.total} {self.model} {self.layer} ports here are Active at {self.rate:g} Gb/s"


def model_key(p: IbPort) -> tuple[str, str] | None:
    """(model, link layer) of a port, or None when the text does not show its model."""
    m = hca_model(p.ca_type, p.firmware)
    if m is not None:
        name = m.name
    elif p.ca_type:
        name = p.ca_type if p.ca_type != GENERIC_VF else f"{p.ca_type} fw {fw_major(p.firmware)}"
    else:
        return None
    return name, p.link_layer or "?"


def fleet_shape(ports: list[IbPort]) -> dict[tuple[str, str], Shape]:
    groups: dict[tuple[str, str], list[IbPort]] = defaultdict(list)
    for p in ports:
        key = model_key(p)
        if key:
            groups[key].append(p)
    out = {}
    for key, ps in groups.items():
        rates = Counter(p.rate_gbps for p in ps if p.active and p.rate_gbps)
        if rates:
            rate, k = rates.most_common(1)[0]
            if 2 * k > len(ps):
                out[key] = Shape(key[0], key[1], rate, k, len(ps))
    return out


def _card(p: IbPort) -> str | None:
    return guid_key(p.sys_guid) if p.sys_guid else None


def card_sibling(p: IbPort, ports: list[IbPort]) -> IbPort | None:
    """An Active port of the same physical card (System image GUID), if any."""
    card = _card(p)
    return next((q for q in ports if q is not p and q.active and card and _card(q) == card), None)


def _state(p: IbPort) -> str:
    return f"{p.state}/{p.phys_state}" if p.phys_state else f"{p.state}"


def _down(fabric: NodeFabric, p: IbPort, ports: list[IbPort], shape: Shape | None, inventory: bool) -> Finding:
    comp = component(fabric, p.device, p.port)
    base = f"{p.device} port {p.port} ({p.link_layer or 'unknown'} link layer) is {_state(p)}"
    obs = _state(p)

    def f(sev: str, why: str, action: str | None) -> Finding:
        return Finding("FABRIC_PORT_DOWN", sev, comp, base + why, observed=obs, limit="Active/LinkUp", action=action)

    if inventory:
        return f("info", " (not declared in the inventory; ignore it if the port is unused)", None)
    if shape is not None:
        return f("fail", f" while {shape.says()}: this one is meant to carry traffic too",
                 SM_ACTION if p.trained else down_action(p.phys_state))
    if p.lost_link:
        return f("fail", f": it still holds LID {p.lid} from the subnet manager at LID {p.sm_lid}, so it was part of the "
                         "fabric and lost its link partner", down_action(p.phys_state))
    sibling = card_sibling(p, ports)
    if p.trained:
        if sibling is not None:
            return f("warn", f": the link trained but the subnet manager did not activate this function, while "
                             f"{sibling.device} on the same card (System image GUID {p.sys_guid}) is Active", SM_ACTION)
        return f("fail", ": the link trained (cable and far end are there) but the port never went Active, "
                         "so it carries no traffic", SM_ACTION)
    if sibling is not None:
        return f("info", f": the card's other port {sibling.device} port {sibling.port} is Active, this one is likely "
                         "its unused second port", None)
    return f("warn", " (no inventory: ignore it if the port is unused)", down_action(p.phys_state))


def _rates(m: HcaModel, layer: str | None) -> tuple[float, float] | None:
    """(floor, top) for the layer; an unknown layer takes the widest range the model has."""
    if layer:
        return m.rates(layer)
    known = [r for r in (m.ib, m.eth) if r]
    return (min(r[0] for r in known), max(r[1] for r in known)) if known else None


def _speed_name(rate: float, lanes: int = 4) -> str:
    names = [n for n, g in IB_LANE_GBPS.items() if abs(g * lanes - rate) < 0.5 and n != "FDR10"]
    return f"{lanes}X {names[0]}" if names else f"{rate:g} Gb/s"


def _cable_note(fabric: NodeFabric, device: str) -> str:
    rep = fabric.mlxlink.get(device)
    if rep is None or not rep.cable_speeds:
        return ""
    return f"; the cable advertises {','.join(rep.cable_speeds)} at most"


def _slow(fabric: NodeFabric, p: IbPort, shape: Shape | None, top_of_group: float | None,
          far: float) -> Finding | None:
    rate = p.rate_gbps
    if not rate:
        return None
    comp = component(fabric, p.device, p.port)
    if shape is not None and rate < shape.rate:
        return Finding("FABRIC_PORT_RATE_LOW", "fail", comp, f"{p.device} port {p.port} at {rate:g} Gb/s while "
                       f"{shape.says()}{_cable_note(fabric, p.device)}", observed=rate, limit=shape.rate, unit="Gb/s",
                       action=CABLE_ACTION)
    m = hca_model(p.ca_type, p.firmware)
    span = _rates(m, p.link_layer) if m else None
    if span and rate < span[0]:
        floor, top = span
        sev = "fail" if rate <= top * far else "warn"
        layer = f" {p.link_layer}" if p.link_layer else ""
        why = ("far below what the card can do: the link trained at a fraction of its speed" if sev == "fail" else
               "below every SKU of this model: the switch port, the cable or the port's enabled speeds hold it back")
        return Finding("FABRIC_PORT_RATE_LOW", sev, comp,
                       f"{p.device} port {p.port} at {rate:g} Gb/s on a {m.name}{layer} port (its SKUs run "
                       f"{floor:g}-{top:g} Gb/s): {why}{_cable_note(fabric, p.device)}",
                       observed=rate, limit=floor, unit="Gb/s",
                       action="check the speed the switch port runs and allows (a slower switch caps the link), then "
                              "reseat and replace the cable with one rated for the card's speed")
    if top_of_group and rate < top_of_group:
        return Finding("FABRIC_PORT_RATE_LOW", "warn", comp,
                       f"{p.device} port {p.port} at {rate:g} Gb/s while identical ports run {top_of_group:g}",
                       observed=rate, limit=top_of_group, unit="Gb/s", action=CABLE_ACTION)
    return None


def undeclared_findings(fabric: NodeFabric, ports: list[IbPort], inventory: bool, far: float) -> list[Finding]:
    """Findings for the ports no inventory declares (`inventory`: some other ports are declared)."""
    shape = {} if inventory else fleet_shape(ports)
    tops: dict[tuple[str | None, str | None], float] = defaultdict(float)
    for p in ports:
        if p.active and p.rate_gbps:
            tops[(p.ca_type, p.link_layer)] = max(tops[(p.ca_type, p.link_layer)], p.rate_gbps)
    out: list[Finding] = []
    for p in ports:
        key = model_key(p)
        s = shape.get(key) if key else None
        if not p.active:
            out.append(_down(fabric, p, ports, s, inventory))
        elif (f := _slow(fabric, p, s, tops.get((p.ca_type, p.link_layer)), far)) is not None:
            out.append(f)
    return out


def cable_findings(fabric: NodeFabric, slow_devices: set[str]) -> list[Finding]:
    """mlxlink: an InfiniBand link held below its HCA's top speed by a cable that goes no faster."""
    out: list[Finding] = []
    for name, rep in fabric.mlxlink.items():
        m = hca_model(None, rep.firmware)
        rate, cable = rep.rate_gbps, rep.cable_top_gbps
        if (name in slow_devices or m is None or m.ib is None or rep.link_layer != "InfiniBand" or not rate
                or not cable or (rep.state or "").lower() != "active"):
            continue
        top = m.ib[1] * rep.lanes / 4
        if rate < top and cable <= rate:
            enabled = [r for r in (speed_gbps(t, rep.lanes) for t in rep.enabled_speeds) if r]
            also = " and the port's enabled speeds stop there too" if enabled and max(enabled) <= rate else ""
            out.append(Finding(
                "FABRIC_PORT_RATE_LOW", "warn", component(fabric, name, rep.port or 1),
                f"{name} port {rep.port or 1} at {rep.speed} ({rate:g} Gb/s) on a {m.name} (up to {top:g} Gb/s): "
                f"the cable advertises {','.join(rep.cable_speeds)} at most{also}, so the cable limits the link",
                observed=rate, limit=top, unit="Gb/s",
                action=f"if this port should run {_speed_name(top, rep.lanes)}: use a cable rated for it, then check "
                       f"the port's enabled speeds (mlxlink -d <dev> --speeds / mlxconfig)"))
    return out


def firmware_findings(ports: list[IbPort]) -> list[Finding]:
    """HCAs of one silicon (CA type and firmware major) on different firmware."""
    fw: dict[tuple[str, str | None], set[str]] = defaultdict(set)
    for p in ports:
        if p.firmware and p.ca_type:
            fw[silicon(p.ca_type, p.firmware)].add(p.firmware)
    return [Finding("FABRIC_FIRMWARE_MISMATCH", "warn", f"{ca_type} HCAs",
                    f"{ca_type} HCAs run different firmware: {', '.join(sorted(versions))}",
                    observed=sorted(versions), action="flash one firmware version (mlxfwmanager) to all")
            for (ca_type, _), versions in fw.items() if len(versions) > 1]


def aborted_findings(fabric: NodeFabric) -> list[Finding]:
    out = []
    for line, device in fabric.aborted:
        what = device or "the rest"
        out.append(Finding(
            "FABRIC_TOOL_ABORTED", "warn", device or "ibstat",
            f"ibstat stopped part-way ({line}): the ports it printed before are judged, {what} is not",
            observed=line,
            action=f"re-run ibstat; if {what} is still missing, check dmesg for mlx5_core errors on it and whether the "
                   "device was removed or reset (lspci, /sys/class/infiniband)"))
    return out
