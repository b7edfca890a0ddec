"""gpu.* checks: inventory, versions, memory health, PCIe/NVLink, topology, clock events, DCGM diag (Xid: gpu_xid.py).

Every finding names the GPU (index, PCI bus id, serial) and the action.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from clusterkit.checks._gpu_source import (
    GPU_SOURCES, NO_GPU, declared_count, gpu_profile, per_gpu_check, no_gpu_skip, parsed_or_result,
    power_trace, read_inventory, tool_failure_finding, GPU_NOT_FOUND_ACTION,
)
from clusterkit.checks.registry import check
from clusterkit.parsers import ParseError
from clusterkit.parsers.dcgmi import DCGMI_DIAG
from clusterkit.parsers.dmidecode_bios import DMIDECODE_BIOS
from clusterkit.parsers.fabricmanager import FABRICMANAGER
from clusterkit.parsers.gpu_records import CLOCK_REASON_BITS, GpuInventory, GpuRecord, datacenter_gpu, reason_names
from clusterkit.parsers.nvidia_smi import NVIDIA_SMI_Q, TOPO, link_rank
from clusterkit.parsers.nvml_json import NVML
from clusterkit.parsers.power_trace import POWER_TRACE
from clusterkit.results import CheckResult, Finding

if TYPE_CHECKING:
    from clusterkit.analysis import ClusterContext, NodeContext

PERSISTENCE_ACTION = "enable nvidia-persistenced (or `nvidia-smi -pm 1`)"


def _total_power(gpus: list[GpuRecord]) -> float | None:
    vals = [g.power_draw_w for g in gpus if g.power_draw_w is not None]
    return round(sum(vals), 1) if vals else None


# ---------------------------------------------------------------- inventory

@check("gpu.inventory", needs=GPU_SOURCES, needs_any=True,
       params={"gpu.pci_device_ids": list})
def gpu_inventory(ctx: NodeContext) -> CheckResult:
    """GPU count, model and PCI device id against the inventory's declaration."""
    cid = "gpu.inventory"
    skip = no_gpu_skip(ctx, cid)
    if skip is not None:
        return skip
    want = declared_count(ctx)
    model = ctx.declared.get("gpu_model")
    inv, reasons = read_inventory(ctx)
    findings: list[Finding] = []
    if inv is not None and not inv.gpus and inv.failure and (want or ctx.loose):
        return CheckResult.from_findings(cid, [tool_failure_finding(inv, want, model)], "", {"gpu_count_detected": 0})
    if (inv is None or not inv.gpus) and not want:
        return CheckResult.skip(cid, NO_GPU)
    if inv is None or not inv.gpus:
        why = (inv.error if inv is not None and inv.error else "; ".join(reasons)) or "no GPU listed"
        return CheckResult.from_findings(cid, [Finding(
            "GPU_NOT_FOUND", "fail", "node", f"declared {want} x {model}, found no NVIDIA GPU: check driver installation / PCIe",
            observed=0, limit=want, unit="GPUs",
            action=GPU_NOT_FOUND_ACTION,
            evidence=why)], "", {"gpu_count_detected": 0})
    profile = gpu_profile(ctx, inv)
    found = inv.count
    metrics: dict[str, Any] = {"gpu_count_detected": found}
    total = _total_power(inv.gpus)
    readings = sum(1 for g in inv.gpus if g.power_draw_w is not None)
    if total is not None and readings == found:
        metrics["gpu_power_draw_total_w"] = total
    elif total is not None:
        findings.append(Finding("GPU_EVIDENCE_PARTIAL", "info", "evidence",
                                f"power draw read on {readings} of {found} GPUs: no node total reported"))
    if want and found < want:
        findings.append(Finding(
            "GPU_COUNT_LOW", "fail", "node", f"declared {want} x {model}, found {found}",
            observed=found, limit=want, unit="GPUs",
            action="find the missing GPU (gpu.xid shows an Xid 79 'fallen off the bus' for it if it dropped): "
                   "power-cycle the node, reseat the GPU, RMA if it stays missing",
            evidence="found: " + ", ".join(g.label() for g in inv.gpus)))
    elif want and found > want:
        findings.append(Finding("GPU_COUNT_HIGH", "warn", "node", f"declared {want} GPUs, found {found}",
                                observed=found, limit=want, unit="GPUs", action="correct gpu_count in the inventory"))
    elif not want and ctx.spec is not None:
        findings.append(Finding("GPU_UNDECLARED", "warn", "node", f"found {found} GPUs but the inventory declares none",
                                observed=found, limit=0, unit="GPUs", action="set gpu_model and gpu_count in the inventory"))
    ids = profile.get("gpu.pci_device_ids")
    for g in inv.gpus:
        if g.error:
            findings.append(Finding("GPU_UNREADABLE", "fail", g.label(), f"{g.label()}: {g.error}",
                                    action="reset the GPU (nvidia-smi -r) or power-cycle the node; RMA if it recurs"))
        if ids and g.pci_device_id and g.pci_device_id not in [str(i).lower() for i in ids]:
            findings.append(Finding("GPU_MODEL_MISMATCH", "fail", g.label(),
                                    f"{g.label()} is {g.name} ({g.pci_device_id}), profile {profile.name} expects {', '.join(ids)}",
                                    observed=g.pci_device_id, limit=list(ids),
                                    action="fix gpu_model in the inventory or install the ordered GPU"))
    for w in inv.warnings:
        findings.append(Finding("GPU_EVIDENCE_PARTIAL", "info", "evidence", w))
    names = Counter(g.name for g in inv.gpus if g.name)
    desc = ", ".join(f"{n} x {name}" for name, n in names.items()) or f"{found} GPUs"
    if inv.processes is not None:   # the nvidia-smi screen and -q -x list them: a busy node is not idle for a test
        desc += f"; {len(inv.processes)} process(es) on the GPUs" if inv.processes else "; no process on the GPUs"
    return CheckResult.from_findings(cid, findings, f"{found} GPUs found: {desc}", metrics)


