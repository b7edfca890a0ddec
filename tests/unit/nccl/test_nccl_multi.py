"""Logs of several collective tests run back to back: one run per test, each judged by its own rules, the
worst verdict for the log; a test that stopped mid-log fails; multi-node alltoall/sendrecv have a floor."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nccl_multi_fixtures as mx
import nccl_verdict_fixtures as vx
from clusterkit import prom_names
from clusterkit.evidence.bundle import Bundle
from clusterkit.parsers.nccl_tests import parse, split_lines
from clusterkit.results import worst
from nccl_helpers import analyze, check_of, codes, judge, node_bundle, only

H100 = "h100-sxm5-80gb"
MIB, GIB = mx.MIB, mx.GIB


# ---- one run per test ----------------------------------------------------------------------------------

def test_five_collectives_on_one_node_are_read_and_judged_one_by_one():
    r = parse(mx.five_collectives())
    assert [p.test for p in r.collectives] == ["all_reduce_perf", "all_gather_perf", "reduce_scatter_perf",
                                               "alltoall_perf", "sendrecv_perf"]
    assert all(len(p.rows) == 4 and p.completed and p.ranks == 8 for p in r.collectives)
    c = judge(mx.five_collectives())
    assert c.status == "pass" and c.summary.startswith("5 collective tests")
    assert c.metrics["busbw_large_gbps"] == pytest.approx(479.0)          # the all-reduce's figure
    assert c.metrics["busbw_large_gbps_alltoall"] == pytest.approx(345.0)
    # the exporter serves each test's figure under a declared series, labelled with its collective
    assert [m for m, v in c.metrics.items() if not isinstance(v, (str, bool)) and not prom_names.declared(m)] == []
    assert prom_names.series("busbw_large_gbps_alltoall").labels == (("collective", "alltoall"),)
    # single-node alltoall/sendrecv have no figure: said, not judged; nothing is 'repeated tables'
    assert sorted(f.message.split(":")[0] for f in c.findings) == ["alltoall_perf", "sendrecv_perf"]
    assert {f.code for f in c.findings} == {"NCCL_NO_EXPECTATION"}


def test_the_log_takes_the_worst_verdict_and_the_finding_names_its_collective():
    text = mx.block("all_reduce", 479.0) + mx.block("all_gather", 150.0) + mx.block("alltoall", 345.0)
    c = judge(text)
    assert c.status == "fail"
    f = only(c, "NCCL_BUSBW_LOW")
    assert f.severity == "fail" and f.message.startswith("all_gather_perf: ") and "all-gather busbw 150.0" in f.message


def test_older_layout_without_markers_splits_on_the_parameter_line():
    text = (mx.block("all_reduce", 479.0, markers=False) + mx.block("alltoall", 345.0, markers=False) +
            mx.block("sendrecv", 366.0, markers=False))
    r = parse(text)
    # no test names: the collective comes from each table (alltoall/sendrecv by their unchecked in-place column)
    assert [p.test for p in r.collectives] == [None, None, None]
    assert [p.collective for p in r.collectives] == ["all_reduce", "alltoall", "sendrecv"]
    assert judge(text).status == "pass"


def test_an_unnamed_sendrecv_table_is_not_taken_for_all_reduce():
    # sendrecv prints 'sum' and count = size / type size like all_reduce; only its in-place N/A tells it apart
    r = parse(mx.block("sendrecv", 20.0, markers=False))
    assert r.collective == "sendrecv"
    assert judge(mx.block("sendrecv", 20.0, markers=False)).status == "pass"   # not 'all-reduce 20 GB/s'


# ---- a test that stopped without a word, inside a log whose other tests ran ---------------------------

def test_header_then_nothing_after_a_completed_test_is_incomplete_and_fails():
    hosts = ("gpu-p01", "gpu-p02")
    text = mx.block("alltoall", 13.4, hosts, 1) + mx.block("sendrecv", 0.0, hosts, 1, table=False)
    c = judge(text)
    assert c.status == "fail" and codes(c) == [("NCCL_RUN_INCOMPLETE", "fail")]
    f = c.findings[0]
    assert f.message.startswith("sendrecv_perf printed its header and no result row")
    assert "alltoall_perf completed before it" in f.message and "hung or was killed" in f.message


def test_header_then_nothing_alone_is_still_an_unjudgeable_output():
    c = judge(mx.block("sendrecv", 0.0, ("gpu-p01", "gpu-p02"), 1, table=False))
    assert c.status == "error" and codes(c) == [("NCCL_NO_RESULTS", "error")]


def test_a_test_stopped_mid_log_fails_whether_it_printed_rows_or_not():
    header_only = mx.block("all_gather", 0.0, table=False) + mx.block("all_reduce", 479.0)
    c = judge(header_only)
    assert c.status == "fail" and "the next test started after it" in only(c, "NCCL_RUN_INCOMPLETE").message
    cut = mx.block("all_reduce", 479.0, trailer=False, sizes=(GIB, 2 * GIB), max_bytes=8 * GIB)
    c = judge(cut + mx.block("all_gather", 360.0))
    f = only(c, "NCCL_RUN_INCOMPLETE")
    assert f.severity == "fail" and "stopped after 2 size(s)" in f.message
    # killed before its parameter line: only the version and starting lines
    started = ("# nccl-tests version 2.17.8 nccl-headers=22902 nccl-library=22902\n"
               "# Collective test starting: alltoall_perf\n")
    c = judge(mx.block("all_reduce", 479.0) + started + mx.block("all_gather", 360.0))
    assert only(c, "NCCL_RUN_INCOMPLETE").message.startswith("alltoall_perf printed its header and no result row")
    # the same cut rows at the end of the log may be a paste cut short: a warning, as before
    c = judge(mx.block("all_gather", 360.0) + cut)
    assert only(c, "NCCL_RUN_INCOMPLETE").severity == "warn" and c.status == "warn"


# ---- repeated tables of ONE launch stay an invalid test ------------------------------------------------

def test_identical_tables_from_processes_of_one_launch_are_an_invalid_test():
    assert judge(vx.REPEATED_SINGLE_NODE_TABLES).status == "error"           # two hosts, with markers
    assert judge(vx.NON_MPI_BUILD_UNDER_MPIRUN).status == "error"            # two hosts, no markers
    # two processes on one node, GPUs 0-3 and 4-7: concurrent, not one after the other
    two_procs = (mx.block("all_reduce", 479.0, gpus=4, markers=False) +
                 mx.block("all_reduce", 479.0, gpus=4, markers=False, first_gpu=4, pid0=6000))
    assert not parse(two_procs).collectives
    c = judge(two_procs)
    assert c.status == "error" and [x for x, _ in codes(c)] == ["NCCL_TEST_INVALID"]


def test_the_same_test_looped_on_the_same_gpus_is_two_runs():
    loop = mx.block("all_reduce", 479.0) + mx.block("all_reduce", 478.0, pid0=7000)
    assert len(parse(loop).collectives) == 2
    assert judge(loop).status == "pass"


# ---- the busbw curve, per test -------------------------------------------------------------------------

_FALLING = (7.0, 7.7, 7.7, 7.7, 7.5, 4.7, 3.5, 2.8, 1.5, 0.8)
_FALLING_SIZES = tuple(32 * MIB << i for i in range(10))


def test_a_curve_that_collapses_at_the_gate_sizes_fails_in_each_test():
    hosts = ("gpu-p01", "gpu-p02")
    text = (mx.block("alltoall", _FALLING, hosts, 1, sizes=_FALLING_SIZES) +
            mx.block("sendrecv", _FALLING, hosts, 1, sizes=_FALLING_SIZES))
    c = judge(text)
    assert c.status == "fail"
    low = [f for f in c.findings if f.code == "NCCL_BUSBW_LOW"]
    assert [f.message.split(":")[0] for f in low] == ["alltoall_perf", "sendrecv_perf"]
    assert all(f.severity == "fail" and "collapses at large sizes" in f.message for f in low)
    dips = [f for f in c.findings if f.code == "NCCL_BUSBW_CURVE_DIP"]
    assert len(dips) == 2 and all("falls as messages grow" in f.message and f.severity == "info" for f in dips)


def test_a_collapse_below_the_gate_sizes_still_only_warns():
    c = judge(vx.COLLAPSE, profile=None)
    assert c.status == "warn" and only(c, "NCCL_BUSBW_LOW").severity == "warn"


# ---- multi-node alltoall / sendrecv: a floor ----------------------------------------------------------

@pytest.mark.parametrize("coll", ["alltoall", "sendrecv"])
def test_multi_node_point_to_point_at_1gbs_fails_below_the_floor(coll):
    c = judge(mx.block(coll, 1.0, ("gpu-p01", "gpu-p02"), 4, name="NVIDIA A100-SXM4-40GB"), profile=None)
    f = only(c, "NCCL_BUSBW_LOW")
    assert c.status == "fail" and f.severity == "fail"
    assert f.observed == pytest.approx(1.0) and f.limit == pytest.approx(1.25)   # 0.1 x 100 Gb/s / 8
    assert "below the floor" in f.message and "assumed 100 Gb/s" in f.message and "NET/Socket" in f.action


def test_the_floor_follows_the_inventory_nic_rate():
    declared = {"ib_devices": [f"mlx5_{i}" for i in range(8)], "ib_rate_gbps": 400}
    text = mx.block("alltoall", 4.0, ("gpu-p01", "gpu-p02"), 8)
    assert only(judge(text, declared=declared), "NCCL_BUSBW_LOW").limit == pytest.approx(5.0)
    assert judge(text).status == "pass"          # no inventory: the floor is 1.25 GB/s
    assert judge(mx.block("alltoall", 40.0, ("gpu-p01", "gpu-p02"), 8), declared=declared).status == "pass"


def test_healthy_alltoall_at_scale_is_above_the_floor():
    # ALCF Polaris (A100, Slingshot 11) tuned alltoall: 9.4 GB/s on 2 nodes, 4.4 on 256 nodes
    assert judge(mx.polaris_like(9.36, 2), profile=None).status == "pass"
    c = judge(mx.polaris_like(4.38, 256), profile=None)
    assert c.status == "pass" and c.metrics["min_busbw_gbps"] == pytest.approx(1.25)


def test_the_same_fabric_on_tcp_is_below_the_floor():
    # the same 128 nodes with NCCL's defaults (host TCP): 1.2 GB/s at 1 GiB
    c = judge(mx.polaris_like(1.2, 128), profile=None)
    assert c.status == "fail" and "128-node alltoall busbw 1.20" in only(c, "NCCL_BUSBW_LOW").message


def test_no_floor_when_each_peer_gets_a_small_chunk():
    # 540 nodes x 4 GPUs: 1 GiB gives each of 2160 peers 485 KiB, a latency-bound regime
    c = judge(mx.polaris_like(0.9, 540), profile=None)
    assert c.status == "pass" and "485 KiB" in only(c, "NCCL_NO_EXPECTATION").message


def test_a_short_sweep_below_the_floor_only_warns():
    text = mx.block("alltoall", 1.0, ("gpu-p01", "gpu-p02"), 4, sizes=(64 * MIB, 128 * MIB, 256 * MIB))
    c = judge(text, profile=None)
    assert c.status == "warn" and only(c, "NCCL_BUSBW_LOW").severity == "warn"


def test_single_node_alltoall_has_no_floor():
    c = judge(mx.block("alltoall", 1.0))
    assert c.status == "pass" and "alltoall has no figure" in only(c, "NCCL_NO_EXPECTATION").message


# ---- other checks read the all-reduce test of a log ----------------------------------------------------

def test_fleet_view_compares_the_all_reduce_test_of_each_log():
    hosts = ["g1", "g2", "g3", "g4", "g5"]
    bundles = [node_bundle(h, mx.five_collectives(h, 400.0 if h == "g3" else 479.0)) for h in hosts]
    run = analyze(bundles, profile=H100)
    c = check_of(run, "g3", "nccl.fleet")
    assert c.status == "fail" and c.metrics["fleet_median_gbps"] == pytest.approx(479.0)


def test_the_cluster_run_is_judged_test_by_test_too():
    hosts = ("gpu-a01", "gpu-a02")
    log = mx.block("all_reduce", 370.0, hosts, 8) + mx.block("alltoall", 1.0, hosts, 8)
    cl = Bundle.virtual("_cluster", {"nccl/all_reduce_perf.txt": log})
    run = analyze([node_bundle(h, mx.block("all_reduce", 479.0, (h,))) for h in hosts], cluster=cl, profile=H100)
    c = next(c for c in run.cluster_checks if c.id == "nccl.multi_node")
    assert c.status == "fail" and [f.message.split(":")[0] for f in c.findings] == ["alltoall_perf"]
    assert c.findings[0].component == "fabric between gpu-a01, gpu-a02"


# ---- properties -----------------------------------------------------------------------------------------

_BLOCK = st.tuples(st.sampled_from(mx.COLLECTIVES), st.floats(min_value=20.0, max_value=480.0), st.booleans())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_BLOCK, min_size=1, max_size=5), st.sampled_from([(("gpu-m01",), 8), (("gpu-m01", "gpu-m02"), 4)]))
def test_splitting_never_loses_a_line_or_a_row(blocks, where):
    hosts, gpus = where
    texts = [mx.block(c, round(bw, 2), hosts, gpus, markers=m) for c, bw, m in blocks]
    text = "".join(texts)
    lines = text.split("\n")
    assert [x for part in split_lines(lines) for x in part] == lines
    r = parse(text)
    parts = r.collectives or [r]
    assert len(parts) == len(blocks)
    whole = [(x.size_bytes, x.busbw_gbps) for x in r.rows]
    assert [(x.size_bytes, x.busbw_gbps) for p in parts for x in p.rows] == whole
    assert [len(p.rows) for p in parts] == [len(parse(t).rows) for t in texts]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_BLOCK, min_size=2, max_size=4), st.sampled_from([(("gpu-m01",), 8), (("gpu-m01", "gpu-m02"), 4)]))
def test_a_logs_verdict_is_the_worst_of_its_tests(blocks, where):
    hosts, gpus = where
    texts = [mx.block(c, round(bw, 2), hosts, gpus, markers=m) for c, bw, m in blocks]
    alone = [judge(t).status for t in texts]
    assert judge("".join(texts)).status == worst(alone)
