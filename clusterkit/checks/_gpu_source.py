"""Shared by the gpu.* and power.* checks: which GPU source to read, and the 'no GPU here' rule.

Sources in order of preference (GPU_SOURCES): clusterkit's NVML snapshot, nvidia-smi -q -x,
nvidia-smi -q, nvidia-smi --query-gpu, the default nvidia-smi screen, and a bare nvidia-smi failure.
A check reads `GpuInventory`, never a format.
"""

from __future__ import annotations

import functools
import zlib
from typing import TYPE_CHECKING, Any, Callable

from clusterkit.parsers import ParseError
from clusterkit.parsers.gpu_records import (
    FAILURE_DRIVER_MISMATCH, FAILURE_NO_DEVICES, FAILURE_NO_DRIVER, GpuInventory, GpuRecord,
)
from clusterkit.evidence.kinds import Kind
from clusterkit.parsers.nvidia_smi import NVIDIA_SMI_Q, QUERY_GPU
from clusterkit.parsers.nvidia_smi_errors import NVSMI_FAILURE
from clusterkit.parsers.nvidia_smi_screen import NVIDIA_SMI
from clusterkit.parsers.nvidia_smi_xml import NVIDIA_SMI_Q_XML
from clusterkit.parsers.nvml_json import NVML
from clusterkit.parsers.power_trace import (POWER_TRACE, POWER_TRACE_COLUMNS, PowerTrace, parse_power_trace_header)
from clusterkit.results import CheckResult, Finding

if TYPE_CHECKING:
    from clusterkit.analysis import NodeContext
    from clusterkit.profiles import Profile

GPU_SOURCES: tuple[Kind, ...] = (NVML, NVIDIA_SMI_Q_XML, NVIDIA_SMI_Q, QUERY_GPU, NVIDIA_SMI, NVSMI_FAILURE)
NO_GPU = "no NVIDIA GPU"
EXIT_NOT_FOUND = 127   # the shell's "command not found"


def _not_installed(ctx: "NodeContext", path: str) -> bool:
    return ctx.bundle.not_installed(path)


def read_inventory(ctx: "NodeContext") -> tuple[GpuInventory | None, list[str]]:
    """The best GPU inventory of the node, and why the other sources were unusable.

    Returns (None, reasons) when no source shows a GPU; an inventory that says
    "no GPU" (NVML library missing) is returned so the caller can tell absence
    from breakage."""
    reasons: list[str] = []
    fallback: GpuInventory | None = None
    for source in GPU_SOURCES:
        path = source.path
        if not ctx.bundle.exists(path):
            continue
        if _not_installed(ctx, path):
            reasons.append(f"{path}: tool not installed (exit 127)")
            continue
        text = ctx.text(path)
        if text is None or not text.strip():
            reasons.append(f"{path}: empty")
            continue
        try:
            inv = ctx.parsed(source)
        except ParseError as e:
            reasons.append(f"{path}: {e}")
            continue
        if inv.gpus:
            return inv, reasons
        reasons.append(f"{path}: {inv.error or 'no GPU listed'}")
        if fallback is None or (inv.failure and not fallback.failure):   # the tool's own failure says the most
            fallback = inv
    return fallback, reasons


GPU_NOT_FOUND_ACTION = ("check the driver (nvidia-smi, `lsmod | grep nvidia`, dmesg NVRM lines) and PCIe (`lspci -d 10de:`); "
                        "reseat or RMA if lspci does not list them")
# failure class -> (code, what it means, action)
_FAILURES: dict[str, tuple[str, str, str]] = {
    FAILURE_DRIVER_MISMATCH: (
        "NVSMI_DRIVER_MISMATCH", "NVML's user-space library does not match the loaded NVIDIA kernel module",
        "the driver packages were upgraded under a loaded module (unattended-upgrades, a package install): drain the "
        "node and reboot it, or unload and reload the modules (`rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia; "
        "modprobe nvidia`); hold the driver packages so it does not recur"),
    FAILURE_NO_DRIVER: (
        "NVSMI_NO_DRIVER", "nvidia-smi cannot communicate with the NVIDIA driver: no usable kernel module",
        "build and load the module for the running kernel (`dkms status`, `modprobe nvidia`, dmesg NVRM lines); a kernel "
        "update without a rebuilt module is the usual cause; reinstall the driver (clusterkit provision) if it is missing"),
    FAILURE_NO_DEVICES: (
        "GPU_NOT_FOUND", "nvidia-smi finds no NVIDIA GPU",
        GPU_NOT_FOUND_ACTION + "; in a container, check that the runtime passed the GPUs in (/dev/nvidia* device nodes "
        "exist on the host only after the driver loaded or nvidia-smi ran there once)"),
    "nvml_init": (
        "NVSMI_NVML_INIT_FAILED", "NVML could not initialize",
        "check the permissions of /dev/nvidia* and, in a container, its device cgroup (a host `systemctl daemon-reload` "
        "can revoke it: restart the container); reload the driver if it persists"),
}