# ---------------------------------------------------------------- versions and fabric manager

@per_gpu_check("gpu.versions", needs=GPU_SOURCES + (FABRICMANAGER,), needs_any=True, params={"gpu.requires_fabric_manager": bool})
def gpu_versions(ctx: NodeContext, inv: GpuInventory) -> CheckResult:
    """Driver/VBIOS coherence on the node, persistence mode, fabric manager state on NVSwitch systems."""
    cid = "gpu.versions"
    profile = gpu_profile(ctx, inv)
    findings: list[Finding] = []
    vb = Counter(g.vbios_version for g in inv.gpus if g.vbios_version)
    if len(vb) > 1:
        common = vb.most_common(1)[0][0]
        for g in inv.gpus:
            if g.vbios_version and g.vbios_version != common:
                findings.append(Finding("GPU_VBIOS_MIXED", "warn", g.label(),
                                        f"{g.label()} VBIOS {g.vbios_version} differs from the node's {common}",
                                        observed=g.vbios_version, limit=common,
                                        action="flash the node's GPUs to one VBIOS (nvflash / vendor firmware bundle)"))
    # workstation and desktop boards run without persistence by default: only data-center parts are told
    off = [g for g in inv.gpus if g.persistence_mode is False and datacenter_gpu(g.name) is not False]
    if off:
        findings.append(Finding("GPU_PERSISTENCE_OFF", "warn",
                                ", ".join(f"GPU {g.index}" if g.index is not None else g.label() for g in off),
                                f"persistence mode is off on {len(off)} GPU(s)",
                                action=PERSISTENCE_ACTION))
    # An NVSwitch system by its profile, or by what its GPUs say: only fabric-attached GPUs report a fabric state.
    if profile.get("gpu.requires_fabric_manager") or any(g.fabric_state not in (None, "not_supported") for g in inv.gpus):
        findings += _fabric_findings(ctx, inv.gpus, inv.driver_version)
    metrics: dict[str, Any] = {}
    summary = f"driver {inv.driver_version or '?'}, VBIOS {', '.join(vb) or '?'}"
    return CheckResult.from_findings(cid, findings, summary, metrics)


