"""Launch plans: the exact argv/env for nccl-tests and the torch fallback, single- and multi-node."""

from __future__ import annotations

import subprocess

from clusterkit.fleet.localize import GroupTest, LocalizeConfig, localize
from clusterkit.fleet.nccl_runner import (LaunchPlan, NcclOptions, RunRecord, busbw_of, make_tester,
                                          multi_node_plan, run_localization, single_node_plan)
from clusterkit.inventory import HostSpec
from clusterkit.probes.registry import PROBES, ProbeEnv
from clusterkit.profiles import load_profile
from nccl_helpers import single_text


def spec(name: str, **kw) -> HostSpec:
    base = dict(gpu_model="h100-sxm5-80gb", gpu_count=8, ib_devices=[f"mlx5_{i}" for i in range(8)], ib_rate_gbps=400)
    base.update(kw)
    return HostSpec(name, f"10.0.0.{len(name)}", **base)


def test_mpirun_plan_from_inventory():
    p = load_profile("h100-sxm5-80gb")
    plan = multi_node_plan([spec("a"), spec("bb")], p, NcclOptions(env={"NCCL_SOCKET_IFNAME": "bond0"}),
                           hostfile_path="/tmp/hosts")
    assert plan.argv[0] == "mpirun" and plan.argv[plan.argv.index("-np") + 1] == "16"
    assert plan.hostfile == "10.0.0.1 slots=8\n10.0.0.2 slots=8\n"
    assert "-x" in plan.argv and "NCCL_IB_HCA==mlx5_0,mlx5_1,mlx5_2,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_7" in plan.argv
    assert "NCCL_NVLS_ENABLE=1" in plan.argv and "NCCL_SOCKET_IFNAME=bond0" in plan.argv
    tail = plan.argv[plan.argv.index("all_reduce_perf"):]
    assert tail[:5] == ["all_reduce_perf", "-b", "8", "-e", "8G"] and tail[-2:] == ["-g", "1"]
    assert tail[tail.index("-c") + 1] == "1"


def test_srun_when_hosts_are_slurm_nodes_and_rail_tests():
    plan = multi_node_plan([spec("a", scheduler="slurm", slurm_node="gpu-a"), spec("b", scheduler="slurm")],
                           None, NcclOptions(), hostfile_path="unused", rail=3)
    assert plan.argv[0] == "srun" and "--nodelist=gpu-a,b" in plan.argv and "--ntasks-per-node=1" in plan.argv
    export = next(a for a in plan.argv if a.startswith("--export="))
    assert "NCCL_IB_HCA==mlx5_3" in export and "CUDA_VISIBLE_DEVICES=3" in export


def test_torch_fallback_plans():
    single = single_node_plan(spec("a"), None, NcclOptions(), nccl_tests=False)
    assert single.tool == "torch" and single.argv[-2:] == ["--nprocs", "8"]
    multi = multi_node_plan([spec("a"), spec("b")], None, NcclOptions(master_port=31000), hostfile_path="h",
                            nccl_tests=False)
    assert multi.env["MASTER_ADDR"] == "10.0.0.1" and multi.env["MASTER_PORT"] == "31000"


def test_probe_runs_nccl_tests_or_the_fallback_through_a_quoted_wrapper(tmp_path):
    (cmd,) = PROBES["nccl.single_node"].plan(ProbeEnv("a", spec("a"), load_profile("h100-sxm5-80gb"),
                                                       {"max_bytes": "4G", "env": {"NCCL_ALGO": "RING"}}))
    assert cmd.path == "nccl/all_reduce_perf.txt" and cmd.phase == 50 and b"allreduce_bench" in cmd.stdin
    assert "NCCL_ALGO=RING" in cmd.argv and "NCCL_IB_HCA==mlx5_0,mlx5_1,mlx5_2,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_7" in cmd.argv
    # the wrapper really picks the installed binary: a fake all_reduce_perf on PATH echoes its args
    fake = tmp_path / "all_reduce_perf"
    fake.write_text('#!/bin/sh\necho "ran $*"\n')
    fake.chmod(0o755)
    i = cmd.argv.index("sh")
    out = subprocess.run(cmd.argv[i:], capture_output=True, text=True, env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
                         timeout=30)
    assert out.stdout.strip().startswith("ran -b 8 -e 4G") and out.stdout.strip().endswith("-g 8")


def test_make_tester_runs_a_round_concurrently_and_parses_each_output(tmp_path):
    seen: list[LaunchPlan] = []

    def fake_run(plan, *, timeout_s, hostfile_path):
        seen.append(plan)
        slow = "c" in plan.hosts
        text = single_text("x", 120.0 if slow else 376.0, gpus=1)
        return RunRecord(plan, text, 0, 30.0, "ok")

    specs = {h: spec(h) for h in "abcdef"}
    tester = make_tester(specs, None, NcclOptions(), workdir=str(tmp_path), nccl_tests=True, run=fake_run)
    v = localize(list("abcdef"), tester, LocalizeConfig(expected_full_gbps=376.0, expected_rail_gbps=47.0))
    assert [c.host for c in v.culprits] == ["c"]
    assert all(p.argv[0] == "mpirun" for p in seen)
    out = tester([GroupTest(("a", "b"))])[0]
    assert out.busbw_gbps and out.raw and out.error is None


def test_busbw_of_refuses_wrong_data_and_unusable_output():
    assert busbw_of("garbage")[0] is None
    assert busbw_of(single_text("x", 300.0, wrong_from_bytes=1 << 30))[1].startswith("validation failed")


def test_run_localization_names_the_nic_from_rail_isolated_runs(tmp_path):
    import json

    def fake_run(plan, *, timeout_s, hostfile_path):
        rail_hca = plan.env.get("NCCL_IB_HCA", "")
        one_rail = plan.env.get("CUDA_VISIBLE_DEVICES") is not None
        bw = 47.0 if one_rail else 376.0
        if "d" in plan.hosts and (not one_rail or rail_hca == "=mlx5_6"):
            bw = 15.0 if one_rail else 125.0
        return RunRecord(plan, single_text("x", bw, gpus=1), 0, 25.0, "ok")

    files = run_localization([spec(h) for h in "abcdefgh"], load_profile("h100-sxm5-80gb"), NcclOptions(),
                             run=fake_run, workdir=str(tmp_path), nccl_tests=True)
    doc = json.loads(files["nccl/localize.json"])
    assert [(c["host"], c["nics"]) for c in doc["culprits"]] == [("d", ["mlx5_6"])]
    assert len(files) == doc["tests"] + 1