def tool_failure_finding(inv: GpuInventory, want: int, model: object) -> Finding:
    """The finding for an nvidia-smi/NVML that read no GPU at all (inv.failure), with its own code."""
    code, meaning, action = _FAILURES.get(inv.failure or "", _FAILURES["nvml_init"])
    declared = f"declared {want} x {model}; " if want else ""
    return Finding(code, "fail", "node", f"{declared}{meaning}: no GPU can be read", observed=inv.error,
                   limit=want or None, action=action, evidence=inv.error)


def declared_count(ctx: "NodeContext") -> int:
    try:
        return int(ctx.declared.get("gpu_count") or 0)
    except (TypeError, ValueError):
        return 0


def no_gpu_skip(ctx: "NodeContext", check_id: str) -> CheckResult | None:
    """`skip: no NVIDIA GPU` for a node that declares none and has none; else None.

    A node that declares GPUs is never skipped here: gpu.inventory fails it."""
    if declared_count(ctx) > 0 or ctx.loose:  # a pasted file is judged on what it shows
        return None
    inv, _ = read_inventory(ctx)
    if inv is None or not inv.gpus:
        return CheckResult.skip(check_id, NO_GPU)
    return None


def not_collected(ctx: "NodeContext", check_id: str, kind: Kind) -> CheckResult | None:
    """The engine's own skip, for checks that also run on the NVML snapshot alone (to say "no NVIDIA GPU")."""
    return None if ctx.exists(kind) else CheckResult.skip(check_id, f"not collected: {kind.path}")


def parsed_or_result(ctx: "NodeContext", check_id: str, kind: Kind,
                     action: str | None = None) -> tuple[Any, CheckResult | None]:
    """(parsed file, None), or (None, the result to return): no GPU, not collected, or unusable."""
    skip = no_gpu_skip(ctx, check_id) or not_collected(ctx, check_id, kind)
    if skip is not None:
        return None, skip
    try:
        return ctx.parsed(kind), None
    except ParseError as e:
        return None, CheckResult.error(check_id, f"{kind.path}: {e}", action=action)


def _crc32(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def power_trace(ctx: "NodeContext", *, samples: bool = True) -> PowerTrace:
    """The node's power-step trace: from its columns form when that is there, readable and made from
    this CSV (the same samples, without parsing thousands of text rows), else from the CSV
    (`samples=False`: its header lines will do). Raises ParseError for an unusable trace."""
    if ctx.exists(POWER_TRACE_COLUMNS):
        try:
            cols = ctx.parsed(POWER_TRACE_COLUMNS)
        except ParseError:
            cols = None      # unusable columns: the CSV says the same
        if cols is not None and cols.csv_crc32 == ctx.parsed(POWER_TRACE.path, _crc32):
            return cols
    return ctx.parsed(POWER_TRACE) if samples else ctx.parsed(POWER_TRACE.path, parse_power_trace_header)


def gpu_profile(ctx: "NodeContext", inv: GpuInventory | None, names: "list[str | None] | None" = None) -> "Profile":
    """The node's profile; for a loose file analyzed without one, the profile named by the GPU's product name
    (from the inventory, or from `names` such as a power trace's GPU names)."""
    if ctx.profile.get("gpu.pci_device_ids") is None:
        from clusterkit.profiles import profile_for_gpu_name

        for name in [g.name for g in inv.gpus] if inv is not None else (names or []):
            p = profile_for_gpu_name(name) if name else None
            if p is not None:
                return p
    return ctx.profile


def gpus_or_result(ctx: "NodeContext", check_id: str) -> tuple[GpuInventory | None, CheckResult | None]:
    """(inventory with GPUs, None) or (None, the skip/error result a per-GPU check returns)."""
    skip = no_gpu_skip(ctx, check_id)
    if skip is not None:
        return None, skip
    inv, reasons = read_inventory(ctx)
    if inv is None or not inv.gpus:
        if inv is not None and (inv.no_gpu or inv.error):
            return None, CheckResult.skip(check_id, f"no GPU readable ({inv.error or 'none listed'}); see gpu.inventory")
        if reasons:
            return None, CheckResult.error(check_id, "no usable GPU evidence: " + "; ".join(reasons),
                                           action="re-collect gpu/nvml.json or nvidia-smi -q output")
        return None, CheckResult.skip(check_id, "no GPU evidence collected")
    return inv, None


def component(g: GpuRecord) -> str:
    return g.label()


def per_gpu_check(check_id: str, **check_kwargs: Any) -> Callable:
    """Register a check that judges each GPU of the node: `func(ctx, inv)` is called only
    when there are GPUs to judge; otherwise the node gets gpus_or_result's skip or error."""
    from clusterkit.checks.registry import check

    def deco(func: Callable[["NodeContext", GpuInventory], CheckResult]) -> Callable:
        @functools.wraps(func)
        def run(ctx: "NodeContext") -> CheckResult:
            inv, res = gpus_or_result(ctx, check_id)
            return res if res is not None or inv is None else func(ctx, inv)

        return check(check_id, **check_kwargs)(run)

    return deco