def _fabric_findings(ctx: NodeContext, gpus: list[GpuRecord], driver: str | None) -> list[Finding]:
    out: list[Finding] = []
    not_ready = [g for g in gpus if g.fabric_state and g.fabric_state not in ("completed", "not_supported")]
    bad_status = [g for g in gpus if g.fabric_state == "completed" and g.fabric_status
                  and g.fabric_status.lower() not in ("success", "n/a")]
    fm = None
    if ctx.exists(FABRICMANAGER):
        try:
            fm = ctx.parsed(FABRICMANAGER)
        except ParseError as e:
            out.append(Finding("GPU_EVIDENCE_PARTIAL", "info", "evidence", f"{FABRICMANAGER.path}: {e}"))
    action = ("start it: `systemctl enable --now nvidia-fabricmanager` (its version must equal the driver's); "
              "CUDA fails with 'system not yet initialized' until it runs")
    if fm is not None and fm.state not in (None, "active"):
        out.append(Finding("GPU_FABRIC_MANAGER_NOT_RUNNING", "fail", "nvidia-fabricmanager",
                           f"nvidia-fabricmanager is {fm.state} on an NVSwitch system", observed=fm.state,
                           limit="active", action=action))
    if fm is not None and fm.version and driver and fm.version != driver:
        out.append(Finding("GPU_FABRIC_MANAGER_VERSION_MISMATCH", "fail", "nvidia-fabricmanager",
                           f"fabric manager {fm.version} does not match driver {driver}", observed=fm.version, limit=driver,
                           action="install the nvidia-fabricmanager package of exactly the driver's version"))
    if not_ready:
        out.append(Finding("GPU_FABRIC_NOT_READY", "fail", ", ".join(g.label() for g in not_ready),
                           f"{len(not_ready)} GPU(s) have not joined the NVLink fabric (state {not_ready[0].fabric_state})",
                           observed=not_ready[0].fabric_state, limit="completed", action=action))
    for g in bad_status:
        out.append(Finding("GPU_FABRIC_NOT_READY", "fail", g.label(), f"{g.label()} fabric status {g.fabric_status}",
                           observed=g.fabric_status, limit="Success", action=action))
    return out


# Cluster checks are not skipped by `needs`; it names what collect must fetch from every node.
@check("gpu.version_drift", scope="cluster",
       needs=(NVML, NVIDIA_SMI_Q, FABRICMANAGER, DMIDECODE_BIOS))
def gpu_version_drift(ctx: ClusterContext) -> list[CheckResult]:
    """Driver, VBIOS, fabric manager and BIOS versions: nodes that differ from the fleet's majority."""
    cid = "gpu.version_drift"
    facts: dict[str, dict[str, str]] = {}   # host -> {what: version}
    for n in ctx.nodes:
        f: dict[str, str] = {}
        inv, _ = read_inventory(n)
        if inv is not None and inv.gpus:
            if inv.driver_version:
                f["driver"] = inv.driver_version
            vb = Counter(g.vbios_version for g in inv.gpus if g.vbios_version)
            if vb:
                f["VBIOS"] = vb.most_common(1)[0][0]
        for kind, key in ((FABRICMANAGER, "fabric manager"), (DMIDECODE_BIOS, "BIOS")):
            if n.exists(kind):
                try:
                    v = n.parsed(kind).version
                except ParseError:
                    v = None
                if v:
                    f[key] = v
        if f:
            facts[n.host] = f
    if len(facts) < 2:
        return [CheckResult.skip(cid, "fewer than two nodes with version facts")]
    per_host: dict[str, list[Finding]] = {h: [] for h in facts}
    summary_parts = []
    # the running driver and fabric manager are the stack drift stack.versions also reports from packages
    codes = {"driver": "STACK_VERSION_DRIFT", "VBIOS": "GPU_VBIOS_DRIFT", "fabric manager": "STACK_VERSION_DRIFT",
             "BIOS": "NODE_BIOS_DRIFT"}
    actions = {"driver": "install the fleet's driver version (clusterkit provision)",
               "VBIOS": "flash the fleet's VBIOS",
               "fabric manager": "install the fleet's nvidia-fabricmanager version (equal to the driver)",
               "BIOS": "update the BIOS to the fleet's version (vendors ship power-delivery fixes as BIOS updates)"}
    for what, code in codes.items():
        c = Counter(f[what] for f in facts.values() if what in f)
        if not c:
            continue
        common, n_common = c.most_common(1)[0]
        summary_parts.append(f"{what} {common}" + (f" ({len(c)} versions)" if len(c) > 1 else ""))
        if len(c) == 1:
            continue
        for h, f in facts.items():
            if what in f and f[what] != common:
                per_host[h].append(Finding(code, "warn", f"{h} {what}",
                                           f"{what} {f[what]} differs from the fleet's {common} ({n_common} of {sum(c.values())} nodes)",
                                           observed=f[what], limit=common, action=actions[what]))
    out = [CheckResult.from_findings(cid, fs, "versions match the fleet") for h, fs in per_host.items()]
    for h, r in zip(per_host, out):
        r.host = h
    out.append(CheckResult.from_findings(cid, [], "fleet: " + ", ".join(summary_parts)))
    return out


# ---------------------------------------------------------------- memory health

