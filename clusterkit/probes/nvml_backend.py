"""NVML readers: a small backend protocol, the real one (pynvml) and a fake one for tests.

This module is ALSO the first half of the on-node script (see
clusterkit/probes/gpu.py): it must stay stdlib-only at import time (pynvml is
imported inside PynvmlBackend) and define everything the node script uses.
Records use the field names of clusterkit.parsers.gpu_records.GpuRecord, so
gpu/nvml.json parses without a mapping table.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable, Protocol

SCHEMA = 1
# NVML field ids (nvml.h): instantaneous vs ~1 s averaged board power (REFERENCE.md).
FI_DEV_POWER_AVERAGE = 185
FI_DEV_POWER_INSTANT = 186


# Cumulative clock-event time counters (NVML field ids 269-271 in nvidia-ml-py 13.x), by clusterkit reason name.
EVENT_TIME_FIELDS = {
    "hw_power_brake": "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN",
    "hw_thermal": "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN",
    "sw_thermal": "NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN",
}


class NvmlUnavailable(Exception):
    """No usable NVML: `kind` is library_not_found | driver_not_loaded | no_permission | other."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class GpuLost(Exception):
    """The GPU stopped answering (NVML_ERROR_GPU_IS_LOST): it fell off the bus."""


class NvmlBackend(Protocol):
    name: str

    def init(self) -> None: ...
    def shutdown(self) -> None: ...
    def driver_version(self) -> str | None: ...
    def cuda_version(self) -> str | None: ...
    def device_count(self) -> int: ...
    def snapshot(self, index: int) -> dict[str, Any]: ...
    def power_source(self, index: int) -> str: ...      # "instant" | "average"
    def sample(self, index: int) -> dict[str, Any]: ...  # power_w, sm_clock_mhz, clock_event_reasons, temp_c
    def pcie(self, index: int) -> tuple[int, int, int, int] | None: ...
    def event_time_ns(self, index: int) -> dict[str, int] | None: ...  # cumulative clock-event time per reason


def read_snapshot(backend: NvmlBackend) -> dict[str, Any]:
    """The gpu/nvml.json document. Never raises: errors are data."""
    doc: dict[str, Any] = {"schema": SCHEMA, "backend": backend.name, "error": None, "gpus": []}
    try:
        backend.init()
    except NvmlUnavailable as e:
        doc["error"] = {"kind": e.kind, "message": str(e)}
        return doc
    try:
        doc["driver_version"] = backend.driver_version()
        doc["cuda_version"] = backend.cuda_version()
        n = backend.device_count()
        doc["device_count"] = n
        for i in range(n):
            try:
                rec = backend.snapshot(i)
            except GpuLost as e:
                rec = {"index": i, "error": f"GPU is lost ({e})"}
            except Exception as e:  # one unreadable GPU must not hide the others
                rec = {"index": i, "error": f"{type(e).__name__}: {e}"}
            doc["gpus"].append(rec)
    finally:
        backend.shutdown()
    return doc


# ---------------------------------------------------------------- pynvml

