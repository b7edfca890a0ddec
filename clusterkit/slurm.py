"""Slurm drain/resume for nodes that fail a burn-in.

Ownership is carried by the drain reason itself: clusterkit writes reasons that
start with `clusterkit:`, and only ever resumes a node whose current reason
starts with that prefix. A node drained or downed by anyone else is never
touched, whatever clusterkit found on it.

Every call is an argv list (no shell) with a timeout; `SLURM_CONF` and the rest
of the environment are passed through, so the same code talks to a test
cluster in a temp dir.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import Callable, Mapping

from clusterkit.errors import ConfigError

REASON_PREFIX = "clusterkit:"
_MAX_REASON = 200
# sinfo %T states that mean "out of service already"
_DRAINED = {"drained", "draining", "drain"}


@dataclass(frozen=True)
class NodeState:
    name: str
    state: str          # sinfo %T, lower case, without the trailing '*'/'~' flags
    reason: str         # "" when none
    flags: str = ""     # those flags: '*' not responding, '~' powered off, '#' powering up...

    @property
    def drained(self) -> bool:
        return self.state in _DRAINED or "drain" in self.state

    @property
    def launchable(self) -> bool:
        """Slurm would start a job step there now (not down, drained, failing, powered off or silent)."""
        bad = ("down", "drain", "fail", "unknown", "future", "power", "not_responding", "inval")
        # '$' (maintenance reservation), '@' (reboot pending) and '-' (planned) still take steps
        return not set(self.flags) & set("*~#%!^") and not any(b in self.state for b in bad)

    @property
    def ours(self) -> bool:
        return self.reason.startswith(REASON_PREFIX)


@dataclass(frozen=True)
class Action:
    node: str
    action: str   # drain | resume | keep | skip
    reason: str


class SlurmError(Exception):
    pass


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class Slurm:
    def __init__(self, *, env: Mapping[str, str] | None = None, timeout_s: float = 30.0,
                 bindir: str | None = None, runner: Runner = subprocess.run):
        self.env = dict(os.environ if env is None else env)
        self.timeout_s = timeout_s
        self.bindir = bindir
        self._run_cmd = runner

    def _cmd(self, tool: str, *args: str) -> str:
        exe = os.path.join(self.bindir, tool) if self.bindir else tool
        try:
            p = self._run_cmd([exe, *args], capture_output=True, text=True, timeout=self.timeout_s, env=self.env)
        except FileNotFoundError:
            raise ConfigError(f"--drain needs Slurm's {tool} on PATH") from None
        except subprocess.TimeoutExpired:
            raise SlurmError(f"{tool} {' '.join(args)}: no answer in {self.timeout_s:g} s") from None
        if p.returncode != 0:
            raise SlurmError(f"{tool} {' '.join(args)}: {(p.stderr or p.stdout).strip()}")
        return p.stdout

    def nodes(self, *names: str) -> dict[str, NodeState]:
        """Every node's state, or only these nodes' (one small query instead of the whole cluster)."""
        only = ["-n", ",".join(names)] if names else []
        out = self._cmd("sinfo", "-h", "-N", *only, "-o", "%N|%T|%E")
        return parse_sinfo(out)

    def hostnames(self, expr: str) -> list[str]:
        """`node[1-4],gpu7` -> its node names, as Slurm expands them."""
        return self._cmd("scontrol", "show", "hostnames", expr).split()

    def partition_nodes(self, partition: str) -> list[str]:
        return sorted(set(self._cmd("sinfo", "-h", "-N", "-p", partition, "-o", "%N").split()))

    def reservation_nodes(self, reservation: str) -> list[str]:
        out = self._cmd("scontrol", "show", "reservation", reservation)
        nodes = next((tok.split("=", 1)[1] for tok in out.split() if tok.startswith("Nodes=")), "")
        return self.hostnames(nodes) if nodes and nodes != "(null)" else []

    def drain(self, node: str, reason: str) -> None:
        self._cmd("scontrol", "update", f"nodename={node}", "state=drain", f"reason={reason}")

    def resume(self, node: str) -> None:
        self._cmd("scontrol", "update", f"nodename={node}", "state=resume")


def parse_sinfo(text: str) -> dict[str, NodeState]:
    """`sinfo -h -N -o '%N|%T|%E'` -> node -> state (a node listed per partition appears once)."""
    out: dict[str, NodeState] = {}
    for line in text.splitlines():
        parts = line.strip().split("|", 2)
        if len(parts) != 3 or not parts[0]:
            continue
        name, state, reason = parts
        reason = "" if reason.strip() == "none" else reason.strip()
        raw = state.strip().lower()
        bare = raw.rstrip("*~#!%$@^-")
        out.setdefault(name, NodeState(name, bare, reason, raw[len(bare):]))
    return out


def drain_reason(codes: list[str], detail: str) -> str:
    """`clusterkit: GPU_ROW_REMAP_PENDING,NCCL_BUSBW_LOW GPU 3 ...` (codes first: sinfo -R cuts at 20 chars)."""
    head = f"{REASON_PREFIX} {','.join(dict.fromkeys(codes)) or 'FAILED'}"
    text = f"{head} {' '.join(detail.split())}".strip()
    return text[:_MAX_REASON]


def plan(states: Mapping[str, NodeState], failed: Mapping[str, str], passed: set[str]) -> list[Action]:
    """What to do: drain failing nodes (reason given), resume our drained nodes that passed.

    `failed`: node -> drain reason; `passed`: nodes that passed every cycle.
    Nodes drained by someone else, and nodes Slurm doesn't know, are skipped.
    """
    actions: list[Action] = []
    for node in sorted(set(failed) | passed):
        st = states.get(node)
        if st is None:
            actions.append(Action(node, "skip", "not a Slurm node"))
        elif st.drained and not st.ours:
            actions.append(Action(node, "skip", f"drained by someone else: {st.reason or st.state}"))
        elif node in failed:
            if st.drained and st.reason == failed[node]:
                actions.append(Action(node, "keep", st.reason))
            else:
                actions.append(Action(node, "drain", failed[node]))
        elif st.drained and st.ours:
            actions.append(Action(node, "resume", st.reason))
    return actions


def apply(slurm: Slurm, actions: list[Action]) -> list[tuple[Action, str | None]]:
    """Carry out drain/resume actions; returns (action, error or None) for each."""
    done: list[tuple[Action, str | None]] = []
    for a in actions:
        err = None
        try:
            if a.action in ("drain", "resume"):
                # Re-read just before acting: an admin may have drained the node since the plan.
                st = slurm.nodes(a.node).get(a.node)
                if st is not None and st.drained and not st.ours:
                    a = Action(a.node, "skip", f"drained by someone else: {st.reason or st.state}")
            if a.action == "drain":
                slurm.drain(a.node, a.reason)
            elif a.action == "resume":
                slurm.resume(a.node)
        except SlurmError as e:
            err = str(e)
        done.append((a, err))
    return done


def settle_own_node(slurm: Slurm, node: str, reason: str | None) -> list[tuple[Action, str | None]]:
    """A node that checked itself (`clusterkit check --local --drain`): drain it with `reason`; when it
    passed (`reason` None), resume it only if clusterkit drained it. By the same rules as the burn-in:
    a drain by anyone else is never touched, a node Slurm does not know is skipped."""
    failed = {node: reason} if reason else {}
    return apply(slurm, plan(slurm.nodes(node), failed, set() if reason else {node}))