@per_gpu_check("gpu.ecc", needs=GPU_SOURCES, needs_any=True, params={"gpu.max_volatile_uncorrectable_ecc": int})
def gpu_ecc(ctx: NodeContext, inv: GpuInventory) -> CheckResult:
    """ECC: uncorrectable volatile errors fail; aggregate history is a warning."""
    cid = "gpu.ecc"
    limit = gpu_profile(ctx, inv).get("gpu.max_volatile_uncorrectable_ecc", 0)
    findings: list[Finding] = []
    for g in inv.gpus:
        if g.ecc_volatile_uncorrected is not None and g.ecc_volatile_uncorrected > limit:
            findings.append(Finding("GPU_ECC_UNCORRECTABLE", "fail", g.label(),
                                    f"{g.label()}: {g.ecc_volatile_uncorrected} uncorrectable ECC errors since the last reset",
                                    observed=g.ecc_volatile_uncorrected, limit=limit, unit="errors",
                                    action="drain the node, reset the GPU and check row remapping (gpu.memory); RMA if they return"))
        elif g.ecc_aggregate_uncorrected:
            findings.append(Finding("GPU_ECC_UNCORRECTABLE_HISTORY", "warn", g.label(),
                                    f"{g.label()}: {g.ecc_aggregate_uncorrected} uncorrectable ECC errors in its lifetime",
                                    observed=g.ecc_aggregate_uncorrected, unit="errors",
                                    action="watch it: if gpu.memory shows remap failure or the count grows, RMA"))
    for g in inv.gpus:
        if g.ecc_enabled is False and datacenter_gpu(g.name):
            findings.append(Finding("GPU_ECC_DISABLED", "warn", g.label(),
                                    f"{g.label()}: ECC is disabled on a data-center GPU: memory errors go unseen and uncorrected",
                                    observed="Disabled", limit="Enabled",
                                    action="enable it (`nvidia-smi -i <n> -e 1`, then reset the GPU or reboot); "
                                           "provisioning should leave it on"))
    known = [g for g in inv.gpus if g.ecc_volatile_uncorrected is not None]
    if not known:
        if findings:
            return CheckResult.from_findings(cid, findings, "")
        return CheckResult.skip(cid, "the GPU evidence has no ECC counters (ECC disabled or not reported)")
    return CheckResult.from_findings(cid, findings, f"no uncorrectable ECC errors on {len(known)} GPUs")


@per_gpu_check("gpu.memory", needs=GPU_SOURCES, needs_any=True,
       params={"gpu.max_remapped_rows_uncorrectable": int, "gpu.max_retired_pages": int, "gpu.max_retired_pages_dbe": int})
def gpu_memory(ctx: NodeContext, inv: GpuInventory) -> CheckResult:
    """Row remapping (pending = reset, failure = RMA) and retired pages."""
    cid = "gpu.memory"
    p = gpu_profile(ctx, inv)
    max_rr, max_rp, max_dbe = (p.get("gpu.max_remapped_rows_uncorrectable"), p.get("gpu.max_retired_pages"),
                               p.get("gpu.max_retired_pages_dbe"))
    findings: list[Finding] = []
    for g in inv.gpus:
        if g.remap_failure:
            findings.append(Finding("GPU_ROW_REMAP_FAILURE", "fail", g.label(), f"{g.label()}: row remapping failed",
                                    observed=True, action="RMA the GPU: it has no spare rows left for a failing row"))
        if g.remap_pending:
            findings.append(Finding("GPU_ROW_REMAP_PENDING", "fail", g.label(),
                                    f"{g.label()}: a row remap is pending ({g.remap_uncorrectable or 0} uncorrectable remapped rows)",
                                    observed=True, action="drain the node and reset the GPU (`nvidia-smi -r -i N`) or reboot to apply the remap"))
        if max_rr is not None and g.remap_uncorrectable is not None and g.remap_uncorrectable > max_rr:
            findings.append(Finding("GPU_REMAPPED_ROWS_LIMIT", "fail", g.label(),
                                    f"{g.label()}: {g.remap_uncorrectable} rows remapped for uncorrectable errors",
                                    observed=g.remap_uncorrectable, limit=max_rr, unit="rows", action="RMA the GPU"))
        pages = (g.retired_pages_sbe or 0) + (g.retired_pages_dbe or 0)
        if max_rp is not None and pages > max_rp or max_dbe is not None and (g.retired_pages_dbe or 0) > max_dbe:
            findings.append(Finding("GPU_RETIRED_PAGES_LIMIT", "fail", g.label(),
                                    f"{g.label()}: {pages} retired pages ({g.retired_pages_dbe or 0} double-bit)",
                                    observed=pages, limit=max_rp, unit="pages", action="RMA the GPU"))
        if g.retired_pages_pending:
            findings.append(Finding("GPU_PAGE_RETIREMENT_PENDING", "warn", g.label(),
                                    f"{g.label()}: a page retirement is pending",
                                    action="reset the GPU or reboot to apply the retirement"))
    known = [g for g in inv.gpus if g.remap_pending is not None or g.retired_pages_sbe is not None]
    if not known:
        return CheckResult.skip(cid, "the GPU evidence has no row-remap or retired-page counters")
    return CheckResult.from_findings(cid, findings, f"no pending or failed row remaps on {len(known)} GPUs")


