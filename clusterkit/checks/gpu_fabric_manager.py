"""gpu.fabric_manager_log: what NVIDIA Fabric Manager itself logged (NVSwitch systems).

A pasted fabricmanager.log is judged on its own (no GPU evidence needed): the
service state, NVSwitch fatal errors (drain) and non-fatal ones (watch), and why
it failed: driver/FM version mismatch, no NVSwitch visible, NVLink training,
GPUs it could not find.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clusterkit.checks._gpu_source import parsed_or_result
from clusterkit.checks.registry import check
from clusterkit.parsers.fabricmanager import FABRICMANAGER
from clusterkit.parsers.fabricmanager_log import FABRICMANAGER_LOG, FabricManagerLog, SwitchError
from clusterkit.parsers.nvml_json import NVML
from clusterkit.results import CheckResult, Finding

if TYPE_CHECKING:
    from clusterkit.analysis import NodeContext

FM = "nvidia-fabricmanager"
RESTART = ("read why in the journal (`journalctl -u nvidia-fabricmanager`) and /var/log/fabricmanager.log, fix it, "
           "then `systemctl restart nvidia-fabricmanager`; CUDA fails with 'system not yet initialized' until it runs")


def _switch_finding(e: SwitchError) -> Finding:
    ports = ", ".join(map(str, e.ports))
    comp = f"NVSwitch {e.switch} (physical id {e.physical_id}) port{'s' if len(e.ports) > 1 else ''} {ports}"
    times = f" x{e.count}" if e.count > 1 else ""
    if e.fatal:
        return Finding("NVSWITCH_SXID_FATAL", "fail", comp, f"{comp}: fabric manager reports NVSwitch fatal error {e.code}{times}",
                       observed=e.code, evidence=f"first {e.first}: {e.sample}" if e.first else e.sample,
                       action="drain the node: reset the GPUs and NVSwitches (reboot; fabric manager restarts and "
                              "reconfigures them); RMA the baseboard if the same port fails again")
    return Finding("NVSWITCH_SXID_NONFATAL", "warn", comp,
                   f"{comp}: fabric manager reports NVSwitch non-fatal error {e.code}{times}", observed=e.code,
                   evidence=f"first {e.first}: {e.sample}" if e.first else e.sample,
                   action="watch the port(s): non-fatal errors that keep coming on one NVLink point at that link "
                          "(NCCL hangs, slow all-reduce); reset at the next maintenance if they repeat")


def fabric_manager_findings(log: FabricManagerLog, required: bool | None) -> list[Finding]:
    """Findings of one fabric manager text; `required` False (a profile without NVSwitch) softens a failed service."""
    out: list[Finding] = []
    if log.mismatch:
        fm, drv = log.mismatch
        out.append(Finding("GPU_FABRIC_MANAGER_VERSION_MISMATCH", "fail", FM,
                           f"fabric manager {fm} does not match driver {drv}: it refuses to start",
                           observed=fm, limit=drv, evidence=log.state_line,
                           action="install the nvidia-fabricmanager package of exactly the driver's version "
                                  "(or the driver matching it), then restart the service"))
    if log.nothing_to_do:
        out.append(Finding("FM_NVSWITCH_NOT_FOUND", "fail" if required is not False else "info", FM,
                           "fabric manager found no NVSwitch to manage (NV_WARN_NOTHING_TO_DO) and exited",
                           evidence=log.nothing_to_do,
                           action="on an HGX/DGX baseboard the driver does not see its NVSwitches: check `lspci -d 10de:` "
                                  "for the NVSwitch bridges, the nvidia-nvswitch devices and the driver (Blackwell "
                                  "also needs NVLSM); on a system without NVSwitch (PCIe GPUs, NVLink bridges) disable "
                                  "nvidia-fabricmanager instead"))
    if log.state in ("failed", "inactive", "deactivating"):
        sev = "fail" if required is not False else "warn"
        out.append(Finding("GPU_FABRIC_MANAGER_NOT_RUNNING", sev, FM, f"nvidia-fabricmanager is {log.state}",
                           observed=log.state, limit="active", evidence=log.state_line, action=RESTART))
    for e in log.switch_errors:
        out.append(_switch_finding(e))
    if log.training:
        out.append(Finding("FM_NVLINK_TRAINING_FAILED", "fail", "NVLink", f"fabric manager: NVLink training failed "
                           f"({len(log.training)} line{'s' if len(log.training) > 1 else ''})", observed=len(log.training),
                           evidence=log.training[0], action="reset the GPUs and NVSwitches (reboot the node); if the same "
                           "link fails again, reseat/RMA the GPU or baseboard it names"))
    if log.gpus_missing:
        out.append(Finding("FM_GPU_NOT_FOUND", "fail", "GPUs", "fabric manager could not find every GPU of the topology",
                           observed=len(log.gpus_missing), evidence=log.gpus_missing[0],
                           action="a GPU is missing from the bus or the driver: check `nvidia-smi -L` / `lspci -d 10de:` "
                                  "and gpu.xid (Xid 79); reseat or RMA it, then restart fabric manager"))
    return out


@check("gpu.fabric_manager_log", needs=(FABRICMANAGER_LOG, NVML), needs_any=True,
       params={"gpu.requires_fabric_manager": bool})
def fabric_manager_log(ctx: NodeContext) -> CheckResult:
    """Fabric manager's own log/journal/status: service state, NVSwitch errors, why it failed."""
    cid = "gpu.fabric_manager_log"
    log, res = parsed_or_result(ctx, cid, FABRICMANAGER_LOG)
    if res is not None:
        return res
    findings = fabric_manager_findings(log, ctx.profile.get("gpu.requires_fabric_manager"))
    if ctx.exists(FABRICMANAGER):   # gpu.versions judges the service state and version from its own probe
        findings = [f for f in findings if f.code not in ("GPU_FABRIC_MANAGER_NOT_RUNNING",
                                                          "GPU_FABRIC_MANAGER_VERSION_MISMATCH")]
    state = log.state or "state not shown"
    version = f" {log.version}" if log.version else ""
    return CheckResult.from_findings(cid, findings, f"fabric manager{version} {state}, no NVSwitch error in its log",
                                     {"fabric_manager_log_lines": log.lines})
