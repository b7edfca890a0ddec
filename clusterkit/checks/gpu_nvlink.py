"""gpu.nvlink: NVLink links down and error counters, from NVML or the tools' own output.

Sources: the NVML snapshots (state, and counters before/after the run), `nvidia-smi nvlink -s`
(rate or <inactive> per link), `nvidia-smi nvlink -e` (error counters since the driver loaded) and
`dcgmi nvlink --link-status` (U/D/X per link of every GPU and NVSwitch). With a profile the GPU
must have its `gpu.nvlink_links_per_gpu` links up; without one, a link the tool reports down is
down, except on a PCIe card that shows no active link at all (no NVLink bridge fitted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clusterkit.checks._gpu_source import gpu_profile, gpus_or_result, no_gpu_skip, read_inventory
from clusterkit.checks.registry import check
from clusterkit.parsers import ParseError
from clusterkit.parsers.gpu_records import GpuInventory, GpuRecord, NvLink, gpu_label
from clusterkit.parsers.nvlink import DCGMI_NVLINK, NVLINK_ERRORS, NVLINK_STATUS, NvlinkDevice
from clusterkit.parsers.nvml_json import NVML, NVML_AFTER
from clusterkit.results import CheckResult, Finding

if TYPE_CHECKING:
    from clusterkit.analysis import NodeContext

DOWN_ACTION = "reset the GPU; check fabric manager and the NVSwitch baseboard (or the NVLink bridge); RMA the baseboard if links stay down"
ERROR_ACTION = "reset the GPU; if errors keep rising, RMA the NVSwitch baseboard"


@dataclass
class _Gpu:
    """One GPU's links as a source shows them."""

    label: str
    name: str | None
    links: list[NvLink]
    all_inactive: bool = False
    disabled: list[int] = field(default_factory=list)


def _label(dev: NvlinkDevice, inv: GpuInventory | None) -> str:
    """The GPU's label from the node's inventory (same UUID, else same index), else the tool's index and UUID."""
    gpus = inv.gpus if inv else []
    g = next((g for g in gpus if dev.uuid and g.uuid == dev.uuid), None) or (
        next((g for g in gpus if g.index == dev.index), None) if not dev.uuid else None)
    return g.label() if g is not None else gpu_label(dev.index, None, None, dev.uuid)


def _merge(into: NvlinkDevice, dev: NvlinkDevice) -> None:
    into.all_inactive = into.all_inactive or dev.all_inactive
    into.disabled += [n for n in dev.disabled if n not in into.disabled]
    for lk in dev.links:
        t = into.link(lk.link)
        for f in ("active", "speed_gb_s", "replay_errors", "recovery_errors", "crc_flit_errors", "crc_data_errors",
                  "other_errors"):
            if getattr(lk, f) is not None:
                setattr(t, f, getattr(lk, f))


def _tool_views(ctx: NodeContext, inv: GpuInventory | None) -> tuple[list[_Gpu], list[_Gpu], list[Finding], bool]:
    """(GPUs, NVSwitches, evidence notes, elided) from the nvlink tool outputs the bundle holds."""
    gpus: dict[int | None, NvlinkDevice] = {}
    switches: list[NvlinkDevice] = []
    notes: list[Finding] = []
    elided = False
    for kind in (NVLINK_STATUS, NVLINK_ERRORS, DCGMI_NVLINK):
        if not ctx.exists(kind):
            continue
        try:
            rep = ctx.parsed(kind)
        except ParseError as e:
            notes.append(Finding("GPU_EVIDENCE_PARTIAL", "info", "evidence", f"{kind.path}: {e}"))
            continue
        elided = elided or rep.elided
        switches += rep.switches
        for dev in rep.gpus:
            if dev.index in gpus:
                _merge(gpus[dev.index], dev)
            else:
                gpus[dev.index] = NvlinkDevice(dev.index, dev.name, dev.uuid)
                _merge(gpus[dev.index], dev)
    views = [_Gpu(_label(d, inv), d.name, d.links, d.all_inactive, d.disabled) for d in gpus.values()]
    sw = [_Gpu(f"NVSwitch physicalId {d.index}", d.name, d.links, d.all_inactive, d.disabled) for d in switches]
    if elided:
        notes.append(Finding("GPU_EVIDENCE_PARTIAL", "info", "evidence",
                             "links elided ('[...]'): the number of links up is not judged, only the links shown"))
    return views, sw, notes, elided


def _nvml_views(inv: GpuInventory) -> list[_Gpu]:
    return [_Gpu(g.label(), g.name, g.nvlinks) for g in inv.gpus if g.nvlinks]


