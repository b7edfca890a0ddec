"""gpu.xid: what the NVIDIA driver logged in the kernel log.

Xid events by the catalogue in parsers/xid.py (storms counted, a secondary Xid under
the cause it names), NVSwitch SXids (fatal drains, non-fatal is watched), and driver
messages that carry no Xid: a GPU that failed to initialize, a GSP that stopped
answering, a reset the driver requires, GPUDirect RDMA peer-memory errors.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from clusterkit.checks._gpu_source import gpu_profile, parsed_or_result, read_inventory
from clusterkit.checks.kernel_log_rules import RuleHit, hit_findings, kernel_log_rule, scan
from clusterkit.checks.registry import check
from clusterkit.parsers.gpu_records import norm_bus_id
from clusterkit.parsers.kernel_log import KERNEL_LOG, HungTask, hung_tasks
from clusterkit.parsers.nvml_json import NVML
from clusterkit.parsers.xid import SxidGroup, XidEvent, XidGroup, group_xids, sxid_groups, xid_events
from clusterkit.results import CheckResult, Finding

if TYPE_CHECKING:
    from clusterkit.analysis import NodeContext

# ---------------------------------------------------------------- driver messages without an Xid

_PCI = r"[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}(?:\.[0-7])?"
_GPU_ID = re.compile(r"\bGPU\s+(?:at\s+)?(?:PCI:)?(" + _PCI + r")|\bnvidia (" + _PCI + r")|\b(GPU\d+) ")
GSP_COMPONENT = "NVIDIA driver (GPU not named)"


def gpu_named(m: re.Match[str]) -> str:
    """The GPU a driver message names: 'GPU at PCI 0000:a1:00.0', 'GPU6 (NVRM numbering)', or a generic name."""
    g = _GPU_ID.search(m.string[:2048])
    if g is None:
        return GSP_COMPONENT
    bus = g.group(1) or g.group(2)
    return f"GPU at PCI {norm_bus_id(bus)}" if bus else f"{g.group(3)} (NVRM numbering)"


kernel_log_rule("GPU_INIT_FAILED",
                r"RmInitAdapter failed|rm_init_adapter failed|probe with driver nvidia failed|"
                r"NVIDIA probe routine failed|installed in this system is not supported by",
                "fail", "the GPU is not usable: reset it (or power-cycle the node); check the driver flavour (open "
                "kernel modules need a GSP GPU) and `lspci -d 10de:`; RMA if it fails again after a cold boot",
                "the NVIDIA driver could not initialize a GPU", gpu_named, family="gpu")
# The driver found no GPU to bind: on a GPU node every GPU is unusable. When it says another driver
# (nouveau, rivafb, nvidiafb) owns them, the fix is to blacklist that driver.
kernel_log_rule("GPU_NOT_FOUND", r"NVRM: No NVIDIA (?:graphics adapter|GPU)s? (?:probed|found)", "fail",
                "the NVIDIA driver loaded but bound no GPU: `lspci -k -d 10de:` shows which driver holds them (blacklist "
                "nouveau if it does) or that none is on the bus (reseat/RMA); then reload the driver or reboot",
                "the NVIDIA driver found no GPU", "NVIDIA driver (no GPU probed)", family="gpu")
kernel_log_rule("GPU_INIT_FAILED", r"NVIDIA probe routine was not called for (?P<n>\d+) device", "fail",
                "another driver (nouveau, rivafb, nvidiafb, rivatv) owns the GPUs: blacklist nouveau (`blacklist nouveau` "
                "and `options nouveau modeset=0` in /etc/modprobe.d/blacklist-nouveau.conf), rebuild the initramfs "
                "(`update-initramfs -u` / `dracut -f`) and reboot; `lspci -k -d 10de:` must then show nvidia in use",
                "the NVIDIA driver did not get the GPUs (another driver owns them)",
                lambda m: f"{m.group('n')} NVIDIA device(s)", family="gpu")
kernel_log_rule("GPU_GSP_TIMEOUT",
                r"Heartbeat timed out|_kgspLogRpcTimeout|waiting for RPC (?:response )?from (?:GPU\d+ )?GSP",
                "fail", "the GPU's GSP firmware stopped answering: drain, reset the GPU (or reboot); update the driver "
                "if it recurs", "GSP heartbeat/RPC timeout", gpu_named, family="gpu", unless=r"Xid \(")
kernel_log_rule("GPU_RESET_REQUIRED", r"NV_ERR_RESET_REQUIRED|GPU Reset Required", "fail",
                "the driver needs this GPU reset: drain, `nvidia-smi -r -i <GPU>` when idle (or reboot the node)",
                "the driver reports the GPU needs a reset", gpu_named, family="gpu", unless=r"Xid \(")
kernel_log_rule("GPU_PEERMEM_INVALID_CONTEXT", r"nvidia-peermem \S+ ERROR detected invalid context", "warn",
                "GPUDirect RDMA peer-memory callbacks on freed memory: check the RDMA job's teardown and the "
                "nvidia-peermem/MOFED versions; harmless once, a storm means a misbehaving job",
                "nvidia-peermem invalid context", "nvidia-peermem (GPUDirect RDMA)", family="gpu", min_count=2)

kernel_log_rule("GPU_NVLINK_DOWN", r"knvlinkDiscoverPostRxDetLinks_\w+: Getting peer\d*'s postRxDetLinkMask failed"
                r"|NVLink: (?:training|link training) failed|nvlinkCoreTrainLinks\w*: .*failed", "fail",
                "the driver could not bring up the GPU's NVLinks: check fabric manager / NVLink state (`nvidia-smi nvlink "
                "-s`), reset the GPUs or power-cycle the node; reseat the NVLink bridge or RMA the baseboard if it stays",
                "the NVIDIA driver failed to discover or train NVLinks", gpu_named, family="gpu")

_GSP_INDEX = re.compile(r"\bfrom (GPU\d+) GSP")


def _gsp_already_an_xid(hit: RuleHit, xids: list[XidGroup], events: list[XidEvent]) -> bool:
    """A GSP timeout that an Xid 119/120 of the same GPU (or of an unnamed one) already reports."""
    gsp = [g for g in xids if g.xid in (119, 120)]
    if not gsp:
        return False
    if hit.component == GSP_COMPONENT:
        return True
    buses = {g.bus_id for g in gsp}
    named = {m.group(1) for e in events if e.xid in (119, 120) for m in [_GSP_INDEX.search(e.detail)] if m}
    comp = hit.component
    return comp.startswith("GPU at PCI ") and comp[len("GPU at PCI "):] in buses or comp.split(" ")[0] in named


# ---------------------------------------------------------------- tasks hung inside the driver

SHOW_TASKS = 3


def _driver_frame(t: HungTask) -> str | None:
    """The innermost NVIDIA-module frame of a hung task's stack ('uvm_ioctl [nvidia_uvm]'); a guessed
    ('? ') frame alone does not put the task in the driver."""
    frames = [f for f in t.frames if f.module.startswith("nvidia")]
    return next((f"{f.function} [{f.module}]" for f in frames if f.reliable), None)


def driver_hung_finding(tasks: list[HungTask]) -> Finding | None:
    """A task in D state whose stack runs through nvidia*.ko: it cannot be killed, and the GPU or driver
    it waits on is wedged (a hung task anywhere else is host.kernel_log's HOST_HUNG_TASK)."""
    stuck = [(t, f) for t in tasks if (f := _driver_frame(t))]
    if not stuck:
        return None
    named = "; ".join(f"{t.task}" + (f" (pid {t.pid})" if t.pid else "") + f" in {f}" for t, f in stuck[:SHOW_TASKS])
    more = f" and {len(stuck) - SHOW_TASKS} more" if len(stuck) > SHOW_TASKS else ""
    first = stuck[0][0].line
    return Finding("GPU_DRIVER_HUNG", "fail", "NVIDIA driver",
                   f"{len(stuck)} task(s) blocked in D state inside the NVIDIA driver: {named}{more}",
                   observed=len(stuck), unit="tasks",
                   action="drain the node: the task cannot be killed and the GPU or driver it waits on is wedged; collect "
                          "`nvidia-bug-report.sh`, then reboot (a GPU reset rarely frees it); look for the Xid before it; "
                          "update the driver if it recurs",
                   evidence=f"{KERNEL_LOG.path}:{first.lineno}: {first.message[:160]}")


# ---------------------------------------------------------------- the check

def node_xid_events(ctx: NodeContext) -> list[XidEvent]:
    return xid_events(ctx.parsed(KERNEL_LOG))


def _xid_finding(g: XidGroup, comp: str, sev: str, causes: dict[str | None, list[int]]) -> Finding:
    info = g.info
    times = f" x{g.count}" if g.count > 1 else ""
    note = ""
    if g.secondary:
        named = ", ".join(f"{n} Xid {x}" for x, n in g.secondary.items())
        note = f" (named as the cause by {named}" + ("; its own line is not in this log)" if not g.count else ")")
    elif g.xid == 45 and causes.get(g.bus_id):
        note = f" (follows Xid {', '.join(map(str, causes[g.bus_id]))} on this GPU)"
    when = g.first_wall or (f"{g.first_seconds:.1f} s after boot" if g.first_seconds is not None else None)
    return Finding(f"GPU_XID_{g.xid}", sev, comp, f"Xid {g.xid}{times} on {comp}: {info.meaning}{note}",
                   observed=g.count or sum(g.secondary.values()), unit="events", action=info.action,
                   evidence=f"first {when}: {g.sample}" if when else g.sample)


def _sxid_finding(g: SxidGroup) -> Finding:
    links = f", link{'s' if len(g.links) > 1 else ''} {', '.join(map(str, g.links))}" if g.links else ""
    comp = f"NVSwitch {g.switch}{links}"
    times = f" x{g.count} lines" if g.count > 1 else ""
    if g.fatal:
        return Finding("NVSWITCH_SXID_FATAL", "fail", comp, f"{comp}: SXid {g.sxid}{times}, fatal NVSwitch error",
                       observed=g.sxid, action="drain the node: NVLink traffic through this switch is broken; reset the "
                       "GPUs and NVSwitches (reboot the node, fabric manager restarts); RMA the baseboard if it recurs",
                       evidence=g.sample)
    sev_note = "non-fatal NVSwitch error" if g.fatal is False else "NVSwitch error (its severity line is not in the log)"
    return Finding("NVSWITCH_SXID_NONFATAL", "warn", comp, f"{comp}: SXid {g.sxid}{times}, {sev_note}",
                   observed=g.sxid, action="watch the port(s): repeated non-fatal errors on the same NVLink point at "
                   "that link; reset the node's GPUs/NVSwitches at the next maintenance if they keep coming",
                   evidence=g.sample)


@check("gpu.xid", needs=(KERNEL_LOG, NVML), needs_any=True, params={"gpu.xid_ignore": list})
def gpu_xid(ctx: NodeContext) -> CheckResult:
    """NVIDIA driver events in the kernel log: Xids by a severity table (storms counted, not listed),
    NVSwitch SXids, and GPU init/GSP/reset messages that come without an Xid."""
    cid = "gpu.xid"
    lines, res = parsed_or_result(ctx, cid, KERNEL_LOG)
    if res is not None:
        return res
    events = xid_events(lines)
    inv, _ = read_inventory(ctx)
    by_bus = {g.pci_bus_id: g for g in (inv.gpus if inv else []) if g.pci_bus_id}
    ignore = {int(x) for x in (gpu_profile(ctx, inv).get("gpu.xid_ignore") or [])}
    groups = group_xids(events)

    def label(bus: str | None) -> str:
        gpu = by_bus.get(bus or "")
        return gpu.label() if gpu else f"GPU at PCI {bus or '?'}"

    causes: dict[str | None, list[int]] = {}
    for g in groups:
        if g.info.severity != "info" and g.xid not in ignore:
            causes.setdefault(g.bus_id, []).append(g.xid)
    findings = [_xid_finding(g, label(g.bus_id), "info" if g.xid in ignore else g.info.severity, causes)
                for g in groups]
    findings += [_sxid_finding(g) for g in sxid_groups(lines)]
    hits = [h for h in scan(lines, family="gpu")
            if not (h.rule.code == "GPU_GSP_TIMEOUT" and _gsp_already_an_xid(h, groups, events))]
    if (hung := driver_hung_finding(hung_tasks(lines))) is not None:
        findings.append(hung)
    for f in hit_findings(hits, KERNEL_LOG.path):
        if f.component.startswith("GPU at PCI "):
            f.component = label(f.component[len("GPU at PCI "):])
        findings.append(f)
    order = {"fail": 0, "error": 1, "warn": 2, "info": 3}
    findings.sort(key=lambda f: order[f.severity])
    return CheckResult.from_findings(cid, findings, f"no hardware Xid in the kernel log ({len(events)} Xid lines)",
                                     {"gpu_xid_events": len(events)})
