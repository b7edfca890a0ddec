"""nccl.* checks over written evidence: verdicts, codes, profile choice, fleet view, localization report."""

from __future__ import annotations

import json

import pytest

import nccl_fixtures as fx
from clusterkit.evidence.bundle import Bundle
from nccl_helpers import analyze, check_of, node_bundle, single_text

H100 = "h100-sxm5-80gb"


def codes(result):
    return [(f.code, f.severity) for f in result.findings]


@pytest.mark.parametrize("busbw,status", [(478.0, "pass"), (450.0, "warn"), (400.0, "fail")])
def test_single_node_bands_h100(busbw, status):
    run = analyze([node_bundle("g1", single_text("g1", busbw))], profile=H100)
    c = check_of(run, "g1", "nccl.single_node")
    assert c.status == status
    assert c.metrics["busbw_large_gbps"] == pytest.approx(busbw, rel=0.03)
    assert c.metrics["judged_by"] == H100
    if status != "pass":
        f = c.findings[-1]
        assert f.code == "NCCL_BUSBW_LOW" and f.unit == "GB/s" and "NVLink" in f.action


def test_ring_run_is_judged_against_ring_figures():
    text = "export NCCL_ALGO=RING\n" + single_text("g1", 368.0)
    c = check_of(analyze([node_bundle("g1", text)], profile=H100), "g1", "nccl.single_node")
    assert c.status == "pass" and "RING" in c.summary
    c = check_of(analyze([node_bundle("g1", single_text("g1", 368.0))], profile=H100), "g1", "nccl.single_node")
    assert c.status == "fail" and "NVLS" in c.findings[-1].action


def test_validation_errors_fail_whatever_the_speed():
    c = check_of(analyze([node_bundle("g1", fx.WRONG_AND_FAILED)], profile="a100-sxm4-80gb"), "g1", "nccl.single_node")
    assert c.status == "fail"
    assert ("NCCL_VALIDATION_FAILED", "fail") in codes(c)
    assert c.metrics["busbw_large_gbps"] > 228  # fast, yet failed


def test_cuda_init_failure_fails_the_node_naming_the_fabric_manager():
    # the test ran on the node and failed: fail (drain), not error (unusable evidence)
    c = check_of(analyze([node_bundle("g1", fx.CUDA_INIT_FAIL)], profile=H100), "g1", "nccl.single_node")
    assert c.status == "fail"
    f = c.findings[0]
    assert f.code == "NCCL_TEST_FAILED" and "fabricmanager" in f.action and "fabricmanager" in f.component
    assert f.component.startswith("gpu-c03 ") and "'system not yet initialized'" in f.message


def test_abort_after_rows_fails_and_truncation_warns():
    c = check_of(analyze([node_bundle("g1", fx.ABORTED_MID_RUN)], profile=H100), "g1", "nccl.single_node")
    assert ("NCCL_TEST_FAILED", "fail") in codes(c)
    c = check_of(analyze([node_bundle("g1", fx.SRUN_PREFIXED_TRUNCATED)], profile=H100), "g1", "nccl.single_node")
    assert ("NCCL_RUN_INCOMPLETE", "warn") in codes(c)


def test_fewer_ranks_than_gpus_is_not_judged_as_slow():
    c = check_of(analyze([node_bundle("g1", single_text("g1", 120.0, gpus=2))], profile=H100), "g1", "nccl.single_node")
    assert c.status == "warn" and codes(c) == [("NCCL_RANKS_UNEXPECTED", "warn")]


def test_small_sweep_cannot_fail_a_node():
    text = single_text("g1", 300.0, max_bytes=64 << 20)
    c = check_of(analyze([node_bundle("g1", text)], profile=H100), "g1", "nccl.single_node")
    assert c.status == "warn"
    assert ("NCCL_GATE_SIZES_SMALL", "info") in codes(c)


def test_loose_file_with_base_profile_picks_the_profile_from_gpu_names():
    run = analyze([node_bundle("pasted.txt", fx.NO_ROOT_A100.replace("#   Rank  1", "#   Rank  1").replace(
        "device  1 [0x0f] A100-SXM4-40GB", "device  1 [0x0f] A100-SXM4-40GB"))], loose=True)
    c = check_of(run, "pasted.txt", "nccl.single_node")
    # 2 ranks on an 8-GPU profile: found the A100 profile from the names, and refused to judge 2 GPUs
    assert c.metrics["judged_by"] == "a100-sxm4-40gb"
    assert "picked from the GPU name" in c.findings[0].message


def test_loose_multi_node_file_is_judged_against_the_network():
    c = check_of(analyze([node_bundle("p.txt", fx.SRUN_PREFIXED_TRUNCATED)], loose=True), "p.txt", "nccl.single_node")
    # 2 nodes x 1 GPU, H100 profile: 1 GPU per node drives 1 NDR NIC -> ~47 GB/s expected, 46.5 measured
    assert c.metrics["nodes"] == 2 and c.metrics["expected_busbw_gbps"] == pytest.approx(47.0)
    assert not any(f.code == "NCCL_BUSBW_LOW" for f in c.findings)


