"""Probes: the commands `collect` runs on a node, and where their output goes.

A probe plans zero or more `Command`s for a host (an ethtool per declared
interface, say). Collection runs the commands of the selected checks' `needs`,
grouped in phases so that, for instance, counter snapshots are taken on every
node before and after a traffic test.
Commands are argv lists: the fleet quotes every element before it reaches a
remote shell, so inventory values are never pasted into a command line.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

from clusterkit.evidence.kinds import Kind

if TYPE_CHECKING:
    from clusterkit.inventory import HostSpec
    from clusterkit.profiles import Profile

# Phases order the work on every node (all nodes finish a phase before the next).
PHASE_INFO = 10        # static facts: versions, topology, inventories of parts
PHASE_BEFORE = 20      # counter snapshots before the test window
PHASE_LOAD = 50        # tests that put load on the node (power step, NCCL)
PHASE_AFTER = 80       # counter snapshots after the test window, logs


@dataclass
class Command:
    path: str                         # bundle path for stdout
    argv: list[str]
    timeout_s: float = 60.0
    root: bool = False                # run through `sudo -n` when the host allows become
    stdin: bytes | None = None        # e.g. a node-side Python script for `python3 -`
    output: Literal["file", "files-json"] = "file"  # files-json: stdout maps bundle paths to text
    phase: int = PHASE_INFO
    optional: bool = True             # a missing tool is evidence ("not installed"), not an error


@dataclass
class ProbeEnv:
    host: str
    spec: "HostSpec | None"
    profile: "Profile | None"
    params: dict[str, Any] = field(default_factory=dict)   # the suite's [params."<probe>"]


@dataclass(frozen=True)
class Probe:
    name: str
    paths: tuple[str, ...]            # bundle paths (globs) it can produce
    plan: Callable[[ProbeEnv], list[Command]]

    def wanted_by(self, needs: list[str]) -> bool:
        return any(fnmatch.fnmatchcase(p, n) or fnmatch.fnmatchcase(n, p)
                   for p in self.paths for n in needs)


PROBES: dict[str, Probe] = {}


def probe(name: str, *, kinds: Sequence[Kind]) -> Callable:
    """Register `plan(env) -> list[Command]` as a probe producing evidence of `kinds`."""

    def deco(func: Callable[[ProbeEnv], list[Command]]) -> Callable:
        PROBES[name] = Probe(name, tuple(k.glob for k in kinds), func)
        return func

    return deco


def simple_probe(name: str, kind: Kind, *, timeout_s: float = 30.0, root: bool = False,
                 phase: int = PHASE_INFO) -> None:
    """A probe that runs the kind's own command once."""
    argv = kind.argv()

    def plan(env: ProbeEnv) -> list[Command]:
        return [Command(kind.path, list(argv), timeout_s=timeout_s, root=root, phase=phase)]

    PROBES[name] = Probe(name, (kind.path,), plan)


def probes_for(needs: list[str]) -> list[Probe]:
    return [p for p in PROBES.values() if p.wanted_by(needs)]