# ---------------------------------------------------------------- PCIe and NVLink

@per_gpu_check("gpu.pcie", needs=GPU_SOURCES, needs_any=True, params={"gpu.min_pcie_gen": int, "gpu.min_pcie_width": int})
def gpu_pcie(ctx: NodeContext, inv: GpuInventory) -> CheckResult:
    """PCIe link below its maximum width (any time) or generation (under load: idle GPUs downshift)."""
    cid = "gpu.pcie"
    p = gpu_profile(ctx, inv)
    min_gen, min_width = p.get("gpu.min_pcie_gen"), p.get("gpu.min_pcie_width")
    loaded = _pcie_under_load(ctx)
    findings: list[Finding] = []
    # A narrow link is a seating fault when a GPU of the same node runs at full width, or the profile
    # expects full width; alone (one GPU, all alike, no profile) it may be how the slot is wired.
    full_peer = any(g.pcie_width is not None and g.pcie_width_max is not None and g.pcie_width >= g.pcie_width_max
                    for g in inv.gpus)
    for g in inv.gpus:
        gen, gen_max, width, width_max = g.pcie_gen, g.pcie_gen_max, g.pcie_width, g.pcie_width_max
        under_load = g.utilization_pct is not None and g.utilization_pct >= 50
        if g.index in loaded:
            gen, gen_max, width, width_max = loaded[g.index]
            under_load = True
        if width is not None and width_max is not None and width < width_max:
            known_fault = full_peer or (min_width is not None and width < min_width)
            findings.append(Finding(
                "HOST_PCIE_WIDTH_DEGRADED", "fail" if known_fault else "warn", g.label(),
                f"{g.label()}: PCIe link x{width}, capable of x{width_max}" + (
                    "" if known_fault else " (no GPU of this node at full width and no profile width to compare: "
                                           "the slot, riser or host may be wired this way)"),
                observed=width, limit=width_max, unit="lanes",
                action="reseat the GPU / riser and check the slot; RMA the baseboard if it persists" if known_fault else
                "check the slot's electrical width, the riser and the BIOS bifurcation setting; reseat the GPU if the "
                "slot is x{0}".format(width_max)))
        if under_load and gen is not None and gen_max is not None and gen < gen_max:
            findings.append(Finding("GPU_PCIE_GEN_DEGRADED", "fail", g.label(),
                                    f"{g.label()}: PCIe Gen{gen} under load, capable of Gen{gen_max}",
                                    observed=gen, limit=gen_max, action="check BIOS PCIe settings and reseat the GPU / riser"))
        if min_width and width_max is not None and width_max < min_width:
            findings.append(Finding("GPU_PCIE_SLOT_NARROW", "warn", g.label(),
                                    f"{g.label()}: link capability x{width_max}, expected x{min_width}",
                                    observed=width_max, limit=min_width, unit="lanes", action="check the slot/riser type"))
        if min_gen and gen_max is not None and gen_max < min_gen:
            findings.append(Finding("GPU_PCIE_SLOT_SLOW", "warn", g.label(),
                                    f"{g.label()}: link capability Gen{gen_max}, expected Gen{min_gen}",
                                    observed=gen_max, limit=min_gen, action="check BIOS PCIe generation setting and the riser"))
    known = [g for g in inv.gpus if g.pcie_width is not None]
    if not known and not loaded:
        return CheckResult.skip(cid, "the GPU evidence has no PCIe link state")
    note = " (generation judged under load)" if loaded else " (generation not judged: no reading under load)"
    return CheckResult.from_findings(cid, findings, f"PCIe links at full width on {len(known) or len(loaded)} GPUs{note}")


def _pcie_under_load(ctx: NodeContext) -> dict[int, tuple[int, int, int, int]]:
    if not ctx.exists(POWER_TRACE):
        return {}
    try:
        tr = power_trace(ctx, samples=False)
    except ParseError:
        return {}
    return {i: g.pcie_under_load for i, g in tr.gpus.items() if g.pcie_under_load}


# ---------------------------------------------------------------- topology

