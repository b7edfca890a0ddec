"""Simulated all_reduce_perf evidence, faults, and the bandwidth model localization runs against.

Healthy values follow the node's profile (its expected single-node busbw and reference
network); the model limits a group to its slowest member, plus noise (and, rarely, one
outright noisy run) from the node's/cluster's seeded RNG.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clusterkit.fleet.localize import GroupTest, LocalizeConfig, TestOutcome, localize
from clusterkit.parsers.nccl_tests import ALL_REDUCE, NCCL_LOCALIZE
from clusterkit.sim.registry import cluster_generator, fault, node_generator
from clusterkit.node_scripts.allreduce_bench import _fmt  # nccl-tests' number format, defined once

if TYPE_CHECKING:
    from clusterkit.evidence.bundle import BundleWriter
    from clusterkit.sim.registry import SimCluster, SimNode

fault("nccl.slow_node", "one node at about half the multi-node bandwidth: NCCL_BUSBW_LOW on the cluster run, "
                        "NCCL_NODE_SLOW from localization", order=60)
fault("nccl.slow_rail", "one NIC (rail) of one node at a third of its rate: NCCL_NIC_SLOW naming that NIC", order=61)
fault("nccl.validation_errors", "wrong all-reduce results on one node: NCCL_VALIDATION_FAILED", order=62)

GIB = 1 << 30
NCCL_VERSION = (2, 23, 4)
SLOW_NODE_FACTOR = 0.5
SLOW_RAIL_FACTOR = 0.33


def _profile_figures(gpu_model: str | None) -> tuple[float, int, float]:
    """(single-node busbw, NICs, NIC rate) the healthy node reaches, from its profile."""
    from clusterkit.profiles import load_profile

    try:
        p = load_profile(gpu_model or "h100-sxm5-80gb")
    except Exception:
        p = load_profile("h100-sxm5-80gb")
    single = float(p.get("nccl.single_node_expected_busbw_gbps") or 478.0)
    return single, int(p.get("nccl.multi_node_nic_count") or 8), float(p.get("nccl.multi_node_nic_rate_gbps") or 400.0)


def _gpu_name(gpu_model: str | None) -> str:
    return {"a100-sxm4-40gb": "NVIDIA A100-SXM4-40GB", "a100-sxm4-80gb": "NVIDIA A100-SXM4-80GB",
            "h100-pcie-80gb": "NVIDIA H100 PCIe"}.get(gpu_model or "", "NVIDIA H100 80GB HBM3")


# ---- the bandwidth model --------------------------------------------------------------------


@dataclass
class BandwidthModel:
    """Group busbw = healthy figure x the slowest member's factor x noise."""

    full_gbps: float                    # healthy multi-node busbw (all GPUs, all rails)
    rail_gbps: float                    # healthy one-rail, one-GPU-per-node busbw
    rails: int
    rng: random.Random
    node_factor: dict[str, float] = field(default_factory=dict)
    rail_factor: dict[tuple[str, int], float] = field(default_factory=dict)
    noise_sd: float = 0.015
    flaky_probability: float = 0.01     # one run in a hundred measures 40% low for no lasting reason
    seconds_per_full_test: float = 20.0
    seconds_per_rail_test: float = 12.0

    def member(self, host: str, rail: int | None) -> float:
        f = self.node_factor.get(host, 1.0)
        if rail is None:
            return f * min([self.rail_factor.get((host, r), 1.0) for r in range(self.rails)] or [1.0])
        return f * self.rail_factor.get((host, rail), 1.0)

    def measure(self, test: GroupTest) -> TestOutcome:
        base = self.full_gbps if test.rail is None else self.rail_gbps
        value = base * min(self.member(h, test.rail) for h in test.nodes)
        value *= max(0.5, self.rng.gauss(1.0, self.noise_sd))
        if self.rng.random() < self.flaky_probability:
            value *= 0.6
        n = len(test.nodes)
        secs = (self.seconds_per_full_test if test.rail is None else self.seconds_per_rail_test) + 1.5 * math.log2(max(2, n))
        return TestOutcome(value, secs)

    def tester(self, tests: list[GroupTest]) -> list[TestOutcome]:
        return [self.measure(t) for t in tests]


# ---- all_reduce_perf text in the current nccl-tests format --------------------------------------


