"""`gpu/nvml.json`, written on the node by clusterkit's NVML reader (clusterkit/probes/nvml_backend.py).

Shape: {"schema": 1, "backend": "pynvml", "driver_version", "cuda_version",
"error": null | {"kind": "library_not_found" | "driver_not_loaded" | "driver_mismatch" | ..., "message"},
"gpus": [{GpuRecord field names...}]}.
"""

from __future__ import annotations


from clusterkit.evidence.kinds import declare, variant
from clusterkit.parsers import ParseError, json_object
from clusterkit.parsers.gpu_records import FAILURE_DRIVER_MISMATCH, GpuInventory, GpuRecord

# NVML errors that mean "there is no usable NVIDIA GPU/driver here" rather than a reader fault.
NO_GPU_ERRORS = {"library_not_found", "driver_not_loaded", "no_gpu"}


NVML = declare("nvml-json", "gpu/nvml.json", command=("python3", "-", "snapshot", "--out", "gpu/nvml.json"), priority=70,
               description="clusterkit NVML snapshot (gpu/nvml.json)")


@NVML.recognizer
def is_nvml_json(text: str) -> bool:
    s = text.lstrip()
    return s.startswith("{") and '"gpus"' in s[:4096] and '"backend"' in s


@NVML.parser
def parse_nvml_json(text: str) -> GpuInventory:
    doc = json_object(text, "gpu/nvml.json")
    if not isinstance(doc.get("gpus", []), list):
        raise ParseError("gpu/nvml.json: expected an object with a 'gpus' list")
    inv = GpuInventory("nvml", driver_version=_s(doc.get("driver_version")), cuda_version=_s(doc.get("cuda_version")))
    err = doc.get("error")
    if isinstance(err, dict):
        inv.error = str(err.get("message") or err.get("kind") or "NVML error")
        inv.no_gpu = err.get("kind") in NO_GPU_ERRORS
        if err.get("kind") == "driver_mismatch":   # a driver is there but unusable: named like nvidia-smi's failure
            inv.failure = FAILURE_DRIVER_MISMATCH
    elif err:
        inv.error = str(err)
    for i, g in enumerate(doc.get("gpus") or []):
        if not isinstance(g, dict):
            inv.warnings.append(f"gpus[{i}] is not an object; skipped")
            continue
        rec = GpuRecord.from_dict(g)
        if rec.index is None:
            rec.index = i
        inv.gpus.append(rec)
    if isinstance(doc.get("device_count"), int):
        inv.attached = doc["device_count"]
    return inv


def _s(v: object) -> str | None:
    return str(v) if v not in (None, "") else None


# The same snapshot after the load tests: NVLink/ECC counter deltas are judged over the run.
NVML_AFTER = variant(NVML, "gpu/nvml-after.json")
