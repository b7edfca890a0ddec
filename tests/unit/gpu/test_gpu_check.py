"""scripts/gpu-check.sh: runs to the end anywhere, and the GPU path needs no SSH, Ansible or Excel library."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import _have_nvidia_gpu

REPO = Path(__file__).resolve().parents[3]
BLOCKED = ("paramiko", "ansible", "ansible_runner", "openpyxl")


@pytest.mark.skipif(_have_nvidia_gpu(), reason="this machine has a GPU: the steps run instead of skipping")
def test_without_a_gpu_every_gpu_step_is_skipped_with_its_reason(tmp_path):
    r = subprocess.run(["bash", str(REPO / "scripts" / "gpu-check.sh"), str(tmp_path / "out"), "--budget", "120"],
                       capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["environment"]["status"] == "ok" and steps["environment"]["figures"]["nvml_gpus"] == 0
    for name in ("nvidia-smi -q", "NVML snapshot", "gpu tests", "power sampler", "power step", "NCCL all-reduce", "analyze"):
        assert steps[name]["status"] == "skipped" and steps[name]["why"], (name, steps[name])
    assert "nvidia-smi is not on PATH" in steps["nvidia-smi -q"]["why"]
    frag = (tmp_path / "out" / "RESULTS-gpu.md").read_text()
    assert "| power step | skipped:" in frag and "| NCCL all-reduce | skipped:" in frag


def test_the_gpu_path_imports_no_ssh_ansible_or_excel_library(tmp_path):
    """The NVML reader, the power step, analysis and the check runner, with those packages made unimportable."""
    from clusterkit.sim.cluster import generate

    generate(tmp_path / "run", nodes=2, seed=3)
    code = textwrap.dedent(f"""
        import importlib.abc, json, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in {BLOCKED!r}:
                    raise ImportError("blocked for this test: " + name)
        sys.meta_path.insert(0, Block())
        from clusterkit.probes.nvml_backend import FakeBackend, read_snapshot
        from clusterkit.node_scripts.gpu_node import FakeLoad, power_step
        from clusterkit.pipeline import analyze_paths
        from clusterkit import gpu_check
        b = FakeBackend(2)
        assert read_snapshot(b)["device_count"] == 2
        files = power_step(b, lambda n: FakeLoad(b), period_s=1.0, duration_s=2.0, hz=10, lead_in_s=0.1)
        assert "gpu/power-trace.csv" in files
        run = analyze_paths([__import__("pathlib").Path({str(tmp_path / 'run')!r})], suite="full")
        print(json.dumps({{"nodes": len(run.nodes), "status": run.status,
                          "loaded": sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED!r})}}))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["nodes"] == 2 and got["loaded"] == []
