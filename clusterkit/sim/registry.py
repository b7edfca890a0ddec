"""Simulated faults and the generators that write evidence in real tools' formats.

Each family registers a generator that writes its files into a node's bundle
(healthy by default) and the faults it can inject. `clusterkit verify
--simulate` assigns every registered fault to a node, so each capability shows
what it finds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from clusterkit.evidence.bundle import BundleWriter


@dataclass
class SimNode:
    host: str
    index: int
    spec: dict[str, Any]          # declared hardware, as an inventory would give it
    faults: list[str] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)
    facts: dict[str, Any] = field(default_factory=dict)  # shared between generators (kernel, serials...)


@dataclass
class SimCluster:
    nodes: list[SimNode]
    seed: int
    rng: random.Random


@dataclass(frozen=True)
class Fault:
    name: str            # e.g. "gpu.row_remap_pending"
    description: str     # what a user should see it reported as
    order: int = 50      # lower faults are placed on lower-numbered nodes


NodeGenerator = Callable[["SimNode", "BundleWriter"], None]
ClusterGenerator = Callable[["SimCluster", "BundleWriter"], None]

FAULTS: dict[str, Fault] = {}
NODE_GENERATORS: dict[str, NodeGenerator] = {}
CLUSTER_GENERATORS: dict[str, ClusterGenerator] = {}


def fault(name: str, description: str, order: int = 50) -> None:
    FAULTS[name] = Fault(name, description, order)


def node_generator(family: str) -> Callable[[NodeGenerator], NodeGenerator]:
    def deco(func: NodeGenerator) -> NodeGenerator:
        NODE_GENERATORS[family] = func
        return func

    return deco


def cluster_generator(family: str) -> Callable[[ClusterGenerator], ClusterGenerator]:
    """Writes `_cluster/` evidence (multi-node tests) after every node exists."""

    def deco(func: ClusterGenerator) -> ClusterGenerator:
        CLUSTER_GENERATORS[family] = func
        return func

    return deco
