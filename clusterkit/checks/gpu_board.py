"""gpu.board: board faults beside the readings: a fan cell reading ERR! (the nvidia-smi screen), a corrupted
infoROM (nvidia-smi's warning, or NVML's nvmlDeviceValidateInforom in the snapshot), a field NVML answers
"[Unknown Error]" for while the others read (--query-gpu), and NVML's reset state: "Reset Required",
"Drain and Reset Recommended" or a GPU recovery action other than None (-q, -x, --query-gpu)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from clusterkit.checks._gpu_source import GPU_SOURCES, per_gpu_check
from clusterkit.parsers.gpu_records import GpuInventory, GpuRecord
from clusterkit.results import CheckResult, Finding

if TYPE_CHECKING:
    from clusterkit.analysis import NodeContext


# nvidia-smi's words for NVML's nvmlDeviceGpuRecoveryAction_t (a note the author typed after them is ignored)
_RECOVERY = re.compile(r"^(None|Reset|Reboot|Drain P2P|Drain and Reset)\b", re.I)
RESET_ACTION = ("drain the node; `nvidia-smi -r -i <GPU>` once no process uses it (Reboot: reboot the node); RMA the "
                "GPU if it asks again")


def _reset_state(g: GpuRecord) -> str | None:
    """What NVML says must happen to the GPU before it is usable again, or None."""
    action = _RECOVERY.match(g.recovery_action or "")
    if action and action[1].lower() != "none":
        return f"GPU recovery action {action[1]}"
    if g.reset_required:
        return "Reset Required: Yes"
    if g.drain_reset_recommended:
        return "Drain and Reset Recommended: Yes"
    return None


@per_gpu_check("gpu.board", needs=GPU_SOURCES, needs_any=True)
def gpu_board(ctx: NodeContext, inv: GpuInventory) -> CheckResult:
    """Fan and infoROM: a fan nvidia-smi cannot read while the GPU answers; an infoROM nvidia-smi calls corrupted."""
    cid = "gpu.board"
    findings: list[Finding] = []
    # a field no GPU of a multi-GPU node can read is this driver's or board's limit (GeForce 'Addressing Mode'),
    # not a GPU losing its readings
    common = set.intersection(*(set(g.unknown_error_fields) for g in inv.gpus)) if len(inv.gpus) > 1 else set()
    for g in inv.gpus:
        if g.inforom_corrupt:
            findings.append(Finding(
                "GPU_INFOROM_CORRUPT", "fail", g.label(), f"{g.label()}: nvidia-smi reports its infoROM corrupted",
                observed="infoROM is corrupted", action=(
                    "its ECC, retired-page and row-remap records cannot be trusted: drain the node, reflash the "
                    "infoROM with the vendor's firmware bundle (nvflash / OEM update), RMA the GPU if the warning stays")))
        if g.fan_error and not g.error:
            findings.append(Finding(
                "GPU_FAN_ERR", "warn", g.label(),
                f"{g.label()}: the fan reads ERR! while every other reading answers ({g.temperature_c:.0f} C)"
                if g.temperature_c is not None else f"{g.label()}: the fan reads ERR! while the GPU answers",
                observed="ERR!", action=("check the fan and its connector (or the chassis fan the board reports); "
                                         "replace it if it stays ERR!; watch the GPU's temperature until then")))
        if (state := _reset_state(g)) and not g.error:
            findings.append(Finding("GPU_RESET_REQUIRED", "fail", g.label(),
                                    f"{g.label()}: NVML reports {state}: the GPU is unusable until it is reset",
                                    observed=state, action=RESET_ACTION))
        unread = [f for f in g.unknown_error_fields if f not in common]
        if unread and not g.error:
            findings.append(Finding(
                "NVSMI_FIELD_UNKNOWN_ERROR", "warn", g.label(),
                f"{g.label()}: NVML answers Unknown Error for {', '.join(unread)} while its other "
                "readings answer", observed="[Unknown Error]",
                action="reset the GPU (or reboot) at the next window; update the driver if the field stays unreadable; "
                       "watch for Xids: a GPU losing more fields is failing"))
    known = [g for g in inv.gpus if g.fan_error is not None or g.inforom_corrupt is not None or g.unknown_error_fields
             or g.reset_required is not None or g.drain_reset_recommended is not None or g.recovery_action]
    if not known:
        return CheckResult.skip(cid, "the GPU evidence reports no fan, infoROM or reset state")
    return CheckResult.from_findings(cid, findings, f"no fan, infoROM or reset fault reported on {len(inv.gpus)} GPUs")
