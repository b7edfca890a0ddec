"""host.pcie: the PCIe links and AER status of the node's NVIDIA and Mellanox functions (lspci -vvv).

A link running narrower than its capability is a seating/riser fault on any part. A slower link is
one on a NIC or switch; a GPU lowers its link speed when idle (gpu.pcie judges its generation under
load), so that is only noted. AER: an uncorrectable status bit fails the part, except an advisory
non-fatal one (a non-fatal Unsupported Request / Unexpected or Aborted Completion that the device
also logged as AdvNonFatalErr, as endpoints do when probed at enumeration); corrected bits other
than AdvNonFatalErr are a warning. The status bits stay set until cleared or the node reboots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clusterkit.checks._gpu_source import parsed_or_result, read_inventory
from clusterkit.checks.registry import check
from clusterkit.evidence.bundle import EvidenceError
from clusterkit.parsers.lspci import LSPCI, PciFunction
from clusterkit.results import CheckResult, Finding

if TYPE_CHECKING:
    from clusterkit.analysis import NodeContext

_ADVISORY_CAPABLE = {"UnsupReq", "UnxCmplt", "CmpltAbrt"}
WIDTH_ACTION = ("reseat the card and its riser or cable, check the slot and the BIOS bifurcation setting; replace the "
                "riser (then the card) if the link stays narrow")
SPEED_ACTION = ("reseat the card and its riser; check the BIOS PCIe generation setting and the riser's rating "
                "(a Gen4 riser holds a Gen5 card at 16GT/s)")
UE_ACTION = "reseat the device or riser at that PCI address; if it repeats, replace it"
LOST_ACTION = ("the device stopped answering (fallen off the bus): drain the node and power-cycle it (a warm reboot "
               "may not bring it back), check its power connectors and reseat it; RMA if it recurs")
CE_ACTION = ("a marginal link: reseat the card / riser if corrected errors keep coming (the bits stay set until "
             "cleared or the node reboots: clear them and look again after a load test)")


def _component(f: PciFunction, gpu_labels: dict[str, str]) -> str:
    if f.bus_id in gpu_labels:
        return gpu_labels[f.bus_id]
    parts = [f.short_name] + ([f"SN {f.serial}"] if f.serial else [f"DSN {f.dsn}"] if f.dsn else [])
    return f"PCIe {f.bus_id} ({', '.join(parts)})"


def _link_findings(f: PciFunction, comp: str) -> list[Finding]:
    out = []
    if f.cap_width and f.sta_width is not None and f.sta_width < f.cap_width:
        out.append(Finding("HOST_PCIE_WIDTH_DEGRADED", "fail", comp,
                           f"{comp}: PCIe link x{f.sta_width}, capable of x{f.cap_width}",
                           observed=f.sta_width, limit=f.cap_width, unit="lanes", action=WIDTH_ACTION))
    if f.cap_speed_gts and f.sta_speed_gts is not None and f.sta_speed_gts < f.cap_speed_gts:
        sev = {"gpu": "info", "nic": "fail"}.get(f.kind, "warn")
        note = " (a GPU lowers its link speed when idle: gpu.pcie judges it under load)" if f.kind == "gpu" else ""
        out.append(Finding("HOST_PCIE_SPEED_DEGRADED", sev, comp,
                           f"{comp}: PCIe link at {f.sta_speed_gts:g}GT/s, capable of {f.cap_speed_gts:g}GT/s{note}",
                           observed=f.sta_speed_gts, limit=f.cap_speed_gts, unit="GT/s",
                           action=None if f.kind == "gpu" else SPEED_ACTION))
    return out


def _aer_findings(f: PciFunction, comp: str) -> list[Finding]:
    out = []
    advisory = "AdvNonFatalErr" in f.ce_status
    ue = [b for b in f.ue_status if not (advisory and b in _ADVISORY_CAPABLE and b not in f.ue_fatal)]
    ce = [b for b in f.ce_status if b != "AdvNonFatalErr"]
    if not f.aer:   # no AER capability (a VM, an old lspci): only the device status bits
        ue = [b for b in f.dev_status if b in ("FatalErr", "NonFatalErr")]
        ce = [b for b in f.dev_status if b == "CorrErr"]
    if ue:
        fatal = [b for b in ue if b in f.ue_fatal or b == "FatalErr"]
        out.append(Finding("HOST_PCIE_AER_UNCORRECTED", "fail", comp,
                           f"{comp}: uncorrectable PCIe error status {' '.join(b + '+' for b in ue)}"
                           + (f" (fatal: {', '.join(fatal)})" if fatal else ""),
                           observed=ue, action=UE_ACTION))
    if ce:
        out.append(Finding("HOST_PCIE_AER_CORRECTED", "warn", comp,
                           f"{comp}: corrected PCIe error status {' '.join(b + '+' for b in ce)}",
                           observed=ce, action=CE_ACTION))
    return out


def _empty(ctx: NodeContext) -> bool:
    try:
        t = ctx.text(LSPCI)
    except EvidenceError as e:
        return "empty" in str(e)
    return t is not None and not t.strip()


@check("host.pcie", needs=(LSPCI,))
def host_pcie(ctx: NodeContext) -> CheckResult:
    """NVIDIA and Mellanox PCIe functions: link narrower or slower than capable, AER error status bits (lspci -vvv)."""
    cid = "host.pcie"
    if _empty(ctx):   # lspci -d 10de: / -d 15b3: print nothing on a node without such functions
        return CheckResult.skip(cid, "lspci lists no NVIDIA or Mellanox function")
    rep, res = parsed_or_result(ctx, cid, LSPCI, action="re-collect `lspci -vvv` as root")
    if res is not None:
        return res
    funcs = rep.judged
    if not funcs:
        return CheckResult.skip(cid, "lspci lists no NVIDIA or Mellanox function")
    inv, _ = read_inventory(ctx)
    labels = {g.pci_bus_id: g.label() for g in (inv.gpus if inv else []) if g.pci_bus_id}
    findings: list[Finding] = []
    for f in funcs:
        comp = _component(f, labels)
        if f.unresponsive:
            findings.append(Finding("HOST_PCIE_DEVICE_LOST", "fail", comp,
                                    f"{comp}: config space reads all ones (rev ff): the device does not answer",
                                    action=LOST_ACTION))
            continue
        findings += _link_findings(f, comp) + _aer_findings(f, comp)
    denied = [f.bus_id for f in funcs if f.access_denied]
    if denied:
        findings.append(Finding("HOST_PCIE_UNREADABLE", "info", "evidence",
                                f"lspci could not read the capabilities of {len(denied)} function(s) (not run as root)",
                                action="collect `lspci -vvv` as root"))
    gpus, nics = sum(f.kind == "gpu" for f in funcs), sum(f.kind == "nic" for f in funcs)
    return CheckResult.from_findings(cid, findings, f"{len(funcs)} NVIDIA/Mellanox PCIe functions ({gpus} GPUs, {nics} NICs): "
                                                    "links at capability, no AER error status")