class PynvmlBackend:
    """The real reader. Optional queries that a GPU/driver does not support become None."""

    name = "pynvml"

    def __init__(self) -> None:
        self.nv: Any = None
        self._handles: dict[int, Any] = {}
        self._instant: dict[int, bool] = {}

    def init(self) -> None:
        try:
            import pynvml
        except ImportError as e:
            raise NvmlUnavailable("library_not_found", f"pynvml (nvidia-ml-py) not installed: {e}") from None
        self.nv = pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as e:
            kind = {pynvml.NVML_ERROR_LIBRARY_NOT_FOUND: "library_not_found",
                    pynvml.NVML_ERROR_DRIVER_NOT_LOADED: "driver_not_loaded",
                    pynvml.NVML_ERROR_NO_PERMISSION: "no_permission",
                    # user-space NVML newer/older than the loaded kernel module (18 in nvml.h)
                    getattr(pynvml, "NVML_ERROR_LIB_RM_VERSION_MISMATCH", 18): "driver_mismatch"}.get(e.value, "other")
            raise NvmlUnavailable(kind, f"nvmlInit: {e}") from None

    def shutdown(self) -> None:
        if self.nv is not None:
            try:
                self.nv.nvmlShutdown()
            except self.nv.NVMLError:
                pass

    def _h(self, i: int) -> Any:
        if i not in self._handles:
            self._handles[i] = self.nv.nvmlDeviceGetHandleByIndex(i)
        return self._handles[i]

    def _opt(self, fn: Callable[..., Any], *args: Any) -> Any:
        nv = self.nv
        try:
            return fn(*args)
        except nv.NVMLError as e:
            if e.value == nv.NVML_ERROR_GPU_IS_LOST:
                raise GpuLost(str(e)) from None
            return None

    @staticmethod
    def _s(v: Any) -> Any:
        return v.decode() if isinstance(v, bytes) else v

    def driver_version(self) -> str | None:
        return self._s(self._opt(self.nv.nvmlSystemGetDriverVersion))

    def cuda_version(self) -> str | None:
        v = self._opt(self.nv.nvmlSystemGetCudaDriverVersion_v2)
        return f"{v // 1000}.{v % 1000 // 10}" if isinstance(v, int) else None

    def device_count(self) -> int:
        return int(self.nv.nvmlDeviceGetCount())

    def _reasons(self, h: Any) -> int | None:
        fn = getattr(self.nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
            self.nv.nvmlDeviceGetCurrentClocksThrottleReasons
        v = self._opt(fn, h)
        return int(v) if v is not None else None

    def snapshot(self, i: int) -> dict[str, Any]:
        nv, h, o = self.nv, self._h(i), self._opt
        pci = o(nv.nvmlDeviceGetPciInfo, h)
        mw = lambda v: round(v / 1000.0, 2) if isinstance(v, (int, float)) else None  # noqa: E731
        limits = o(nv.nvmlDeviceGetPowerManagementLimitConstraints, h)
        util = o(nv.nvmlDeviceGetUtilizationRates, h)

        def ecc(kind: int, counter: int) -> int | None:
            return o(nv.nvmlDeviceGetTotalEccErrors, h, kind, counter)

        sbe = o(nv.nvmlDeviceGetRetiredPages, h, nv.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS)
        dbe = o(nv.nvmlDeviceGetRetiredPages, h, nv.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)
        pending = o(nv.nvmlDeviceGetRetiredPagesPendingStatus, h)
        remap = o(nv.nvmlDeviceGetRemappedRows, h)
        rec: dict[str, Any] = {
            "index": i,
            "name": self._s(o(nv.nvmlDeviceGetName, h)),
            "uuid": self._s(o(nv.nvmlDeviceGetUUID, h)),
            "serial": self._s(o(nv.nvmlDeviceGetSerial, h)),
            "pci_bus_id": self._s(pci.busId) if pci is not None else None,
            "pci_device_id": f"0x{pci.pciDeviceId:08X}" if pci is not None else None,
            "vbios_version": self._s(o(nv.nvmlDeviceGetVbiosVersion, h)),
            "persistence_mode": (lambda v: None if v is None else bool(v))(o(nv.nvmlDeviceGetPersistenceMode, h)),
            "power_draw_w": mw(o(nv.nvmlDeviceGetPowerUsage, h)),
            "power_limit_w": mw(o(nv.nvmlDeviceGetEnforcedPowerLimit, h)),
            "power_default_limit_w": mw(o(nv.nvmlDeviceGetPowerManagementDefaultLimit, h)),
            "power_max_limit_w": mw(limits[1]) if limits else None,
            "sm_clock_mhz": o(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM),
            "mem_clock_mhz": o(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_MEM),
            "max_sm_clock_mhz": o(nv.nvmlDeviceGetMaxClockInfo, h, nv.NVML_CLOCK_SM),
            "temperature_c": o(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU),
            "utilization_pct": util.gpu if util is not None else None,
            "clock_event_reasons": self._reasons(h),
            "ecc_volatile_corrected": ecc(nv.NVML_MEMORY_ERROR_TYPE_CORRECTED, nv.NVML_VOLATILE_ECC),
            "ecc_volatile_uncorrected": ecc(nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_VOLATILE_ECC),
            "ecc_aggregate_corrected": ecc(nv.NVML_MEMORY_ERROR_TYPE_CORRECTED, nv.NVML_AGGREGATE_ECC),
            "ecc_aggregate_uncorrected": ecc(nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_AGGREGATE_ECC),
            "retired_pages_sbe": len(sbe) if sbe is not None else None,
            "retired_pages_dbe": len(dbe) if dbe is not None else None,
            "retired_pages_pending": bool(pending) if pending is not None else None,
            "remap_correctable": remap[0] if remap else None,
            "remap_uncorrectable": remap[1] if remap else None,
            "remap_pending": bool(remap[2]) if remap else None,
            "remap_failure": bool(remap[3]) if remap else None,
        }
        link = self.pcie(i)
        if link:
            rec.update(zip(("pcie_gen", "pcie_gen_max", "pcie_width", "pcie_width_max"), link))
        rec["nvlinks"] = self._nvlinks(h)
        rec.update(self._fabric(h))
        rec["inforom_corrupt"] = self._inforom_corrupt(h)
        return rec

    def _inforom_corrupt(self, h: Any) -> bool | None:
        """nvmlDeviceValidateInforom: True when NVML calls the infoROM corrupted, None when it cannot tell."""
        nv = self.nv
        fn = getattr(nv, "nvmlDeviceValidateInforom", None)
        if fn is None:
            return None
        try:
            fn(h)
            return False
        except nv.NVMLError as e:
            if e.value == nv.NVML_ERROR_GPU_IS_LOST:
                raise GpuLost(str(e)) from None
            return True if e.value == getattr(nv, "NVML_ERROR_CORRUPTED_INFOROM", 14) else None

    def _nvlinks(self, h: Any) -> list[dict[str, Any]]:
        nv, out = self.nv, []
        for link in range(nv.NVML_NVLINK_MAX_LINKS):
            try:
                state = nv.nvmlDeviceGetNvLinkState(h, link)
            except nv.NVMLError as e:
                if e.value == nv.NVML_ERROR_GPU_IS_LOST:
                    raise GpuLost(str(e)) from None
                continue   # link does not exist on this GPU, or NVLink unsupported
            errs = {}
            for key, counter in (("replay_errors", nv.NVML_NVLINK_ERROR_DL_REPLAY),
                                 ("recovery_errors", nv.NVML_NVLINK_ERROR_DL_RECOVERY),
                                 ("crc_flit_errors", nv.NVML_NVLINK_ERROR_DL_CRC_FLIT),
                                 ("crc_data_errors", nv.NVML_NVLINK_ERROR_DL_CRC_DATA)):
                errs[key] = self._opt(nv.nvmlDeviceGetNvLinkErrorCounter, h, link, counter)
            out.append({"link": link, "active": bool(state), **errs})
        return out

    def _fabric(self, h: Any) -> dict[str, Any]:
        import ctypes

        nv = self.nv
        info = nv.c_nvmlGpuFabricInfo_t()
        try:
            nv.nvmlDeviceGetGpuFabricInfo(h, ctypes.byref(info))
        except (nv.NVMLError, AttributeError):
            return {}
        names = {0: "not_supported", 1: "not_started", 2: "in_progress", 3: "completed"}
        return {"fabric_state": names.get(info.state, str(info.state)),
                "fabric_status": "Success" if info.status == 0 else f"NVML error {info.status}"}

    def power_source(self, i: int) -> str:
        if i not in self._instant:
            self._instant[i] = self._field_mw(i, FI_DEV_POWER_INSTANT) is not None
        return "instant" if self._instant[i] else "average"

    def _field_mw(self, i: int, field_id: int) -> float | None:
        nv = self.nv
        try:
            v = nv.nvmlDeviceGetFieldValues(self._h(i), [field_id])[0]
        except nv.NVMLError as e:
            if e.value == nv.NVML_ERROR_GPU_IS_LOST:
                raise GpuLost(str(e)) from None
            return None
        if v.nvmlReturn != 0:
            return None
        return float(v.value.uiVal)

    def sample(self, i: int) -> dict[str, Any]:
        nv, h = self.nv, self._h(i)
        mw = self._field_mw(i, FI_DEV_POWER_INSTANT) if self.power_source(i) == "instant" else None
        if mw is None:
            mw = self._opt(nv.nvmlDeviceGetPowerUsage, h)
        return {"power_w": round(mw / 1000.0, 2) if mw is not None else None,
                "sm_clock_mhz": self._opt(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM),
                "clock_event_reasons": self._reasons(h),
                "temp_c": self._opt(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU)}

    def event_time_ns(self, i: int) -> dict[str, int] | None:
        """NVML's cumulative clock-event counters (nvidia-ml-py 12.550+/driver 550+); None where unsupported.
        Their deltas over the step catch brakes shorter than the sampling interval."""
        nv = self.nv
        names = {k: getattr(nv, f, None) for k, f in EVENT_TIME_FIELDS.items()}
        ids = [(k, v) for k, v in names.items() if v is not None]
        if not ids:
            return None
        try:
            vals = nv.nvmlDeviceGetFieldValues(self._h(i), [v for _, v in ids])
        except nv.NVMLError as e:
            if e.value == nv.NVML_ERROR_GPU_IS_LOST:
                raise GpuLost(str(e)) from None
            return None
        out = {k: int(v.value.ullVal) for (k, _), v in zip(ids, vals) if v.nvmlReturn == 0}
        return out or None

    def pcie(self, i: int) -> tuple[int, int, int, int] | None:
        nv, h = self.nv, self._h(i)
        vals = [self._opt(f, h) for f in (nv.nvmlDeviceGetCurrPcieLinkGeneration, nv.nvmlDeviceGetMaxPcieLinkGeneration,
                                          nv.nvmlDeviceGetCurrPcieLinkWidth, nv.nvmlDeviceGetMaxPcieLinkWidth)]
        return tuple(vals) if all(isinstance(v, int) for v in vals) else None  # type: ignore[return-value]


# ---------------------------------------------------------------- fake

class FakeBackend:
    """N fake GPUs whose power follows a load schedule, with injectable faults.

    `load_at(t) -> bool` says whether the GPUs are under load at monotonic time t
    (the power-step script sets it from its schedule). Faults:
    `brake_in_phase` (every GPU brakes for `brake_s` after each load edge, PSU-like),
    `brake_gpu` (only that GPU does), `lost_gpu`/`lost_after_s` (a GPU falls off the bus),
    `missing` ("library_not_found" etc.: init fails)."""

    name = "fake"

    def __init__(self, count: int = 8, *, model: str = "NVIDIA H100 80GB HBM3", device_id: str = "0x233010DE",
                 limit_w: float = 700.0, idle_w: float = 72.0, seed: int = 0, instant: bool = True,
                 brake_in_phase: bool = False, brake_gpu: int | None = None, brake_s: float = 0.4,
                 lost_gpu: int | None = None, lost_after_s: float = 5.0, missing: str | None = None,
                 read_cost_s: float = 0.0, brake_hidden: bool = False):
        self.count, self.model, self.device_id = count, model, device_id
        self.limit_w, self.idle_w, self.instant = limit_w, idle_w, instant
        self.rng = random.Random(seed)
        self.brake_in_phase, self.brake_gpu, self.brake_s = brake_in_phase, brake_gpu, brake_s
        self.lost_gpu, self.lost_after_s, self.missing = lost_gpu, lost_after_s, missing
        self.read_cost_s = read_cost_s            # emulate NVML call latency in benchmarks
        # brake_hidden: every GPU brakes ~20 ms at each load edge, too short for the samples to show;
        # only the cumulative event-time counters see it.
        self.brake_hidden = brake_hidden
        self.event_ns: dict[int, int] = {}
        self._last: dict[int, tuple[float, bool, bool]] = {}   # gpu -> (time, loaded, braking) of its last sample
        self.load_at: Callable[[float], bool] = lambda t: False
        self.t0 = time.monotonic()
        self._edge: float | None = None
        self._was_loaded = False
        self.calls = 0

    def init(self) -> None:
        if self.missing:
            raise NvmlUnavailable(self.missing, "NVML Shared Library Not Found" if self.missing == "library_not_found"
                                  else self.missing)
        self.t0 = time.monotonic()

    def shutdown(self) -> None:
        pass

    def driver_version(self) -> str:
        return "550.90.07"

    def cuda_version(self) -> str:
        return "12.4"

    def device_count(self) -> int:
        return self.count

    def _check(self, i: int) -> None:
        self.calls += 1
        if self.read_cost_s:
            end = time.perf_counter() + self.read_cost_s
            while time.perf_counter() < end:
                pass
        if i == self.lost_gpu and time.monotonic() - self.t0 >= self.lost_after_s:
            raise GpuLost("GPU is lost")

    def snapshot(self, i: int) -> dict[str, Any]:
        self._check(i)
        bus = 0x18 + 0x11 * i
        return {
            "index": i, "name": self.model, "uuid": f"GPU-fake-{i:04d}", "serial": f"16529220{i:05d}",
            "pci_bus_id": f"00000000:{bus:02X}:00.0", "pci_device_id": self.device_id, "vbios_version": "96.00.89.00.01",
            "persistence_mode": True, "power_draw_w": self.idle_w, "power_limit_w": self.limit_w,
            "power_default_limit_w": self.limit_w, "power_max_limit_w": self.limit_w,
            "sm_clock_mhz": 345, "mem_clock_mhz": 2619, "max_sm_clock_mhz": 1980, "temperature_c": 33,
            "utilization_pct": 0, "clock_event_reasons": 0x1,
            "ecc_volatile_corrected": 0, "ecc_volatile_uncorrected": 0, "ecc_aggregate_corrected": 0,
            "ecc_aggregate_uncorrected": 0, "retired_pages_sbe": 0, "retired_pages_dbe": 0, "retired_pages_pending": False,
            "remap_correctable": 0, "remap_uncorrectable": 0, "remap_pending": False, "remap_failure": False,
            "pcie_gen": 5, "pcie_gen_max": 5, "pcie_width": 16, "pcie_width_max": 16,
            "nvlinks": [{"link": k, "active": True, "replay_errors": 0, "recovery_errors": 0,
                         "crc_flit_errors": 0, "crc_data_errors": 0} for k in range(18)],
            "fabric_state": "completed", "fabric_status": "Success", "inforom_corrupt": False,
        }

    def power_source(self, i: int) -> str:
        return "instant" if self.instant else "average"

    def sample(self, i: int) -> dict[str, Any]:
        self._check(i)
        now = time.monotonic()
        loaded = self.load_at(now)
        if loaded and not self._was_loaded:
            self._edge = now
        self._was_loaded = loaded
        braking = loaded and self._edge is not None and now - self._edge < self.brake_s and (
            self.brake_in_phase or i == self.brake_gpu)
        if not loaded:
            power, clock, reasons = self.idle_w, 345.0, 0x1
        elif braking:
            power, clock, reasons = 0.45 * self.limit_w, 900.0, 0x80 | 0x8
        else:
            power, clock, reasons = 0.97 * self.limit_w, 1980.0, 0x4
        last_t, last_loaded, last_braking = self._last.get(i, (now, False, False))
        add = int((now - last_t) * 1e9) if last_braking else 0
        if self.brake_hidden and loaded and not last_loaded:
            add += 20_000_000
        self.event_ns[i] = self.event_ns.get(i, 0) + add
        self._last[i] = (now, loaded, braking)
        jitter = 1.0 + self.rng.uniform(-0.02, 0.02)
        return {"power_w": round(power * jitter, 2), "sm_clock_mhz": clock, "clock_event_reasons": reasons,
                "temp_c": 60 if loaded else 34}

    def pcie(self, i: int) -> tuple[int, int, int, int]:
        self._check(i)
        return (5, 5, 16, 16)

    def event_time_ns(self, i: int) -> dict[str, int]:
        self._check(i)
        return {"hw_power_brake": self.event_ns.get(i, 0), "hw_thermal": 0, "sw_thermal": 0}

