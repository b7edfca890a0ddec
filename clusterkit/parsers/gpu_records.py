"""The typed GPU record every GPU source is parsed into (NVML JSON, nvidia-smi -q / -q -x / the default
screen, --query-gpu, and nvidia-smi's bare failure messages).

Checks read `GpuInventory`, never a tool's format, so a bundle that only has
`nvidia-smi -q` (or a pasted CSV) is judged by the same code as one with NVML data.
Fields are None when the source does not carry them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

# NVML clock event (throttle) reason bits (nvmlClocksEventReason*), see REFERENCE.md.
CLOCK_REASON_BITS: dict[str, int] = {
    "gpu_idle": 0x1,
    "applications_clocks": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal": 0x20,
    "hw_thermal": 0x40,
    "hw_power_brake": 0x80,
    "display_clock": 0x100,
}
# Reasons that mean the node or board cannot deliver what the GPU asks for.
HW_SLOWDOWN_MASK = CLOCK_REASON_BITS["hw_slowdown"] | CLOCK_REASON_BITS["hw_thermal"] | CLOCK_REASON_BITS["hw_power_brake"]
BRAKE_MASK = CLOCK_REASON_BITS["hw_slowdown"] | CLOCK_REASON_BITS["hw_power_brake"]


def reason_names(mask: int | None) -> list[str]:
    if not mask:
        return []
    return [n for n, b in CLOCK_REASON_BITS.items() if mask & b]


_BUS = re.compile(r"(?:PCI:)?(?:([0-9a-fA-F]{4,8}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})(?:\.([0-7]))?")


def norm_bus_id(s: str | None) -> str | None:
    """'00000000:1B:00.0', 'PCI:0000:1b:00' -> '0000:1b:00.0' (lspci style)."""
    if not s:
        return None
    m = _BUS.search(s.strip())
    if not m:
        return None
    dom = (m.group(1) or "0000")[-4:]
    return f"{dom}:{m.group(2)}:{m.group(3)}.{m.group(4) or '0'}".lower()


def norm_device_id(s: str | None) -> str | None:
    """'0x233010DE' (nvidia-smi/NVML pciDeviceId) or '10de:2330' -> '10de:2330'."""
    if not s:
        return None
    t = str(s).strip().lower()
    m = re.fullmatch(r"(?:0x)?([0-9a-f]{4})([0-9a-f]{4})", t)
    if m:
        return f"{m.group(2)}:{m.group(1)}"
    m = re.fullmatch(r"([0-9a-f]{4}):([0-9a-f]{4})", t)
    return f"{m.group(1)}:{m.group(2)}" if m else None


_DESKTOP = re.compile(r"GeForce|RTX|Quadro|TITAN|\bNVS\b", re.I)


def datacenter_gpu(name: str | None) -> bool | None:
    """A data-center part (A100, H100, H800, L40S, A10G...), not a desktop or workstation board; None unknown.
    Persistence mode and ECC are expected on the first, optional on the others."""
    return None if not name else not _DESKTOP.search(name)


def gpu_label(index: int | None, bus_id: str | None, serial: str | None, uuid: str | None = None) -> str:
    """'GPU 3 (0000:1b:00.0, SN 1652...)': what a technician finds in the chassis (the UUID when nothing else is known)."""
    parts = [p for p in (bus_id, f"SN {serial}" if serial else None) if p] or ([uuid] if uuid else [])
    idx = f"GPU {index}" if index is not None else "GPU"
    return f"{idx} ({', '.join(parts)})" if parts else idx


@dataclass
class NvLink:
    link: int
    active: bool | None = None
    replay_errors: int | None = None
    recovery_errors: int | None = None
    crc_flit_errors: int | None = None
    crc_data_errors: int | None = None
    other_errors: int | None = None              # error counters of other names (nvidia-smi nvlink -e)
    speed_gb_s: float | None = None              # per-link rate nvidia-smi nvlink -s prints

    def error_total(self) -> int:
        return sum(v or 0 for v in (self.replay_errors, self.recovery_errors, self.crc_flit_errors, self.crc_data_errors,
                                    self.other_errors))


@dataclass
class GpuRecord:
    index: int | None = None
    name: str | None = None
    uuid: str | None = None
    serial: str | None = None
    pci_bus_id: str | None = None
    pci_device_id: str | None = None
    vbios_version: str | None = None
    persistence_mode: bool | None = None
    ecc_enabled: bool | None = None              # ECC mode (current): off on a data-center GPU leaves HBM errors unseen
    power_draw_w: float | None = None
    power_limit_w: float | None = None          # enforced
    power_default_limit_w: float | None = None
    power_max_limit_w: float | None = None
    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    max_sm_clock_mhz: float | None = None
    temperature_c: float | None = None
    utilization_pct: float | None = None
    clock_event_reasons: int | None = None
    ecc_volatile_corrected: int | None = None
    ecc_volatile_uncorrected: int | None = None
    ecc_aggregate_corrected: int | None = None
    ecc_aggregate_uncorrected: int | None = None
    retired_pages_sbe: int | None = None
    retired_pages_dbe: int | None = None
    retired_pages_pending: bool | None = None
    remap_correctable: int | None = None
    remap_uncorrectable: int | None = None
    remap_pending: bool | None = None
    remap_failure: bool | None = None
    pcie_gen: int | None = None
    pcie_gen_max: int | None = None
    pcie_width: int | None = None
    pcie_width_max: int | None = None
    nvlinks: list[NvLink] = field(default_factory=list)
    fabric_state: str | None = None              # NVML GPU fabric info (H100+): completed, in_progress, not_started...
    fabric_status: str | None = None
    reset_required: bool | None = None
    drain_reset_recommended: bool | None = None   # NVML: drain the node, then reset this GPU
    recovery_action: str | None = None           # NVML's GPU recovery action: None, Reset, Reboot, Drain P2P, Drain and Reset
    fan_error: bool | None = None                # the fan reading is an error (nvidia-smi `ERR!` in the Fan cell)
    inforom_corrupt: bool | None = None          # nvidia-smi: "WARNING: infoROM is corrupted at gpu ..."
    unknown_error_fields: list[str] = field(default_factory=list)   # fields NVML answered "[Unknown Error]" for
    mig_enabled: bool | None = None
    error: str | None = None                     # the source could not read this GPU (e.g. "GPU is lost")

    def label(self) -> str:
        return gpu_label(self.index, self.pci_bus_id, self.serial, self.uuid)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GpuRecord":
        """Tolerant: unknown keys are ignored, wrong types dropped (None)."""
        names = {f.name: f for f in fields(cls)}
        kw: dict[str, Any] = {}
        for k, v in d.items():
            if k not in names or v is None:
                continue
            if k == "nvlinks":
                if isinstance(v, list):
                    kw[k] = [NvLink(**{a: b for a, b in x.items() if a in NvLink.__dataclass_fields__})
                             for x in v if isinstance(x, dict) and isinstance(x.get("link"), int)]
                continue
            kw[k] = _coerce(v, str(names[k].type))
        r = cls(**kw)
        r.pci_bus_id = norm_bus_id(r.pci_bus_id) or r.pci_bus_id
        r.pci_device_id = norm_device_id(r.pci_device_id) or r.pci_device_id
        return r


def _coerce(v: Any, typ: str) -> Any:
    try:
        if typ.startswith("bool"):
            return v if isinstance(v, bool) else None
        if typ.startswith("int"):
            return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
        if typ.startswith("float"):
            return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
        if typ.startswith("str"):
            return str(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return v


@dataclass
class GpuProcess:
    """A process nvidia-smi lists on a GPU (the default screen's table, `-q -x` <processes>)."""

    gpu: int | None
    pid: int | None
    type: str | None
    name: str
    memory_mib: float | None = None


# Why a tool could read no GPU at all (GpuInventory.failure), each with its own finding code.
FAILURE_DRIVER_MISMATCH = "driver_mismatch"     # "Failed to initialize NVML: Driver/library version mismatch"
FAILURE_NO_DRIVER = "no_driver"                 # "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver"
FAILURE_NO_DEVICES = "no_devices"               # "No devices were found"


@dataclass
class GpuInventory:
    """What one source says about a node's GPUs."""

    source: str                                  # nvml | nvidia-smi-q | nvidia-smi-q-xml | nvidia-smi | query-gpu
    gpus: list[GpuRecord] = field(default_factory=list)
    driver_version: str | None = None
    cuda_version: str | None = None
    attached: int | None = None                  # "Attached GPUs" (may exceed len(gpus) when trimmed)
    error: str | None = None                     # no GPU readable: library missing, driver not loaded
    no_gpu: bool = False                         # the source positively says there is no NVIDIA GPU/driver
    failure: str | None = None                   # FAILURE_*: nvidia-smi/NVML failed as a whole (error says how)
    processes: list[GpuProcess] | None = None    # None: the source does not list processes
    warnings: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Working GPUs: those listed (or attached, when the output was trimmed) minus unreadable ones."""
        return max(len(self.gpus), self.attached or 0) - sum(1 for g in self.gpus if g.error)