def test_inventory_nics_drive_the_multi_node_expectation(tmp_path):
    hosts = ["a", "b"]
    from clusterkit.sim.nccl import allreduce_text
    import random

    cl = Bundle.virtual("_cluster", {"nccl/all_reduce_perf.txt": allreduce_text(hosts, 8, "NVIDIA H100 80GB HBM3",
                                                                                 180.0, random.Random(1))})
    decl = {"gpu_model": H100, "ib_devices": ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"], "ib_rate_gbps": 400}
    nodes = [node_bundle(h, single_text(h, 478.0), decl) for h in hosts]
    run = analyze(nodes, cluster=cl, profile=H100)
    c = next(c for c in run.cluster_checks if c.id == "nccl.multi_node")
    # 4 x 400G declared -> 188 expected; 180 is within 10%
    assert c.metrics["expected_busbw_gbps"] == pytest.approx(188.0) and c.status == "pass"
    assert "inventory: 4 x 400" in c.summary


def test_fleet_flags_a_node_far_below_the_median_even_above_the_floor():
    vals = {"g1": 489.0, "g2": 488.0, "g3": 490.0, "g4": 487.5, "g5": 488.5, "g6": 466.0}
    bundles = [node_bundle(h, single_text(h, v, seed=i)) for i, (h, v) in enumerate(vals.items())]
    run = analyze(bundles, profile=H100)
    assert check_of(run, "g6", "nccl.single_node").status == "pass"  # above the 460 warn line...
    f = check_of(run, "g6", "nccl.fleet")
    assert f.status == "warn" and f.findings[0].code == "NCCL_BUSBW_BELOW_FLEET"  # ...yet ~5% below its peers
    m = f.metrics
    assert m["below_median_percent"] == pytest.approx(
        (m["fleet_median_gbps"] - m["busbw_large_gbps"]) / m["fleet_median_gbps"] * 100, abs=0.06)
    assert 5.0 <= m["below_median_percent"] < 12.0
    assert check_of(run, "g2", "nccl.fleet").status == "pass"


def test_fleet_does_not_flag_a_uniformly_noisy_fleet():
    vals = [455.0, 470.0, 485.0, 462.0, 478.0, 490.0, 450.0]
    bundles = [node_bundle(f"g{i}", single_text(f"g{i}", v, seed=i)) for i, v in enumerate(vals)]
    run = analyze(bundles, profile=H100)
    assert all(check_of(run, f"g{i}", "nccl.fleet").status == "pass" for i in range(len(vals)))


def test_localize_report_names_node_and_nic_with_evidence():
    doc = {"status": "culprits", "tests": 12, "total_time_s": 80.0, "unresolved": [],
           "culprits": [{"host": "g3", "part": "node", "rails": [], "nics": [], "observed_gbps": 180.0,
                         "reference_gbps": 376.0, "evidence_rounds": [2, 4], "reason": "slow"},
                        {"host": "g5", "part": "nic", "rails": [3], "nics": ["mlx5_3"], "observed_gbps": 15.0,
                         "reference_gbps": 47.0, "evidence_rounds": [3, 4], "reason": "slow only on mlx5_3"}],
           "rounds": [{"round": 2, "stage": "isolate", "tests": [{"nodes": ["g3", "g1"], "rail": None,
                                                                  "busbw_gbps": 181.0, "reference_gbps": 376.0,
                                                                  "pass": False}]},
                      {"round": 3, "stage": "rails", "tests": [{"nodes": ["g5", "g2"], "rail": 3, "nic": "mlx5_3",
                                                               "busbw_gbps": 15.0, "reference_gbps": 47.0,
                                                               "pass": False}]}]}
    cl = Bundle.virtual("_cluster", {"nccl/localize.json": json.dumps(doc)})
    run = analyze([node_bundle(h, single_text(h, 478.0)) for h in ("g1", "g2", "g3", "g5")], cluster=cl, profile=H100)
    n = check_of(run, "g3", "nccl.localize")
    assert n.status == "fail" and n.findings[0].code == "NCCL_NODE_SLOW"
    assert "round 2 (isolate): g3+g1" in n.findings[0].evidence
    nic = check_of(run, "g5", "nccl.localize")
    assert nic.findings[0].code == "NCCL_NIC_SLOW" and nic.findings[0].component == "g5 mlx5_3"


def test_broken_localize_report_is_an_error():
    cl = Bundle.virtual("_cluster", {"nccl/localize.json": "{not json"})
    run = analyze([node_bundle("g1", single_text("g1", 478.0))], cluster=cl, profile=H100)
    c = next(c for c in run.cluster_checks if c.id == "nccl.localize")
    assert c.status == "error"