@check("gpu.topology", needs=(TOPO, NVML), needs_any=True, params={"gpu.max_gpu_nic_link": str, "gpu.nvlink_links_per_gpu": int})
def gpu_topology(ctx: NodeContext) -> CheckResult:
    """GPU-GPU over NVLink and each GPU's nearest NIC no farther than the profile allows."""
    cid = "gpu.topology"
    topo, res = parsed_or_result(ctx, cid, TOPO, action="re-collect `nvidia-smi topo -m`")
    if res is not None:
        return res
    inv, _ = read_inventory(ctx)
    p = gpu_profile(ctx, inv) if inv else ctx.profile
    if p.get("gpu.nvlink_links_per_gpu") is None and p.get("gpu.max_gpu_nic_link") is None:
        from clusterkit.profiles import load_profile
        p = load_profile("base") if p.name != "base" else p
    findings: list[Finding] = []
    if p.get("gpu.nvlink_links_per_gpu"):
        pcie_pairs = [(a, b, topo.links[(a, b)]) for a in topo.gpus for b in topo.gpus
                      if a < b and (a, b) in topo.links and not topo.links[(a, b)].startswith("NV")]
        if pcie_pairs:
            findings.append(Finding("GPU_P2P_NOT_NVLINK", "fail", ", ".join(f"{a}-{b}" for a, b, _ in pcie_pairs[:6]),
                                    f"{len(pcie_pairs)} GPU pair(s) talk over PCIe ({pcie_pairs[0][2]}), not NVLink",
                                    observed=pcie_pairs[0][2], limit="NV#",
                                    action="check fabric manager and NVLink state (gpu.nvlink); reset the GPUs or the node"))
    limit = p.get("gpu.max_gpu_nic_link")
    declared_nics = list(ctx.declared.get("ib_devices") or []) + list(ctx.declared.get("roce_interfaces") or [])
    if topo.nics and limit:
        for gpu in topo.gpus:
            nic, link = topo.nearest_nic(gpu)
            if nic and link and link_rank(link) > link_rank(limit):
                findings.append(Finding("GPU_NIC_FAR", "warn", gpu,
                                        f"{gpu}'s nearest NIC {topo.nic_name(nic)} is {link} (expected {limit} or closer)",
                                        observed=link, limit=limit,
                                        action="check that every NIC is in its slot and enabled; GPUDirect RDMA across the CPU costs bandwidth"))
    names = {topo.nic_name(n) for n in topo.nics}
    missing = [d for d in ctx.declared.get("ib_devices") or [] if d not in names]
    if topo.nics and missing:
        findings.append(Finding("GPU_NIC_MISSING_FROM_TOPOLOGY", "warn", ", ".join(missing),
                                f"declared NIC(s) {', '.join(missing)} not in the GPU topology",
                                action="check the NIC is seated and its driver loaded (ibstat)"))
    elif declared_nics and not topo.nics:
        findings.append(Finding("GPU_NIC_MISSING_FROM_TOPOLOGY", "warn", "node",
                                "the GPU topology lists no NIC, but the inventory declares some",
                                action="check the NICs and the mlx5 driver (ibstat, lspci)"))
    if topo.missing_rows:
        findings.append(Finding("GPU_EVIDENCE_PARTIAL", "info", "nvidia-smi topo -m",
                                f"the matrix has no row for {', '.join(topo.missing_rows)} (cut paste): judged on the rows shown",
                                action="re-collect the whole `nvidia-smi topo -m` to judge every GPU"))
    nic_desc = f", {len(topo.nics)} NICs each within {limit} of a GPU" if topo.nics and limit else ""
    return CheckResult.from_findings(cid, findings, f"{len(topo.gpus)} GPUs{nic_desc}",
                                     {"gpu_topology_nics": len(topo.nics)})


# ---------------------------------------------------------------- clock event reasons