def allreduce_text(hosts: list[str], gpus_per_node: int, gpu_name: str, plateau_gbps: float,
                   rng: random.Random, *, wrong_from_bytes: int | None = None, min_bytes: int = 8,
                   max_bytes: int = 8 * GIB, latency_us: float = 25.0) -> str:
    """An all_reduce_perf output whose busbw rises with size to `plateau_gbps`."""
    ranks = len(hosts) * gpus_per_node
    nver = NCCL_VERSION[0] * 10000 + NCCL_VERSION[1] * 100 + NCCL_VERSION[2]
    lines = [
        f"# nccl-tests version 2.16.3 nccl-headers={nver} nccl-library={nver}",
        "# Collective test starting: all_reduce_perf",
        f"# nThread 1 nGpus {gpus_per_node if len(hosts) == 1 else 1} minBytes {min_bytes} maxBytes {max_bytes} "
        "step: 2(factor) warmup iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0",
        "#",
        "# Using devices",
    ]
    pid0 = rng.randint(2000, 90000)
    for ni, h in enumerate(hosts):
        for g in range(gpus_per_node):
            rank = ni * gpus_per_node + g
            pid = pid0 if len(hosts) == 1 else pid0 + rank
            bus = [0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb][g % 8]
            lines.append(f"#  Rank {rank:2d} Group  0 Pid {pid:6d} on {h:>10s} device {g:2d} [0000:{bus:02x}:00] {gpu_name}")
    lines += [
        "#",
        "#                                                              out-of-place                       in-place          ",
        "#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong",
        "#        (B)    (elements)                               (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)       ",
    ]
    factor = 2.0 * (ranks - 1) / ranks if ranks > 1 else 1.0
    size = min_bytes
    busbws: list[float] = []
    errors = 0
    while size <= max_bytes:
        row = f"{size:12d}  {size // 4:12d}     float     sum      -1"
        for _side in ("oop", "ip"):
            peak_alg = plateau_gbps / factor
            t_us = latency_us + size / (peak_alg * 1e3)
            t_us *= max(0.8, rng.gauss(1.0, 0.01))
            alg = size / (t_us * 1e3)
            bus = alg * factor
            wrong = 0
            if wrong_from_bytes is not None and size >= wrong_from_bytes:
                wrong = rng.randint(1, max(1, size // 4 // 1000))
                errors += 1
            busbws.append(bus)
            row += f"  {_fmt(t_us, 7)}  {_fmt(alg, 6)}  {_fmt(bus, 6)}  {wrong:6d}"
        lines.append(row)
        size *= 2
    avg = sum(busbws) / len(busbws)
    lines += [
        f"# Out of bounds values : {errors} {'FAILED' if errors else 'OK'}",
        f"# Avg bus bandwidth    : {avg:.4g} ",
        "#",
        "# Collective test concluded: all_reduce_perf",
        "#",
    ]
    return "\n".join(lines) + "\n"


@node_generator("nccl")
def node_evidence(node: "SimNode", writer: "BundleWriter") -> None:
    single, _nics, _rate = _profile_figures(node.spec.get("gpu_model"))
    gpus = int(node.spec.get("gpu_count") or 8)
    plateau = single * node.rng.gauss(1.0, 0.006)
    wrong_from = 64 * (1 << 20) if "nccl.validation_errors" in node.faults else None
    text = allreduce_text([node.host], gpus, _gpu_name(node.spec.get("gpu_model")), plateau, node.rng,
                          wrong_from_bytes=wrong_from)
    writer.put(ALL_REDUCE, text, command=f"all_reduce_perf -b 8 -e 8G -f 2 -g {gpus} -c 1", duration_s=95.0,
               env={"NCCL_DEBUG": "VERSION"})


def model_for(cluster: "SimCluster", rng: random.Random) -> tuple[BandwidthModel, list[str]]:
    """The cluster's bandwidth model, with the faults the nodes carry."""
    first = cluster.nodes[0].spec if cluster.nodes else {}
    _single, nics, rate = _profile_figures(first.get("gpu_model"))
    devices = list(first.get("ib_devices") or [f"mlx5_{i}" for i in range(nics)])
    rate = float(first.get("ib_rate_gbps") or rate)
    per_nic = rate / 8.0 * 0.94
    model = BandwidthModel(full_gbps=per_nic * len(devices), rail_gbps=per_nic, rails=len(devices), rng=rng)
    for n in cluster.nodes:
        if "nccl.slow_node" in n.faults:
            model.node_factor[n.host] = SLOW_NODE_FACTOR
        if "nccl.slow_rail" in n.faults:
            r = n.index % max(1, len(devices))
            model.rail_factor[(n.host, r)] = SLOW_RAIL_FACTOR
    return model, devices


@cluster_generator("nccl")
def cluster_evidence(cluster: "SimCluster", writer: "BundleWriter") -> None:
    if len(cluster.nodes) < 2:
        return
    rng = random.Random(f"nccl-{cluster.seed}")
    model, devices = model_for(cluster, rng)
    hosts = [n.host for n in cluster.nodes]
    first = cluster.nodes[0].spec
    gpus = int(first.get("gpu_count") or 8)
    full = model.measure(GroupTest(tuple(hosts))).busbw_gbps or 0.0
    bad_data = any("nccl.validation_errors" in n.faults for n in cluster.nodes)
    text = allreduce_text(hosts, gpus, _gpu_name(first.get("gpu_model")), full, rng,
                          wrong_from_bytes=64 * (1 << 20) if bad_data else None, latency_us=60.0)
    writer.put(ALL_REDUCE, text, duration_s=140.0,
               command=f"mpirun -np {len(hosts) * gpus} --hostfile hosts all_reduce_perf -b 8 -e 8G -f 2 -g 1 -c 1",
               env={"NCCL_DEBUG": "VERSION", "NCCL_IB_HCA": "=" + ",".join(devices)})
    if full < 0.9 * model.full_gbps:
        verdict = localize(hosts, model.tester, LocalizeConfig(
            expected_full_gbps=model.full_gbps, expected_rail_gbps=model.rail_gbps, rails=devices))
        doc: dict[str, Any] = verdict.to_dict()
        doc["simulated"] = True
        import json

        writer.put(NCCL_LOCALIZE, json.dumps(doc, indent=2, sort_keys=True) + "\n", duration_s=verdict.total_time_s,
                   command="clusterkit localization (simulated bandwidth model)")
