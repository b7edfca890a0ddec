"""Bad-node/NIC localization on simulated clusters: clusterkit vs exhaustive pairwise vs even/odd pairing.

Each scenario: N nodes (8 rails of NDR 400G), k bad nodes (half speed) and one bad link (one
node's NIC at a third of its rate), 1.5% noise and a 1% chance per test of a run that
measures 40% low for no lasting reason. Every method drives the same BandwidthModel.

Prints per method and scenario: rounds, total test time (sum over rounds of the longest
test), tests run, found rate (every culprit named, the bad link as its NIC), false
accusations (healthy node or NIC accused) and the goal 2k*log2(N)+2 rounds
(k = culprits = bad nodes + 1 link).

    python benchmarks/localize.py [--seeds 40] [--sizes 64,256,1024]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from clusterkit.fleet.localize import GroupTest, LocalizeConfig, localize  # noqa: E402
from clusterkit.sim.nccl import SLOW_NODE_FACTOR, SLOW_RAIL_FACTOR, BandwidthModel  # noqa: E402

RAILS = [f"mlx5_{i}" for i in range(8)]
PER_NIC = 400 / 8 * 0.94


def scenario(n: int, bad_nodes: int, seed: int) -> tuple[BandwidthModel, set[str], tuple[str, int]]:
    rng = random.Random(seed * 7919 + n * 31 + bad_nodes)
    hosts = [f"n{i:04d}" for i in range(n)]
    chosen = rng.sample(hosts, bad_nodes + 1)
    model = BandwidthModel(PER_NIC * 8, PER_NIC, 8, random.Random(seed))
    for h in chosen[:bad_nodes]:
        model.node_factor[h] = SLOW_NODE_FACTOR
    link = (chosen[-1], rng.randrange(8))
    model.rail_factor[link] = SLOW_RAIL_FACTOR
    return model, set(chosen[:bad_nodes]), link


class Counted:
    """Wraps the model's tester to count rounds, tests and time the way clusterkit's verdict does."""

    def __init__(self, model: BandwidthModel):
        self.model = model
        self.rounds = 0
        self.tests = 0
        self.time_s = 0.0

    def __call__(self, tests: list[GroupTest]) -> list:
        out = self.model.tester(tests)
        self.rounds += 1
        self.tests += len(tests)
        self.time_s += max(o.duration_s for o in out)
        return out


def run_clusterkit(model: BandwidthModel, hosts: list[str], group: int) -> tuple[int, float, int, set, set]:
    cfg = LocalizeConfig(group_nodes=group, expected_full_gbps=model.full_gbps,
                         expected_rail_gbps=model.rail_gbps, rails=RAILS)
    v = localize(hosts, model.tester, cfg)
    nodes = {c.host for c in v.culprits if c.part == "node"}
    nics = {(c.host, r) for c in v.culprits if c.part == "nic" for r in c.rails}
    return len(v.rounds), v.total_time_s, v.tests, nodes, nics


def _judge(value: float | None, ref: float) -> bool:
    return value is not None and value >= 0.9 * ref


def run_pairwise(model: BandwidthModel, hosts: list[str]) -> tuple[int, float, int, set, set]:
    """Round-robin tournament: every pair once, N/2 concurrent pair tests per round (N-1 rounds)."""
    c = Counted(model)
    fails = {h: 0 for h in hosts}
    ring = list(hosts) + ([None] if len(hosts) % 2 else [])
    m = len(ring)
    for _ in range(m - 1):
        pairs = [(ring[i], ring[m - 1 - i]) for i in range(m // 2) if ring[i] and ring[m - 1 - i]]
        res = c([GroupTest(p) for p in pairs])
        for p, o in zip(pairs, res):
            if not _judge(o.busbw_gbps, model.full_gbps):
                for h in p:
                    fails[h] += 1
        ring = [ring[0], ring[-1]] + ring[1:-1]
    nodes = {h for h, f in fails.items() if f > (len(hosts) - 1) / 2}
    return c.rounds, c.time_s, c.tests, nodes, set()


def run_evenodd(model: BandwidthModel, hosts: list[str]) -> tuple[int, float, int, set, set]:
    """Pairs (0,1),(2,3).. then (1,2),(3,4)..: a node in two failing pairs is accused."""
    c = Counted(model)
    fails = {h: 0 for h in hosts}
    n = len(hosts)
    for off in (0, 1):
        pairs = [(hosts[(i + off) % n], hosts[(i + 1 + off) % n]) for i in range(0, n - 1, 2)]
        res = c([GroupTest(p) for p in pairs])
        for p, o in zip(pairs, res):
            if not _judge(o.busbw_gbps, model.full_gbps):
                for h in p:
                    fails[h] += 1
    return c.rounds, c.time_s, c.tests, {h for h, f in fails.items() if f >= 2}, set()


METHODS = {
    "clusterkit pairs-first": lambda m, h: run_clusterkit(m, h, 2),
    "clusterkit groups of 8": lambda m, h: run_clusterkit(m, h, 8),
    "clusterkit pure halving": lambda m, h: run_clusterkit(m, h, len(h)),
    "exhaustive pairwise": run_pairwise,
    "even/odd pairing": run_evenodd,
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--sizes", default="64,256,1024")
    ap.add_argument("--pairwise-seeds", type=int, default=3, help="seeds for the (slow) exhaustive baseline")
    a = ap.parse_args()
    print(f"{'method':26s} {'N':>5s} {'k':>2s} {'rounds':>7s} {'max':>4s} {'goal':>5s} {'test time':>10s} {'tests':>8s} "
          f"{'found':>6s} {'bad nodes found':>15s} {'false acc.':>10s} {'link as node':>12s}")
    for n in [int(x) for x in a.sizes.split(",")]:
        hosts = [f"n{i:04d}" for i in range(n)]
        for bad in (1, 2, 3, 4):
            k = bad + 1
            goal = 2 * k * math.log2(n) + 2
            for name, fn in METHODS.items():
                seeds = a.pairwise_seeds if name == "exhaustive pairwise" else a.seeds
                rounds, times, tests, found, false_acc, link_as_node, nodes_found = [], [], [], 0, 0, 0, 0.0
                t0 = time.perf_counter()
                for s in range(seeds):
                    model, bad_nodes, link = scenario(n, bad, s)
                    r, t, nt, nodes, nics = fn(model, hosts)
                    rounds.append(r)
                    times.append(t)
                    tests.append(nt)
                    if bad_nodes <= nodes and link in nics:
                        found += 1
                    healthy_nodes = nodes - bad_nodes - {link[0]}
                    healthy_nics = nics - {link}
                    false_acc += len(healthy_nodes) + len(healthy_nics)
                    link_as_node += link[0] in nodes
                    nodes_found += len(bad_nodes & nodes) / len(bad_nodes)
                wall = time.perf_counter() - t0
                print(f"{name:26s} {n:5d} {bad:2d} {statistics.mean(rounds):7.1f} {max(rounds):4d} {goal:5.0f} "
                      f"{statistics.mean(times) / 60:8.1f} m {statistics.mean(tests):8.0f} "
                      f"{found / seeds:6.0%} {nodes_found / seeds:15.0%} {false_acc / seeds:10.2f} {link_as_node / seeds:12.2f}"
                      f"   ({seeds} seeds, {wall:.1f} s)")
        print()


if __name__ == "__main__":
    main()