@per_gpu_check("gpu.clock_events", needs=GPU_SOURCES, needs_any=True)
def gpu_clock_events(ctx: NodeContext, inv: GpuInventory) -> CheckResult:
    """Clock event reasons at collection: HW slowdown / HW thermal / HW power brake fail; SW power cap is normal."""
    cid = "gpu.clock_events"
    findings: list[Finding] = []
    for g in inv.gpus:
        r = g.clock_event_reasons
        if r is None:
            continue
        if r & CLOCK_REASON_BITS["hw_power_brake"] or (r & CLOCK_REASON_BITS["hw_slowdown"] and not r & CLOCK_REASON_BITS["hw_thermal"]):
            findings.append(Finding("GPU_CLOCK_HW_POWER_SLOWDOWN", "fail", g.label(),
                                    f"{g.label()}: {', '.join(reason_names(r & 0x88))} active",
                                    observed=f"0x{r:x}", action="node power delivery: check PSUs, power cabling and BIOS power settings; run the power step test (suite full)"))
        if r & CLOCK_REASON_BITS["hw_thermal"]:
            findings.append(Finding("GPU_CLOCK_HW_THERMAL", "fail", g.label(), f"{g.label()}: HW thermal slowdown active",
                                    observed=f"0x{r:x}", action="check fans, airflow and the GPU's heatsink/thermal interface"))
        if r & CLOCK_REASON_BITS["sw_thermal"]:
            findings.append(Finding("GPU_CLOCK_SW_THERMAL", "warn", g.label(), f"{g.label()}: SW thermal slowdown active",
                                    observed=f"0x{r:x}", action="check inlet temperature and airflow"))
        if r & CLOCK_REASON_BITS["sw_power_cap"]:
            findings.append(Finding("GPU_CLOCK_SW_POWER_CAP", "info", g.label(),
                                    f"{g.label()}: at its power limit ({g.power_draw_w} of {g.power_limit_w} W), normal under full load",
                                    observed=f"0x{r:x}"))
    known = [g for g in inv.gpus if g.clock_event_reasons is not None]
    if not known:
        return CheckResult.skip(cid, "the GPU evidence has no clock event reasons")
    return CheckResult.from_findings(cid, findings, f"no hardware slowdown on {len(known)} GPUs")


# ---------------------------------------------------------------- dcgmi diag

# DCGM messages that name a condition clusterkit has its own code for, or one to fix apart from the test's
# verdict (thermal/power violations during a test): (pattern, code, severity, action).
_DCGM_MESSAGES: list[tuple[re.Pattern[str], str, str, str]] = [
    (re.compile(r"row remapp?ings? (?:is|are) pending", re.I), "GPU_ROW_REMAP_PENDING", "fail",
     "drain the node and reset the GPU (`nvidia-smi -r -i N`) or reboot to apply the remap"),
    (re.compile(r"row remapp?ing failure|remapping failed", re.I), "GPU_ROW_REMAP_FAILURE", "fail",
     "RMA the GPU: it has no spare rows left for a failing row"),
    (re.compile(r"pending page retirements?|page retirements? (?:is|are) pending", re.I), "GPU_PAGE_RETIREMENT_PENDING",
     "warn", "reset the GPU or reboot to apply the retirement"),
    (re.compile(r"thermal violations? totaling", re.I), "GPU_DCGM_DIAG_WARN", "warn",
     "check the GPU's cooling: fans, airflow, inlet temperature and the heatsink's thermal interface; rerun dcgmi diag"),
    (re.compile(r"power violations? totaling", re.I), "GPU_DCGM_DIAG_WARN", "warn",
     "check the node's power delivery (PSUs, cabling, power limits); rerun dcgmi diag"),
]


def _dcgm_message_findings(text: str, scope_component) -> list[Finding]:
    """Findings for what a DCGM message says, on the GPU it names."""
    out = []
    for pattern, code, severity, action in _DCGM_MESSAGES:
        if pattern.search(text):
            gpus = sorted({int(g) for g in re.findall(r"\bGPU\s*(\d+)\b", text)})
            comp = scope_component(f"GPU: {', '.join(map(str, gpus))}") if gpus else "GPUs"
            out.append(Finding(code, severity, comp, f"dcgmi diag: {text[:200]}", action=action, evidence=text[:500]))
    return out


# DCGM's Deployment check: "Persistence mode for GPU 0 is currently disabled. The DCGM diagnostic requires ..."
_DCGM_PERSISTENCE_OFF = re.compile(r"Persistence mode for GPU[ \t]*(\d+) is (?:currently )?disabled", re.I)

# Fabric-managed (NVSwitch) parts, by PCI device id: CUDA cannot initialize on them without fabric manager.
_NVSWITCH_GPU_IDS = {"20b0", "20b2", "2330"}


