"""Verdicts that mean what they say: failed runs fail with their cause, survivable WARNs warn, invalid
runs say so, and each run is judged by the figures its own ranks, hosts, sizes and collective call for."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nccl_verdict_fixtures as vx
from clusterkit.evidence.bundle import Bundle
from clusterkit.evidence.kinds import sniff
from clusterkit.parsers.nccl_tests import SURVIVABLE_WARNS, is_fatal_nccl_line, parse
from clusterkit.sim.nccl import allreduce_text
from nccl_helpers import analyze, check_of, codes, judge, node_bundle, only

H100, A100 = "h100-sxm5-80gb", "a100-sxm4-40gb"


# ---- a test that ran and failed is `fail`, naming the first failing line, the part and the action ---------

def test_init_failure_names_the_hca_from_the_first_warn_not_the_generic_error():
    c = judge(vx.INIT_FAILED_IB)
    assert c.status == "fail"
    f = only(c, "NCCL_TEST_FAILED")
    assert f.severity == "fail" and f.component == "gpu-a02 mlx5_3"
    assert "status=12" in f.message and "transport retry counter exceeded" in f.message
    assert "mlxlink -d mlx5_3" in f.action and "10.1.0.7" in f.action
    assert "unhandled system error" in f.evidence  # every failure line is kept as evidence


def test_crash_mid_table_fails_after_the_sizes_it_reached():
    c = judge(vx.CRASH_MID_TABLE)
    f = only(c, "NCCL_TEST_FAILED")
    assert c.status == "fail" and "aborted after 2 size(s)" in f.message
    assert "rank 11 on gpu-a02 was killed by signal 11" in f.message and f.component.startswith("gpu-a02")
    assert not any(x.code == "NCCL_RUN_INCOMPLETE" for x in c.findings)  # the failure says why it stops


def test_exclusive_process_mode_names_the_compute_mode_fix():
    f = only(judge(vx.EXCLUSIVE_PROCESS), "NCCL_TEST_FAILED")
    assert f.severity == "fail" and f.component == "gpu-c07 GPUs (compute mode)"
    assert "nvidia-smi -c DEFAULT" in f.action


def test_failure_log_without_a_table_is_recognized_and_fails_naming_each_hca():
    assert sniff(vx.WARN_ONLY_FAILURE_LOG).name == "nccl.all_reduce_perf"
    c = judge(vx.WARN_ONLY_FAILURE_LOG, loose=True)
    f = only(c, "NCCL_TEST_FAILED")
    assert c.status == "fail" and f.component == "node-7 mlx5_2 port 1, mlx5_5 port 1"
    assert "catastrophic error" in f.message and "failed before any result" in f.message


def test_launch_failure_before_nccl_is_recognized_and_names_the_device():
    assert sniff(vx.UCX_LAUNCH_FAILURE).name == "nccl.all_reduce_perf"
    f = only(judge(vx.UCX_LAUNCH_FAILURE, loose=True), "NCCL_TEST_FAILED")
    assert f.severity == "fail" and f.component == "nodeA mlx5_4 (UCX)" and "UCX_NET_DEVICES" in f.action


def test_nccl1_layout_parses_and_its_failure_points_at_the_nccl_version():
    r = parse(vx.NCCL1_LAYOUT)
    assert r.params["nGpus"] == 2 and r.ranks == 2 and r.gpu_names == ["Tesla P100-PCIE-16GB"]
    assert r.nccl_version == "1.0" and r.has_header
    f = only(judge(vx.NCCL1_LAYOUT, loose=True), "NCCL_TEST_FAILED")
    assert f.severity == "fail" and "NCCL 2" in f.action


def test_exit_after_wrong_data_is_reported_as_validation_not_as_a_second_failure():
    text = vx.TWO_NODE_H100.replace("  352.45      0  ", "  352.45      7  ").replace(
        "Out of bounds values : 0 OK", "Out of bounds values : 1 FAILED") + \
        " .. gpu-a01 pid 5000: Test failure common.cu:1189\n"
    c = judge(text)
    assert c.status == "fail" and [x for x, _ in codes(c)] == ["NCCL_VALIDATION_FAILED"]


# ---- survivable WARNs warn; the list is data the fatal-signature scan imports ------------------------------

def test_survivable_warn_in_a_healthy_run_warns_and_the_run_is_still_judged():
    c = judge(vx.COLLNET_FALLBACK_HEALTHY)
    assert c.status == "warn"
    assert [x for x, _ in codes(c)] == ["NCCL_WARN_NONFATAL", "NCCL_WARN_NONFATAL"]
    assert c.metrics["busbw_large_gbps"] == pytest.approx(477.8, abs=0.5) and c.metrics["expected_busbw_gbps"] == 478
    assert "NCCL_COLLNET_ENABLE=0" in c.findings[0].action


def test_log_with_only_a_survivable_warn_warns_without_a_no_results_error():
    assert sniff(vx.COLLNET_WARN_ONLY).name == "nccl.all_reduce_perf"
    c = judge(vx.COLLNET_WARN_ONLY, loose=True)
    assert c.status == "warn" and codes(c) == [("NCCL_WARN_NONFATAL", "warn")]
    assert c.findings[0].component == "gpu-d01 NCCL"


@pytest.mark.parametrize("line,fatal", [
    ("h:1:2 [0] transport.cc:384 NCCL WARN Cannot initialize CollNet, using point-to-point network instead", False),
    ("h:1:2 [0] sharp_plugin.c:365 NCCL WARN NET/IB : SHARP coll init error: Cannot create SHARP job(-11)", False),
    ("h:1:2 [0] NCCL WARN NET/IB : Unable to open device mlx5_9", False),
    ("h:1:2 [0] NCCL WARN NCCL_NET_MERGE_POLICY: unknown value 'x', defaulting to ALL", False),
    ("h:1:2 [0] NCCL INFO Channel 00/02 :    0   1", False),
    ("h:1:2 [0] NCCL WARN Net : Connection closed by remote peer", True),
    ("h:1:2 [0] NCCL WARN P2P is disabled between NVLINK connected GPUs 1 and 2.", True),
    ("gpu1: Test NCCL failure common.cu:1119 'unhandled system error'", True),
    ("Test CUDA failure common.cu:730 'unknown error'", True),
    ("NCCL failure all_reduce.cu:95 'unhandled cuda error'", True),
    ("kernel: NVRM: Xid (PCI:0000:18:00): 79, GPU has fallen off the bus.", False),  # not an NCCL line
])
def test_is_fatal_nccl_line(line, fatal):
    assert is_fatal_nccl_line(line) is fatal


def test_every_survivable_pattern_says_what_it_means_and_what_to_do():
    for w in SURVIVABLE_WARNS:
        assert w.meaning and w.action and w.pattern.pattern


# ---- a run that measured nothing is an invalid test, never "bandwidth low" ---------------------------------

def test_non_mpi_build_under_mpirun_is_invalid_with_the_rebuild_fix():
    c = judge(vx.NON_MPI_BUILD_UNDER_MPIRUN)
    assert c.status == "error" and codes(c) == [("NCCL_TEST_INVALID", "error")]
    f = c.findings[0]
    assert "busbw is 0.00" in f.message and "2 processes each report themselves as rank 0" in f.message
    assert "MPI=1" in f.action


def test_one_rank_run_is_invalid_with_the_gpu_count_fix():
    f = only(judge(vx.ONE_RANK), "NCCL_TEST_INVALID")
    assert "-g <GPUs per node>" in f.action


def test_repeated_single_node_tables_are_not_a_two_node_result():
    c = judge(vx.REPEATED_SINGLE_NODE_TABLES)
    assert c.status == "error" and [x for x, _ in codes(c)] == ["NCCL_TEST_INVALID"]
    assert "MPI=1" in c.findings[0].action


# ---- the text's own context picks the figures ------------------------------------------------------------

def test_two_node_run_is_judged_by_the_network_not_by_single_node_figures():
    c = judge(vx.TWO_NODE_H100)
    # 369.7 GB/s would fail the single-node NVLS line (430); 8x NDR at 0.94 expects ~376
    assert c.status == "pass" and c.metrics["expected_busbw_gbps"] == pytest.approx(376.0)
    assert c.metrics["nodes"] == 2 and "2-node" in c.summary


def test_more_ranks_than_a_node_has_gpus_is_multi_node_even_without_host_names():
    r = parse(vx.SIXTEEN_RANKS_NO_HOSTS)
    assert r.ranks == 16 and r.nodes is None and r.hosts == []
    c = judge(vx.SIXTEEN_RANKS_NO_HOSTS)
    assert c.status == "pass" and "multi-node" in c.summary


@pytest.mark.parametrize("busbw,status,low", [(445.0, "pass", None), (300.0, "warn", "warn")])
def test_a_sweep_below_1gib_is_at_most_a_warning_and_a_ramp_is_not_low(busbw, status, low):
    c = judge(vx.small_sweep(busbw))
    assert c.status == status
    assert ("NCCL_GATE_SIZES_SMALL", "info") in codes(c)
    got = [s for code, s in codes(c) if code == "NCCL_BUSBW_LOW"]
    assert got == ([low] if low else [])
    if low:
        assert "can only warn" in only(c, "NCCL_BUSBW_LOW").message


def test_collapse_at_large_sizes_warns_even_without_an_expectation():
    c = judge(vx.COLLAPSE, profile=None, loose=True)
    assert c.status == "warn"
    f = only(c, "NCCL_BUSBW_LOW")
    assert f.severity == "warn" and "28.8 at 32 MiB" in f.message and f.observed == pytest.approx(5.29, abs=0.05)


def test_rows_without_header_or_summary_are_recognized_and_not_called_incomplete():
    assert sniff(vx.ROWS_ONLY).name == "nccl.all_reduce_perf"
    c = judge(vx.ROWS_ONLY, profile=None, loose=True)
    assert c.status == "pass" and not any(x.code == "NCCL_RUN_INCOMPLETE" for x in c.findings)


def test_summary_missing_after_the_last_size_is_not_incomplete():
    text = vx.TWO_NODE_H100.split("# Out of bounds")[0]  # rows reach maxBytes (8 GiB); summary cut
    assert not any(x.code == "NCCL_RUN_INCOMPLETE" for x in judge(text).findings)
    cut = text.rsplit("  8589934592", 1)[0]             # stops at 4 GiB of 8: truncated
    assert ("NCCL_RUN_INCOMPLETE", "warn") in codes(judge(cut))


# ---- collectives other than all_reduce ---------------------------------------------------------------------

def test_old_all_gather_layout_with_empty_redop_parses_and_is_judged_by_the_fail_line_only():
    r = parse(vx.old_all_gather(222.0))
    assert len(r.rows) == 4 and all(x.redop is None and x.root is None for x in r.rows)
    assert r.collective == "all_gather" and r.validation is False
    c = judge(vx.old_all_gather(222.0), profile=None, loose=True)
    # 222 is below the all-reduce warn line (228) but a healthy all_gather on 8x A100: pass
    assert c.status == "pass" and c.metrics["judged_by"] == A100 and c.metrics["min_busbw_gbps"] == 207.0
    c = judge(vx.old_all_gather(150.0), profile=None, loose=True)
    assert ("NCCL_BUSBW_LOW", "fail") in codes(c) and "all-gather busbw 150.0" in only(c, "NCCL_BUSBW_LOW").message


def test_an_unnamed_gather_family_table_and_alltoall_are_not_judged_against_all_reduce():
    c = judge(vx.old_all_gather(100.0, name=""), profile=None, loose=True)
    assert c.status == "pass" and "does not name its collective" in only(c, "NCCL_NO_EXPECTATION").message
    c = judge(vx.old_all_gather(100.0, name="alltoall_perf"), profile=None, loose=True)
    assert c.status == "pass" and "alltoall has no figure" in only(c, "NCCL_NO_EXPECTATION").message


def test_old_broadcast_layout_with_root_and_no_redop():
    r = parse(vx.OLD_BROADCAST_ROWS)
    assert [x.root for x in r.rows] == [0, 0] and r.rows[0].redop is None and r.collective == "broadcast"
    assert r.rows[1].busbw_gbps == pytest.approx((230.56 + 232.20) / 2)


@pytest.mark.parametrize("uint8_err,float_err,wrong", [
    ("0e+00", "5e-07", 0),   # float rounding within nccl-tests' tolerance
    ("3e+02", "0e+00", 1),   # an exact uint8 copy that is off
    ("0e+00", "1e+00", 1),   # a float sum that is off by 1
])
def test_oldest_layout_deltas_are_judged_by_nccl_tests_tolerance(uint8_err, float_err, wrong):
    r = parse(vx.DELTA_ROWS.format(uint8_err=uint8_err, float_err=float_err))
    assert len(r.rows) == 2 and r.wrong_total == wrong


# ---- the multi-node check fails the nodes the failure lines name ------------------------------------------

def test_multi_node_failure_also_fails_the_named_node():
    hosts = ["gpu-a01", "gpu-a02"]
    cl = Bundle.virtual("_cluster", {"nccl/all_reduce_perf.txt": vx.INIT_FAILED_IB})
    nodes = [node_bundle(h, allreduce_text([h], 8, "NVIDIA H100 80GB HBM3", 478.0, random.Random(i)))
             for i, h in enumerate(hosts)]
    run = analyze(nodes, cluster=cl, profile=H100)
    cluster = next(c for c in run.cluster_checks if c.id == "nccl.multi_node")
    assert cluster.status == "fail" and cluster.findings[0].code == "NCCL_TEST_FAILED"
    assert check_of(run, "gpu-a02", "nccl.multi_node").status == "fail"
    assert not any(c.id == "nccl.multi_node" for n in run.nodes if n.host == "gpu-a01" for c in n.checks)


# ---- properties: a fatal line anywhere fails a healthy run; a survivable WARN never does ------------------

_HEALTHY = allreduce_text(["gpu-h01"], 8, "NVIDIA H100 80GB HBM3", 478.0, random.Random(3))
_FATAL = ["gpu-h01:4242:4300 [2] transport/net_ib.cc:2244 NCCL WARN NET/IB: Got completion from peer 10.0.0.2<4> "
          "with status=12 opcode=129 len=65536 vendor err 129 (Recv) localGid ::ffff:10.0.0.1 hca mlx5_1",
          "gpu-h01: Test NCCL failure common.cu:1119 'unhandled system error (run with NCCL_DEBUG=INFO for details) / '",
          "gpu-h01: Test CUDA failure common.cu:970 'system not yet initialized'",
          "gpu-h01:4242:4242 [0] NCCL WARN Cuda failure 'an illegal memory access was encountered'"]

_SURVIVABLE = ["gpu-h01:1:2 [0] transport.cc:384 NCCL WARN Cannot initialize CollNet, using point-to-point network instead",
               "gpu-h01:1:2 [0] sharp_plugin.c:365 NCCL WARN NET/IB : SHARP coll init error: Cannot create SHARP job(-11)",
               "gpu-h01:1:2 [0] init.cc:334 NCCL WARN NET/IB : Unable to open device mlx5_7",
               "gpu-h01:1:2 [0] topo.cc:1757 NCCL WARN NCCL_NET_MERGE_POLICY: unknown value 'x', defaulting to ALL"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=10_000), st.sampled_from(_FATAL), st.sampled_from(SURVIVABLE_WARNS))
def test_fatal_line_anywhere_fails_and_survivable_warn_only_warns(pos, fatal, warn):
    assert judge(_HEALTHY).status == "pass"
    lines = _HEALTHY.split("\n")
    i = pos % (len(lines) + 1)
    c = judge("\n".join(lines[:i] + [fatal] + lines[i:]))
    assert c.status == "fail" and any(f.code == "NCCL_TEST_FAILED" for f in c.findings)
    line = next(v for v in _SURVIVABLE if warn.pattern.search(v))
    c = judge("\n".join(lines[:i] + [line] + lines[i:]))
    assert c.status == "warn" and [f.code for f in c.findings] == ["NCCL_WARN_NONFATAL"]
