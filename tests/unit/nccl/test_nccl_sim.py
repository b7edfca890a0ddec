"""Simulated nccl evidence: each fault is found, named and placed on the right node."""

from __future__ import annotations

import json
import random

from clusterkit.evidence.bundle import Bundle, BundleWriter
from clusterkit.parsers.nccl_tests import parse
from clusterkit.sim.registry import CLUSTER_GENERATORS, FAULTS, NODE_GENERATORS, SimCluster, SimNode
from nccl_helpers import analyze, check_of

SPEC = {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8, "ib_devices": [f"mlx5_{r}" for r in range(8)],
        "ib_rate_gbps": 400}


def build(tmp_path, faults: dict[int, list[str]], n: int = 12, seed: int = 5):
    nodes = [SimNode(f"gpu{i:02d}", i, dict(SPEC), faults.get(i, []), random.Random(seed * 100 + i)) for i in range(n)]
    for node in nodes:
        w = BundleWriter(tmp_path / node.host, node.host, simulated=True, declared=node.spec)
        NODE_GENERATORS["nccl"](node, w)
        w.finish()
    w = BundleWriter(tmp_path / "_cluster", "_cluster", simulated=True)
    CLUSTER_GENERATORS["nccl"](SimCluster(nodes, seed, random.Random(seed)), w)
    w.finish()
    return analyze([Bundle.open(tmp_path / x.host) for x in nodes], cluster=Bundle.open(tmp_path / "_cluster"))


def test_faults_are_registered():
    assert {"nccl.slow_node", "nccl.slow_rail", "nccl.validation_errors"} <= set(FAULTS)


def test_healthy_cluster_passes_without_localization(tmp_path):
    run = build(tmp_path, {})
    assert run.status == "pass", [(c.id, c.summary) for n in run.nodes for c in n.checks if c.status != "pass"]
    assert not (tmp_path / "_cluster/nccl/localize.json").exists()
    text = (tmp_path / "gpu00/nccl/all_reduce_perf.txt").read_text()
    r = parse(text)
    assert r.ranks == 8 and r.max_size_bytes == 8 << 30 and r.tests_version


def test_each_fault_is_named_on_its_node(tmp_path):
    run = build(tmp_path, {2: ["nccl.slow_node"], 5: ["nccl.slow_rail"], 7: ["nccl.validation_errors"]})
    multi = next(c for c in run.cluster_checks if c.id == "nccl.multi_node")
    assert multi.status == "fail"
    assert check_of(run, "gpu02", "nccl.localize").findings[0].code == "NCCL_NODE_SLOW"
    nic = check_of(run, "gpu05", "nccl.localize").findings[0]
    assert nic.code == "NCCL_NIC_SLOW" and nic.component == "gpu05 mlx5_5"
    bad = check_of(run, "gpu07", "nccl.single_node")
    assert bad.status == "fail" and bad.findings[0].code == "NCCL_VALIDATION_FAILED"
    accused = {c.host for n in run.nodes for c in n.checks if c.id == "nccl.localize"}
    assert accused == {"gpu02", "gpu05"}
    doc = json.loads((tmp_path / "_cluster/nccl/localize.json").read_text())
    assert doc["simulated"] is True and doc["round_count"] <= 2 * 2 * 4 + 2