@check("gpu.dcgmi_diag", needs=(DCGMI_DIAG, NVML), needs_any=True)
def gpu_dcgmi_diag(ctx: NodeContext) -> CheckResult:
    """dcgmi diag results; a cuInit 'system not yet initialized' on NVSwitch GPUs names fabric manager."""
    cid = "gpu.dcgmi_diag"
    diag, res = parsed_or_result(ctx, cid, DCGMI_DIAG)
    if res is not None:
        return res
    findings: list[Finding] = []
    nvswitch = bool(set(diag.device_ids) & _NVSWITCH_GPU_IDS)
    inv, _ = read_inventory(ctx)
    labels = {g.index: g.label() for g in (inv.gpus if inv else []) if g.index is not None}

    def scope_component(scope: str) -> str:
        """'GPU: 1,3' -> the GPUs' labels from the node's inventory (DCGM ids are NVML indices)."""
        m = re.fullmatch(r"GPUs?:\s*([\d,\s]+)", scope)
        if not m:
            return f"GPUs ({scope})" if scope else "GPUs"
        ids = [int(x) for x in re.findall(r"\d+", m.group(1))]
        return ", ".join(labels.get(i, f"GPU {i}") for i in ids)

    for t in diag.failed:
        text = " ".join(t.warnings)
        bad_gpus = sorted(i for i, r in t.gpu_results.items() if r == "fail")
        comp = scope_component(t.scope or (f"GPU: {', '.join(map(str, bad_gpus))}" if bad_gpus else ""))
        if t.internal_error_only:
            findings.append(Finding(
                "GPU_DCGM_DIAG_INTERNAL_ERROR", "warn", "DCGM", f"dcgmi diag '{t.name}' failed on DCGM's own error, "
                f"every GPU row passed ({len(t.gpu_results)} GPUs)", evidence=text[:500],
                action="not a GPU fault: restart DCGM (nv-hostengine, or the dcgm pod), check its logs "
                       "(/var/log/nvidia-dcgm), and rerun the test; drain only if the rerun fails a GPU"))
            continue
        action = "follow DCGM's advice in the evidence; reset the GPU and rerun `dcgmi diag -r 3`"
        msg = f"dcgmi diag '{t.name}' failed ({t.scope or 'see evidence'})"
        if t.name.lower() == "persistence mode" or _DCGM_PERSISTENCE_OFF.search(text):
            # DCGM skips its hardware tests without persistence mode: the fix is the setting, then a rerun
            gpus = sorted({int(g) for g in _DCGM_PERSISTENCE_OFF.findall(text)})
            pcomp = scope_component(f"GPU: {', '.join(map(str, gpus))}") if gpus else comp
            action = PERSISTENCE_ACTION + ", then rerun `dcgmi diag`: DCGM does not run its hardware tests without it"
            findings.append(Finding("GPU_PERSISTENCE_OFF", "warn", pcomp,
                                    f"dcgmi diag: persistence mode is off ({t.name} failed)", action=action,
                                    evidence=text[:500] or None))
        if "not yet initialized" in text and nvswitch:
            msg += ": CUDA could not initialize ('system not yet initialized') on an NVSwitch system"
            action = ("likely cause: nvidia-fabricmanager is not running. Start it (`systemctl enable --now "
                      "nvidia-fabricmanager`, same version as the driver), then rerun `dcgmi diag -r 3`; not a GPU fault")
            findings.append(Finding("GPU_FABRIC_MANAGER_SUSPECTED", "fail", "nvidia-fabricmanager", msg,
                                    observed="cuInit: system not yet initialized", action=action, evidence=text[:500]))
            continue
        findings.append(Finding("GPU_DCGM_DIAG_FAIL", "fail", comp, msg, action=action, evidence=text[:500] or None))
    for t in diag.tests:
        for w in t.warnings:
            findings += _dcgm_message_findings(w, scope_component)
    for t in diag.tests:
        if t.result == "warn":
            findings.append(Finding("GPU_DCGM_DIAG_WARN", "warn", scope_component(t.scope),
                                    f"dcgmi diag '{t.name}' warned", evidence=" ".join(t.warnings)[:500] or None,
                                    action="read DCGM's warning and rerun after fixing it"))
    skipped = [t.name for t in diag.tests if t.result == "skip"]
    if skipped:
        findings.append(Finding("GPU_DCGM_DIAG_SKIPPED", "info", "dcgmi", f"{len(skipped)} test(s) skipped: {', '.join(skipped)}"))
    passed = sum(1 for t in diag.tests if t.result == "pass")
    metrics = {"gpu_dcgm_tests_passed": passed, "gpu_dcgm_tests_failed": len(diag.failed)}
    if diag.cut_at and not findings:
        return CheckResult.error(cid, f"dcgmi diag output ends at the '{diag.cut_at}' section header: the results "
                                      f"from there on are not in the text ({passed} earlier tests passed)",
                                 code="GPU_EVIDENCE_PARTIAL", component="dcgmi diag",
                                 action="re-collect the whole `dcgmi diag` output to judge the GPUs")
    return CheckResult.from_findings(cid, findings, f"dcgmi diag: {passed} tests passed", metrics)
