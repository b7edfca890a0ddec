"""Triage: what to fix first, and which findings follow from one cause.

Every problem of a run (a finding of a failing or warning check, a bad check
without findings, a node that was not reached) is ranked by severity and by
impact: a node or GPU lost comes before data corruption, before a failed part,
before degraded performance, before a counter or a version drift. Findings of
one node that follow from one cause are grouped under it, with the others
named as its consequences instead of repeated:

- explicit causes (`CAUSES`): a wedged driver, no GPU found, a GPU that fell
  off the bus, an uncorrectable ECC error, a fabric manager behind its driver,
  a failed PSU;
- otherwise findings that name the same part (GPU n, an HCA, the switch port at
  the far end of a link) are one group, headed by the worst of them. Cluster
  findings about one node's link (fabric.links) join that node's group.

Pure functions of a RunResult; the table, history and burn-in read the order from here.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Iterable

from clusterkit.results import CheckResult, Finding, NodeResult, RunResult

SEVERITY_ORDER = {"fail": 0, "error": 1, "warn": 2, "info": 3}

# Impact tiers, first matching code glob wins; lower is worse.
TIER_NAMES = ("node or GPU lost", "data corruption or a failed core part", "a part failing",
              "degraded performance", "counter or drift")
_TIERS: tuple[tuple[str, int], ...] = (
    ("NODE_*", 0), ("GPU_DRIVER_HUNG", 0), ("GPU_NOT_FOUND", 0), ("GPU_COUNT_LOW", 0), ("GPU_UNREADABLE", 0),
    ("GPU_XID_79", 0), ("POWER_GPU_DROPPED", 0), ("STACK_DRIVER_NOT_LOADED", 0),
    ("NCCL_VALIDATION_FAILED", 1), ("GPU_ECC_UNCORRECTABLE", 1), ("GPU_ROW_REMAP_*", 1),
    ("GPU_REMAPPED_ROWS_LIMIT", 1), ("GPU_RETIRED_PAGES_LIMIT", 1), ("GPU_XID_48", 1), ("GPU_XID_95", 1),
    ("HOST_MCE_HARDWARE_ERROR", 1), ("HOST_EDAC_UNCORRECTED", 1), ("HOST_FS_ERROR", 1),
    ("GPU_FABRIC_MANAGER_NOT_RUNNING", 1), ("GPU_FABRIC_NOT_READY", 1), ("GPU_FABRIC_MANAGER_SUSPECTED", 1),
    ("GPU_NVLINK_DOWN", 1), ("POWER_NODE_DELIVERY", 1),
    ("POWER_PSU_REDUNDANCY_LOST", 1), ("FABRIC_PORT_DOWN", 1), ("FABRIC_HCA_MISSING", 1),
    ("FABRIC_INTERFACE_MISSING", 1),
    ("*_MISMATCH", 2), ("GPU_XID_*", 2), ("POWER_PSU_*", 2), ("POWER_BRAKE_*", 2), ("GPU_CLOCK_HW_*", 2),
    ("GPU_PCIE_GEN_DEGRADED", 2), ("HOST_PCIE_WIDTH_DEGRADED", 2), ("GPU_DCGM_DIAG_FAIL", 2),
    ("HOST_PCIE_AER_UNCORRECTED", 2), ("FABRIC_LINK_BAD", 2),
    ("FABRIC_PORT_RATE_LOW", 2), ("IB_LINK_DOWNED_INCREASED", 2), ("FABRIC_LINK_FLAPS_KERNEL_LOG", 2),
    ("FABRIC_CARRIER_CHANGES", 2), ("ETH_LINK_DOWN_EVENTS_INCREASED", 2), ("FABRIC_RX_LOS", 2), ("SWITCH_*", 2),
    ("BMC_HUNG", 2), ("PROBE_TIMEOUT", 2), ("COLLECTION_CUT_SHORT", 2), ("HOST_DISK_LOW", 2),
    ("*_INCREASED", 4), ("*_BER_*", 4), ("*_DRIFT", 4), ("TREND_*", 4), ("*_SATURATED", 4), ("*_HISTORY", 4),
    ("*_PERSISTENCE_OFF", 4), ("HOST_PCIE_AER_CORRECTED", 4),
)
DEFAULT_TIER = 3


def tier(code: str) -> int:
    for pattern, t in _TIERS:
        if fnmatch.fnmatchcase(code, pattern):
            return t
    return DEFAULT_TIER


@dataclass(frozen=True)
class Cause:
    """Findings matching `causes` on a node head a group; those matching `follows` on the same node
    (and the same part when `same_part`) are its consequences. A follow pattern is
    `[check_glob:]CODE_GLOB[~text]`: text, when given, must appear in the finding."""

    name: str
    causes: tuple[str, ...]
    follows: tuple[str, ...]
    same_part: bool = False


CAUSES: tuple[Cause, ...] = (
    Cause("the NVIDIA driver hangs", ("GPU_DRIVER_HUNG",),
          ("GPU_*", "NCCL_*", "POWER_*", "STACK_DRIVER_NOT_LOADED", "gpu.*:*", "nccl.*:*", "power.*:*")),
    Cause("no GPU found", ("GPU_NOT_FOUND",),
          ("GPU_*", "NCCL_*", "POWER_STEP_NOT_RUN", "POWER_GPU_DROPPED", "gpu.*:*", "nccl.*:*", "power.step:*")),
    Cause("a GPU fell off the bus", ("GPU_XID_79",),
          ("GPU_UNREADABLE", "GPU_COUNT_LOW", "POWER_GPU_DROPPED", "GPU_XID_*", "GPU_NVLINK_DOWN", "GPU_DCGM_DIAG_*",
           "NCCL_*", "nccl.*:*")),
    Cause("an uncorrectable ECC error", ("GPU_ECC_UNCORRECTABLE",),
          ("GPU_ROW_REMAP_PENDING", "GPU_XID_48", "GPU_XID_63", "GPU_XID_64", "GPU_XID_94", "GPU_XID_95",
           "GPU_DCGM_DIAG_*", "GPU_PAGE_RETIREMENT_PENDING", "GPU_RETIRED_PAGES_LIMIT", "GPU_REMAPPED_ROWS_LIMIT"),
          same_part=True),
    Cause("the fabric manager is not at the driver's version", ("GPU_FABRIC_MANAGER_VERSION_MISMATCH",),
          ("GPU_FABRIC_MANAGER_*", "STACK_VERSION_DRIFT~fabric",
           "GPU_FABRIC_NOT_READY", "GPU_P2P_NOT_NVLINK", "GPU_NVLINK_DOWN")),
    Cause("a power supply failed", ("POWER_PSU_FAILED",),
          ("POWER_PSU_*", "POWER_NODE_DELIVERY", "POWER_BRAKE_*", "GPU_CLOCK_HW_POWER_SLOWDOWN")),
)

# What to do about a node that was not reached (it has no check to carry an action).
_NODE_ENTRIES = {
    "unreachable": ("NODE_UNREACHABLE", "check that the node is powered on, on the network and runs sshd (the "
                                        "message says what failed), then rerun on it with --limit"),
    "error": ("NODE_LOGIN_FAILED", "fix the SSH access the message names (user, key, host key), then rerun on it "
                                   "with --limit"),
}
_NOT_COLLECTED = ("NODE_NOT_COLLECTED", "rerun on this node with --limit (and a longer --deadline if the deadline "
                                        "cut it)")


@dataclass
class Problem:
    """One line of "What to fix"."""

    host: str | None            # None: the cluster as a whole
    check: str                  # check id; "" for a node that was not reached
    severity: str               # fail | error | warn
    code: str
    text: str                   # the headline
    action: str | None = None
    finding: Finding | None = None
    parts: frozenset[str] = frozenset()

    @property
    def rank(self) -> tuple[int, int, int]:
        bad = 0 if self.severity in ("fail", "error") else 1
        return bad, tier(self.code), SEVERITY_ORDER.get(self.severity, 3)

    def matches(self, pattern: str) -> bool:
        """`[check_glob:]CODE_GLOB[~text]`."""
        text = None
        if "~" in pattern:
            pattern, text = pattern.split("~", 1)
        check_glob, _, code_glob = pattern.rpartition(":")
        if check_glob and not fnmatch.fnmatchcase(self.check, check_glob):
            return False
        if not fnmatch.fnmatchcase(self.code, code_glob):
            return False
        return text is None or text.lower() in self.text.lower()


@dataclass
class Group:
    """A cause and what follows from it, on one node (or the cluster)."""

    cause: Problem
    follows: list[Problem] = field(default_factory=list)
    name: str | None = None       # the explicit cause's name, when a rule grouped it

    @property
    def host(self) -> str | None:
        return self.cause.host

    @property
    def severity(self) -> str:
        return min((p.severity for p in [self.cause, *self.follows]), key=lambda s: SEVERITY_ORDER.get(s, 3))

    @property
    def rank(self) -> tuple[int, int, int]:
        return min(p.rank for p in [self.cause, *self.follows])

    def consequences(self) -> list[str]:
        """`CODE (check)` per consequence, repeated ones counted."""
        seen: dict[str, int] = {}
        for p in self.follows:
            key = f"{p.code} ({p.check})" if p.check else p.code
            seen[key] = seen.get(key, 0) + 1
        return [k if n == 1 else f"{k} x{n}" for k, n in seen.items()]


_GPU = re.compile(r"^GPU (\d+)\b")
_LINK = re.compile(r"^link (\S+) (\S+)")                       # fabric.links: "link HOST DEV port N <-> PEER"
_DEVICE = re.compile(r"^([A-Za-z][A-Za-z0-9]*_?\d+)\b")         # mlx5_3, ibp6s0, eth2
_PEER = re.compile(r"<?-> (.+? port \d+)")


def _parts(component: str) -> frozenset[str]:
    """What physical part a finding names: `gpu:3`, `dev:mlx5_1`, `peer:<switch> port 7`."""
    keys = set()
    m = _GPU.match(component)
    if m:
        keys.add(f"gpu:{m.group(1)}")
    link = _LINK.match(component)
    dev = _DEVICE.match(link.group(2) if link else component)
    if dev and not m:
        keys.add(f"dev:{dev.group(1)}")
    peer = _PEER.search(component)
    if peer:
        keys.add(f"peer:{peer.group(1)}")
    return frozenset(keys)


def _check_problems(host: str | None, c: CheckResult) -> list[Problem]:
    if c.status not in ("fail", "error", "warn"):
        return []
    shown = [f for f in c.findings if f.severity != "info"]
    if not shown:
        return [Problem(host, c.id, c.status, c.id.upper().replace(".", "_"), c.summary)]
    out = []
    for f in shown:
        where = host
        link = _LINK.match(f.component or "")
        if host is None and link:          # a cluster verdict about one node's link: that node's problem
            where = link.group(1)
        out.append(Problem(where, c.id, f.severity, f.code, f.headline(), f.action, f, _parts(f.component or "")))
    return out


def problems(run: RunResult) -> list[Problem]:
    """Every problem of the run, unsorted."""
    out: list[Problem] = []
    for n in run.nodes:
        out += node_entry(n)
        for c in n.checks:
            out += _check_problems(n.host, c)
    known = {n.host for n in run.nodes}
    for c in run.cluster_checks:
        out += [p if p.host in known else Problem(None, p.check, p.severity, p.code, p.text, p.action, p.finding,
                                                   p.parts)
                for p in _check_problems(None, c)]
    return out


def node_entry(n: NodeResult) -> list[Problem]:
    """The entry for a node that was not reached or whose collection was cut short without checks."""
    if n.outcome == "ok" or n.checks:
        return []
    code, action = _NODE_ENTRIES.get(n.outcome, _NOT_COLLECTED)
    return [Problem(n.host, "", "error", code, f"{n.outcome}: {n.message or 'no evidence collected'}", action)]


def group(items: Iterable[Problem]) -> list[Group]:
    """Cause groups, worst first."""
    by_host: dict[str | None, list[Problem]] = {}
    for p in items:
        by_host.setdefault(p.host, []).append(p)
    groups: list[Group] = []
    for host_items in by_host.values():
        groups += _group_host(sorted(host_items, key=lambda p: p.rank))
    return sorted(groups, key=lambda g: (g.rank, g.host or "~", g.cause.check, g.cause.code))


def _group_host(items: list[Problem]) -> list[Group]:
    left = list(items)
    groups: list[Group] = []
    for rule in CAUSES:
        for head in [p for p in left if any(p.matches(c) for c in rule.causes)]:
            if head not in left:
                continue
            left.remove(head)
            follows = [p for p in left if any(p.matches(f) for f in rule.follows)
                       and (not rule.same_part or p.parts & head.parts)]
            for p in follows:
                left.remove(p)
            groups.append(Group(head, follows, rule.name))
    # the rest: one group per part that several findings name (worst first heads it)
    while left:
        head = left.pop(0)
        members, keys = [], set(head.parts)
        grew = True
        while grew:
            grew = False
            for p in list(left):
                # one event seen by two sources (an SXid in the kernel log and in fabric manager's log)
                if p.parts & keys or (p.code == head.code and p.check != head.check):
                    members.append(p)
                    keys |= p.parts
                    left.remove(p)
                    grew = True
        groups.append(Group(head, members))
    return groups


def triage(run: RunResult) -> list[Group]:
    return group(problems(run))


def worst_by_host(groups: list[Group]) -> dict[str | None, Group]:
    """Each node's worst group (groups come worst first)."""
    out: dict[str | None, Group] = {}
    for g in groups:
        out.setdefault(g.host, g)
    return out


def node_order(run: RunResult, groups: list[Group] | None = None) -> list[NodeResult]:
    """Failing nodes first (the worst problem first), then warning, then passing; inventory order within."""
    worst = worst_by_host(groups if groups is not None else triage(run))
    bucket = {"fail": 0, "error": 0, "warn": 1}

    def key(item: tuple[int, NodeResult]) -> tuple:
        i, n = item
        g = worst.get(n.host)
        return bucket.get(n.status, 2), g.rank if g is not None else (9, 9, 9), i

    return [n for _, n in sorted(enumerate(run.nodes), key=key)]