def _judge(v: _Gpu, want: int | None, elided: bool) -> Finding | None:
    down = sorted({lk.link for lk in v.links if lk.active is False} | set(v.disabled))
    active = sum(1 for lk in v.links if lk.active)
    pcie = bool(v.name and "pcie" in v.name.lower())
    if want is None and pcie and active == 0:
        return Finding("GPU_NVLINK_NONE", "info", v.label, f"{v.label}: no NVLink active (a PCIe card without an NVLink bridge)",
                       observed=0, unit="links")
    stated = any(lk.active is not None for lk in v.links)     # nvlink -e alone gives counters, not states
    missing = want is not None and stated and active < want and not (elided and not down)
    if not (down or v.all_inactive or missing):
        return None
    if v.all_inactive:
        what = "all NVLinks inactive (nvidia-smi cannot list them)"
    else:
        what = f"{active} of {want if want is not None else len(v.links) + len(v.disabled)} NVLinks active"
    detail = f" (down: {down})" if down else ""
    disabled = f", disabled: {v.disabled}" if v.disabled else ""
    return Finding("GPU_NVLINK_DOWN", "fail", v.label, f"{v.label}: {what}{detail}{disabled}",
                   observed=active, limit=want, unit="links", action=DOWN_ACTION)


def _counter_findings(v: _Gpu) -> list[Finding]:
    """Absolute counters (nvidia-smi nvlink -e, since the driver loaded): any error on a link is worth watching."""
    bad = [(lk.link, lk.error_total()) for lk in v.links if lk.error_total() > 0]
    if not bad:
        return []
    total = sum(n for _, n in bad)
    return [Finding("GPU_NVLINK_ERRORS", "warn", v.label,
                    f"{v.label}: {total} NVLink errors since the driver loaded on link(s) {', '.join(str(l) for l, _ in bad)}",
                    observed=total, limit=0, unit="errors", action=ERROR_ACTION,
                    evidence="; ".join(f"link {l}: {n}" for l, n in bad))]


def _rising(ctx: NodeContext, inv: GpuInventory, max_delta: int) -> list[Finding]:
    """NVML error counters that grew between the snapshots before and after the run."""
    if not ctx.exists(NVML_AFTER):
        return []
    try:
        after = {g.uuid or str(g.index): g for g in ctx.parsed(NVML_AFTER).gpus}
    except ParseError:
        return []
    out = []
    for g in inv.gpus:
        a: GpuRecord | None = after.get(g.uuid or str(g.index))
        if a is None or not a.nvlinks or not g.nvlinks:
            continue
        before = {lk.link: lk.error_total() for lk in g.nvlinks}
        for lk in a.nvlinks:
            delta = lk.error_total() - before.get(lk.link, 0)
            if delta > max_delta:
                out.append(Finding("GPU_NVLINK_ERRORS_RISING", "warn", f"{g.label()} NVLink {lk.link}",
                                   f"{g.label()} NVLink {lk.link}: {delta} new errors during the run",
                                   observed=delta, limit=max_delta, unit="errors", action=ERROR_ACTION))
    return out


@check("gpu.nvlink", needs=(NVML, NVLINK_STATUS, NVLINK_ERRORS, DCGMI_NVLINK), needs_any=True,
       params={"gpu.nvlink_links_per_gpu": int, "gpu.max_nvlink_error_delta": int})
def gpu_nvlink(ctx: NodeContext) -> CheckResult:
    """NVLink links down (NVML, nvidia-smi nvlink -s, dcgmi nvlink), error counters (nvlink -e) and their growth over the run."""
    cid = "gpu.nvlink"
    skip = no_gpu_skip(ctx, cid)
    if skip is not None:
        return skip
    inv, _ = read_inventory(ctx)
    nvml = inv is not None and inv.source == "nvml" and any(g.nvlinks for g in inv.gpus)
    if nvml:
        views, switches, notes, elided = _nvml_views(inv), [], [], False
    else:
        views, switches, notes, elided = _tool_views(ctx, inv)
    if not views and not switches:
        _, res = gpus_or_result(ctx, cid)
        if res is not None and not notes:
            return res
        if notes:
            return CheckResult.error(cid, "; ".join(f.message for f in notes))
        return CheckResult.skip(cid, "no NVLink state (gpu/nvml.json, nvidia-smi nvlink -s or dcgmi nvlink --link-status)")
    p = gpu_profile(ctx, inv if inv is not None and inv.gpus else None, names=[v.name for v in views])
    want = p.get("gpu.nvlink_links_per_gpu")
    if want == 0:
        return CheckResult.skip(cid, f"profile {p.name} expects no NVLink")
    findings = list(notes)
    rising = _rising(ctx, inv, p.get("gpu.max_nvlink_error_delta", 0)) if nvml else []
    for v in views + switches:   # each GPU's findings together, in GPU order
        f = _judge(v, want if v in views else None, elided)
        if f is not None:
            findings.append(f)
        findings += [r for r in rising if r.component.startswith(v.label + " NVLink")] if nvml else _counter_findings(v)
    up = sum(1 for v in views for lk in v.links if lk.active)
    stated = any(lk.active is not None for v in views for lk in v.links)
    summary = (f"all {want} NVLinks up on {len(views)} GPUs" if want and stated and not elided else
               f"{up} NVLinks up on {len(views)} GPUs, none down" if stated else
               f"no NVLink errors counted on {len(views)} GPUs")
    return CheckResult.from_findings(cid, findings, summary)
