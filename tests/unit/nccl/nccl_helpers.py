"""Helpers for the nccl checks' tests: run checks over in-memory bundles."""

from __future__ import annotations

import random

from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.evidence.bundle import Bundle
from clusterkit.results import RunResult
from clusterkit.sim.nccl import allreduce_text
from clusterkit.suites import Suite

NCCL_CHECKS = ["nccl.single_node", "nccl.multi_node", "nccl.fleet", "nccl.localize"]


def node_bundle(host: str, text: str, declared: dict | None = None) -> Bundle:
    return Bundle.virtual(host, {"nccl/all_reduce_perf.txt": text}, {"host": host, "declared": declared or {}})


def analyze(bundles: list[Bundle], *, cluster: Bundle | None = None, profile: str | None = None,
            loose: bool = False, checks: list[str] | None = None) -> RunResult:
    return analyze_bundles(bundles, Suite("t", checks or NCCL_CHECKS), profiles=ProfileResolver(profile),
                           cluster_bundle=cluster, loose=loose)


def single_text(host: str, busbw: float, *, gpus: int = 8, name: str = "NVIDIA H100 80GB HBM3",
                seed: int = 0, **kw) -> str:
    return allreduce_text([host], gpus, name, busbw, random.Random(seed), **kw)


def check_of(run: RunResult, host: str, check_id: str):
    for n in run.nodes:
        if n.host == host:
            for c in n.checks:
                if c.id == check_id:
                    return c
    raise AssertionError(f"no {check_id} on {host}")


def judge(text: str, profile: str | None = "h100-sxm5-80gb", loose: bool = False, declared: dict | None = None):
    """nccl.single_node's result for one node whose all_reduce_perf.txt is `text`."""
    return check_of(analyze([node_bundle("g1", text, declared)], profile=profile, loose=loose), "g1",
                    "nccl.single_node")


def codes(c) -> list[tuple[str, str]]:
    return [(f.code, f.severity) for f in c.findings]


def only(c, code: str):
    (f,) = [f for f in c.findings if f.code == code]
    return f
