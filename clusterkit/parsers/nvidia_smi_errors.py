"""What nvidia-smi prints instead of (or beside) its report: whole-tool failures, unreadable GPUs, infoROM warnings.

Every nvidia-smi parser (`-q`, `-q -x`, the default screen, `--query-gpu`) runs `apply_messages` over
its text, so a GPU that "cannot be determined" or an infoROM warning is never lost whatever the
command was. A paste that holds only such lines (`nvidia-smi` printing "Failed to initialize NVML:
Driver/library version mismatch") is its own kind, NVSMI_FAILURE, read into the same GpuInventory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import normalize
from clusterkit.parsers import ParseError
from clusterkit.parsers.gpu_records import (
    FAILURE_DRIVER_MISMATCH, FAILURE_NO_DEVICES, FAILURE_NO_DRIVER, GpuInventory, GpuRecord, norm_bus_id,
)

FAILURE_NVML_INIT = "nvml_init"      # "Failed to initialize NVML: <anything else>" (permissions, unknown error)

# (pattern, failure class): first match wins, so the specific NVML init errors precede the generic one.
_FAILURES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Failed to initialize NVML: Driver/library version mismatch", re.I | re.M), FAILURE_DRIVER_MISMATCH),
    (re.compile(r"^NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver", re.I | re.M),
     FAILURE_NO_DRIVER),
    (re.compile(r"^No devices were found\s*$", re.I | re.M), FAILURE_NO_DEVICES),
    (re.compile(r"^Failed to initialize NVML: .+", re.I | re.M), FAILURE_NVML_INIT),
]
_NVML_VERSION = re.compile(r"^NVML library version:\s*(\S+)", re.I | re.M)
NO_HANDLE = re.compile(r"Unable to determine the device handle for GPU\s*([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.?[0-7]?)"
                       r":?\s*([^\n]*)", re.I)
_INFOROM = re.compile(r"WARNING: infoROM is corrupted at gpu\s*([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.?[0-7]?)", re.I)


@dataclass
class NvsmiMessages:
    failure: str | None = None              # FAILURE_* class
    failure_text: str | None = None         # the line as printed
    nvml_version: str | None = None
    unreadable: list[tuple[str, str]] = field(default_factory=list)    # (bus id, nvidia-smi's reason)
    inforom_corrupt: list[str] = field(default_factory=list)           # bus ids

    def __bool__(self) -> bool:
        return bool(self.failure or self.unreadable or self.inforom_corrupt)


def scan_messages(text: str) -> NvsmiMessages:
    """The failure, unreadable-GPU and infoROM lines of normalized nvidia-smi output."""
    m = NvsmiMessages()
    for pattern, failure in _FAILURES:
        hit = pattern.search(text)
        if hit:
            m.failure, m.failure_text = failure, hit.group(0).strip()
            break
    v = _NVML_VERSION.search(text)
    m.nvml_version = v.group(1) if v else None
    for h in NO_HANDLE.finditer(text):
        bus = norm_bus_id(h.group(1))
        if bus and all(b != bus for b, _ in m.unreadable):
            m.unreadable.append((bus, h.group(2).strip() or "Unknown Error"))
    for h in _INFOROM.finditer(text):
        bus = norm_bus_id(h.group(1))
        if bus and bus not in m.inforom_corrupt:
            m.inforom_corrupt.append(bus)
    return m


def apply_messages(inv: GpuInventory, m: NvsmiMessages) -> GpuInventory:
    """Fold the messages into an inventory: failure, GPUs nvidia-smi could not read, infoROM flags."""
    if m.failure and not inv.gpus:
        inv.failure = m.failure
        inv.error = m.failure_text + (f" (NVML library {m.nvml_version})" if m.nvml_version else "")
    by_bus = {g.pci_bus_id: g for g in inv.gpus if g.pci_bus_id}
    for bus, why in m.unreadable:
        g = by_bus.get(bus)
        if g is None:   # nvidia-smi lists a GPU it cannot reach on one line, without a block or row
            g = GpuRecord(index=None, pci_bus_id=bus)
            inv.gpus.append(g)
            by_bus[bus] = g
        g.error = g.error or f"nvidia-smi: Unable to determine the device handle: {why}"
    for bus in m.inforom_corrupt:
        g = by_bus.get(bus)
        if g is None:
            g = GpuRecord(index=None, pci_bus_id=bus)
            inv.gpus.append(g)
            by_bus[bus] = g
        g.inforom_corrupt = True
    return inv


# ---------------------------------------------------------------- the bare failure as its own kind

NVSMI_FAILURE = declare("nvidia-smi-failure", "gpu/nvidia-smi-failure.txt", priority=20,
                        description="nvidia-smi failing as a whole (driver/library mismatch, no driver, no devices, "
                                    "a GPU whose handle cannot be determined, infoROM corrupted)")
_MAX_LINES = 12    # a bare failure is a few lines; longer texts are some other tool's output


@NVSMI_FAILURE.recognizer
def is_nvsmi_failure(text: str) -> bool:
    body = [l for l in text.split("\n") if l.strip()]
    return 0 < len(body) <= _MAX_LINES and bool(scan_messages(text))


@NVSMI_FAILURE.parser
def parse_nvsmi_failure(text: str) -> GpuInventory:
    """A bare nvidia-smi failure -> a GpuInventory with `failure` or unreadable GPUs; ParseError if none."""
    t = normalize(text)
    m = scan_messages(t)
    if not m:
        raise ParseError("no nvidia-smi failure message (NVML init failure, 'No devices were found', "
                         "'Unable to determine the device handle', infoROM warning)")
    return apply_messages(GpuInventory("nvidia-smi"), m)
