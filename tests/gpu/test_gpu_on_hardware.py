"""On a real NVIDIA GPU machine: the real NVML backend, and a short (<= 60 s) power step.

Skipped without a GPU (tests/conftest.py). Not run in this project's CI machine,
which has no GPU: run `python -m pytest -m gpu tests/gpu` on a GPU node."""

import json
import shutil
import statistics
import subprocess
import sys

import pytest

from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.evidence.bundle import Bundle
from clusterkit.parsers.nvidia_smi import parse_nvidia_smi_q
from clusterkit.parsers.nvml_json import parse_nvml_json
from clusterkit.parsers.power_trace import parse_power_trace
from clusterkit.probes.gpu import node_script
from clusterkit.probes.nvml_backend import PynvmlBackend, read_snapshot
from clusterkit.suites import Suite

pytestmark = pytest.mark.gpu


def test_real_nvml_snapshot_reads_every_gpu():
    doc = read_snapshot(PynvmlBackend())
    assert doc["error"] is None, doc["error"]
    inv = parse_nvml_json(json.dumps(doc))
    assert inv.count == doc["device_count"] >= 1 and inv.driver_version
    for g in inv.gpus:
        assert g.error is None and g.name and g.uuid and g.pci_bus_id and g.pci_device_id.startswith("10de:")
        assert g.power_limit_w and g.power_limit_w > 50 and g.power_draw_w is not None
        assert g.clock_event_reasons is not None and g.pcie_width_max
    if shutil.which("nvidia-smi"):
        q = parse_nvidia_smi_q(subprocess.run(["nvidia-smi", "-q"], capture_output=True, text=True, timeout=60).stdout)
        assert {g.pci_bus_id for g in q.gpus} == {g.pci_bus_id for g in inv.gpus}
        assert {g.uuid for g in q.gpus} == {g.uuid for g in inv.gpus}


def test_power_step_on_real_gpus_under_60s():
    try:
        import torch

        have_torch = torch.cuda.is_available()
    except ImportError:
        have_torch = False
    if not have_torch and not (shutil.which("gpu_burn") or shutil.which("gpu-burn")):
        pytest.skip("no load generator on this GPU machine (PyTorch with CUDA, or gpu_burn)")
    r = subprocess.run([sys.executable, "-", "power-step", "--period", "4", "--duration", "24", "--hz", "20"],
                       input=node_script(), capture_output=True, timeout=90)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    files = json.loads(r.stdout)
    tr = parse_power_trace(files["gpu/power-trace.csv"])
    assert "error" not in tr.meta, tr.meta
    assert tr.meta["load"] == ("torch-gemm" if have_torch else "gpu-burn") and tr.power_source in ("instant", "average")
    assert not any(k == "load_error" for k in tr.meta), tr.meta
    for i, samples in tr.by_gpu().items():
        idle = [s.power_w for s in samples if s.phase == "idle" and s.power_w]
        load = [s.power_w for s in samples if s.phase == "load" and s.power_w]
        assert idle and load, f"GPU {i} has no samples in one phase"
        assert statistics.median(load) > 1.5 * statistics.median(idle), f"GPU {i}: the GEMM load did not raise power"
    snap = json.dumps(read_snapshot(PynvmlBackend()))
    b = Bundle.virtual("local", {**files, "gpu/nvml.json": snap}, {"host": "local"})
    c = analyze_bundles([b], Suite("t", ["power.step"]), profiles=ProfileResolver()).nodes[0].checks[0]
    assert c.status != "error", c.summary
    assert c.metrics["power_step_sample_hz"] >= 10
