"""The single-node NCCL probe: what it asks a node to run."""

import os
import stat
import subprocess

from clusterkit.inventory import HostSpec
from clusterkit.probes.registry import PROBES, ProbeEnv
from clusterkit.plugins import load_all
from clusterkit.profiles import load_profile

load_all()


def test_no_gpus_declared_means_no_bandwidth_test():
    plan = PROBES["nccl.single_node"].plan
    assert plan(ProbeEnv("cpu1", HostSpec("cpu1", "10.0.0.1"), load_profile("base"))) == []
    assert plan(ProbeEnv("loose", None, None)) == []


def test_wrapper_runs_nccl_tests_when_installed_else_the_gpu_fallback(tmp_path):
    spec = HostSpec("g1", "10.0.0.2", gpu_model="h100-sxm5-80gb", gpu_count=8, ib_devices=["mlx5_0", "mlx5_1"],
                    ib_rate_gbps=400)
    (cmd,) = PROBES["nccl.single_node"].plan(ProbeEnv("g1", spec, load_profile("h100-sxm5-80gb")))
    assert cmd.argv[0] == "env" and cmd.path == "nccl/all_reduce_perf.txt" and cmd.stdin
    fake = tmp_path / "bin"
    fake.mkdir()
    # a stand-in all_reduce_perf that echoes its arguments
    tool = fake / "all_reduce_perf"
    tool.write_text('#!/bin/sh\necho "ARGS $*"\n')
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    out = subprocess.run(cmd.argv, env=env, capture_output=True, text=True, timeout=30).stdout
    assert out.startswith("ARGS -b 8 -e 8G") and out.strip().endswith("-c 1 -g 8")
    # without nccl-tests: python reads the benchmark from stdin and is told to use the GPUs
    py = fake / "python3"
    py.write_text('#!/bin/sh\necho "PY $*"\n')
    py.chmod(py.stat().st_mode | stat.S_IEXEC)
    tool.unlink()
    out = subprocess.run(cmd.argv, env=env, capture_output=True, text=True, timeout=30).stdout
    assert "torch.distributed fallback" in out and out.strip().endswith("--nprocs 8 --backend nccl")
