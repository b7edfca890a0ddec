"""Collection through Slurm: one `srun` step runs `clusterkit check --local --collect-only` on every node.

For clusters in production, where operators reach nodes through the scheduler (a maintenance
reservation, a partition) rather than SSH from one host. The head writes what the nodes need into
the run directory, which must be on a file system every node mounts:

    <run dir>/.clusterkit/inventory.json   the chosen hosts' declared hardware (no addresses, users or keys)
    <run dir>/.clusterkit/srun.log         what srun and the tasks printed

and each node writes its bundle to `<run dir>/<host>/`, as SSH collection would. The head then
analyzes the bundles with the cluster-scope checks like any run directory.

A node Slurm would not start a step on (down, drained, not responding) is left out of the step and
reported unreachable with its Slurm state and reason; a node that wrote no bundle during the step is
reported unreachable with what srun said about it ("srun: error: node3: task 2: Exited with exit code
127" and the task's own lines), or `timeout` when the step ran out of time.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shlex
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from clusterkit.errors import ConfigError
from clusterkit.evidence.bundle import META, BundleWriter
from clusterkit.fleet.local import run_command
from clusterkit.inventory import HostSpec, Inventory
from clusterkit.slurm import NodeState, Slurm, SlurmError

if TYPE_CHECKING:
    from clusterkit.fleet.cluster_steps import Launch

LAUNCH_DIR = ".clusterkit"
SRUN_TERM_GRACE_S = 10.0       # srun gets SIGTERM (it cancels the step) this long before SIGKILL
MAX_MESSAGE_CHARS = 1500
# declared hardware the node-side check reads from the inventory (never connection details or secrets)
_DECLARED_VARS = ("gpu_model", "gpu_count", "ib_devices", "ib_rate_gbps", "roce_interfaces", "roce_rate_gbps",
                  "bmc_host", "rack", "rail", "scheduler", "slurm_node")

Progress = Callable[[str, str, str], None]


@dataclass
class SrunOptions:
    shared_dir: Path | None = None        # temporary run directories go here (a file system all nodes mount)
    nodelist: str | None = None           # Slurm node names or ranges: node[01-16]
    partition: str | None = None
    reservation: str | None = None
    clusterkit: str = "clusterkit"        # how the nodes start clusterkit, as a shell would split it
    deadline_s: float = 1800.0            # the whole step, waiting for the allocation included

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["shared_dir"] = str(self.shared_dir) if self.shared_dir is not None else None
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "SrunOptions":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if known.get("shared_dir") is not None:
            known["shared_dir"] = Path(known["shared_dir"])
        return cls(**known)

    def srun_args(self) -> list[str]:
        """Where the step may run: what srun itself is told."""
        return ([f"--partition={self.partition}"] if self.partition else []) + \
               ([f"--reservation={self.reservation}"] if self.reservation else [])


def slurm_name(spec: HostSpec) -> str:
    return spec.slurm_node or spec.name


def select_hosts(inventory: Inventory | None, opts: SrunOptions, slurm: Slurm | None = None) -> list[HostSpec]:
    """The step's hosts: the inventory's, narrowed to --nodelist (else the reservation's or partition's
    nodes) when given; without an inventory, those Slurm nodes themselves (nothing declared)."""
    slurm = slurm or Slurm()
    try:
        names = (slurm.hostnames(opts.nodelist) if opts.nodelist else
                 slurm.reservation_nodes(opts.reservation) if opts.reservation else
                 slurm.partition_nodes(opts.partition) if opts.partition else None)
    except SlurmError as e:
        raise ConfigError(f"--launcher srun: cannot list the nodes: {e}") from None
    if inventory is None:
        if not names:
            raise ConfigError("--launcher srun needs an inventory (-i) or the nodes: --nodelist, --partition or "
                              "--reservation" + (" (it names no node)" if names == [] else ""))
        return [HostSpec(name=n, address=n, scheduler="slurm", slurm_node=n) for n in names]
    hosts = inventory.targets()
    if names is not None:
        wanted = set(names)
        hosts = [h for h in hosts if slurm_name(h) in wanted]
        if not hosts:
            raise ConfigError(f"{inventory.source}: no inventory host is one of the Slurm nodes "
                              f"{', '.join(names[:8])}{' ...' if len(names) > 8 else ''} (matched by slurm_node, "
                              f"else by name)")
    # reached through Slurm: multi-node tests are srun steps too
    return [dataclasses.replace(h, scheduler="slurm") for h in hosts]


def _inventory_json(hosts: list[HostSpec]) -> dict[str, Any]:
    """A YAML-plugin inventory (JSON is YAML) with each host's declared hardware only."""
    out: dict[str, Any] = {}
    for h in hosts:
        d = h.declared()
        out[h.name] = {k: d[k] for k in _DECLARED_VARS if d.get(k) not in (None, "", [], 0)}
        out[h.name]["slurm_node"] = slurm_name(h)
    return {"all": {"hosts": out}}


def _unreachable(out_dir: Path, spec: HostSpec, outcome: str, message: str) -> Path:
    w = BundleWriter(out_dir / spec.name, spec.name, declared=spec.declared())
    w.set_outcome(outcome, message[:MAX_MESSAGE_CHARS])
    w.finish(transport={"launcher": "srun", "slurm_node": slurm_name(spec)})
    return w.root


def _not_launchable(st: NodeState | None, node: str) -> str:
    if st is None:
        return f"Slurm does not know node '{node}' (sinfo lists no such node): set slurm_node in the inventory"
    state = st.state + st.flags
    return (f"Slurm node {node} is {state}" + (f" (reason: {st.reason})" if st.reason else "")
            + ": srun cannot start a step there; resume it, or check it over SSH (--launcher ssh)")


def _said_about(node: str, text: str) -> list[str]:
    """srun's lines naming `node`, and the labelled lines of its task(s) ('2: clusterkit: not found')."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    named = [l for l in lines if re.search(rf"(?<![\w.-]){re.escape(node)}(?![\w.-])", l)]
    tasks = {t for l in named for m in re.finditer(r"\btasks? ([\d,\-]+)", l) for t in _task_ids(m[1])}
    own = [l for l in lines if (m := re.match(r"(\d+): ", l)) and int(m[1]) in tasks]
    return named + own


def _task_ids(spec: str) -> set[int]:
    ids: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            ids.update(range(int(lo), int(hi or lo) + 1))
    return ids


def _fresh_bundle(d: Path, since: float) -> bool:
    """A bundle.json this step wrote (not one an earlier run left in a kept directory)."""
    try:
        return (d / META).stat().st_mtime >= since - 1.0
    except OSError:
        return False


def srun_launch(opts: SrunOptions, deadline: Any) -> "Launch":
    """Cluster-wide steps (multi-node NCCL, localization rounds) as srun steps started from here, in the
    same partition or reservation as the collection step (and in the same allocation when this runs
    inside one: sbatch or salloc on the reservation)."""
    from clusterkit.fleet.nccl_runner import LaunchPlan, RunRecord, run_plan

    def launch(first: HostSpec) -> tuple[Callable[..., RunRecord], Callable[[], None]]:
        def run(plan: LaunchPlan, *, timeout_s: float = 900.0, hostfile_path: str | None = None,
                cwd: str | None = None) -> RunRecord:
            if plan.argv[:1] == ["srun"]:
                plan = dataclasses.replace(plan, argv=["srun", *opts.srun_args(), *plan.argv[1:]])
            return run_plan(plan, timeout_s=max(1.0, min(timeout_s, deadline.remaining())),
                            hostfile_path=hostfile_path, cwd=cwd)

        return run, lambda: None

    return launch


def collect_srun(hosts: list[HostSpec], suite: str, profile: str | None, out_dir: Path, opts: SrunOptions,
                 progress: Progress | None = None, slurm: Slurm | None = None) -> list[Path]:
    """Collect every host's bundle into `out_dir/<host>/` with one srun step, then the suite's cluster-wide
    steps (multi-node NCCL) into `out_dir/_cluster/`; returns the bundle directories."""
    from clusterkit.analysis import ProfileResolver
    from clusterkit.fleet.cluster_steps import run_cluster_steps
    from clusterkit.fleet.collect import FleetOptions
    from clusterkit.fleet.ssh import Deadline
    from clusterkit.suites import load_suite

    deadline = Deadline(opts.deadline_s)
    say = progress or (lambda host, step, state: None)
    slurm = slurm or Slurm()
    out_dir = out_dir.resolve()
    try:
        states = slurm.nodes(*sorted({slurm_name(h) for h in hosts}))
    except SlurmError as e:
        raise ConfigError(f"--launcher srun: cannot read the nodes' states: {e}") from None
    dirs: dict[str, Path] = {}
    launch: list[HostSpec] = []
    for h in hosts:
        st = states.get(slurm_name(h))
        if st is not None and st.launchable:
            launch.append(h)
        else:
            dirs[h.name] = _unreachable(out_dir, h, "unreachable", _not_launchable(st, slurm_name(h)))
            say(h.name, "done", "unreachable")
    if launch:
        dirs.update(_step(launch, suite, profile, out_dir, opts, say))
    cluster = run_cluster_steps(hosts, load_suite(suite), ProfileResolver(profile), out_dir,
                                FleetOptions(deadline_s=opts.deadline_s), deadline=deadline, launch=srun_launch(opts, deadline))
    return [dirs[h.name] for h in hosts] + ([cluster] if cluster is not None else [])


def _step(hosts: list[HostSpec], suite: str, profile: str | None, out_dir: Path, opts: SrunOptions,
          say: Progress) -> dict[str, Path]:
    meta = out_dir / LAUNCH_DIR
    meta.mkdir(parents=True, exist_ok=True)
    inventory = meta / "inventory.json"
    inventory.write_text(json.dumps(_inventory_json(hosts), indent=1) + "\n")
    suite_arg = str(Path(suite).resolve()) if Path(suite).suffix == ".toml" and Path(suite).is_file() else suite
    # the nodes' probes must end before the step does, with time to write their bundles
    budget = max(1.0, opts.deadline_s - max(10.0, 0.1 * opts.deadline_s))
    nodes = [slurm_name(h) for h in hosts]
    try:
        node_cmd = shlex.split(opts.clusterkit)
    except ValueError as e:
        raise ConfigError(f"--node-clusterkit '{opts.clusterkit}': {e}") from None
    argv = ["srun", "--job-name=clusterkit-collect", f"--nodes={len(nodes)}", f"--ntasks={len(nodes)}",
            "--ntasks-per-node=1", f"--nodelist={','.join(nodes)}", *opts.srun_args(), "--kill-on-bad-exit=0",
            "--label", f"--time={math.ceil(opts.deadline_s / 60) + 1}",
            *node_cmd, "check", "--local", "--collect-only", str(out_dir), "--inventory", str(inventory),
            "--suite", suite_arg, "--budget", f"{budget:g}", *(["--profile", profile] if profile else [])]
    for h in hosts:
        say(h.name, "srun", "start")
    t0 = time.time()
    res = run_command(argv, timeout_s=opts.deadline_s, env=dict(os.environ), term_grace_s=SRUN_TERM_GRACE_S)
    said = res.stdout.decode(errors="replace") + res.stderr.decode(errors="replace")
    (meta / "srun.log").write_text(f"$ {res.command}\n# exit {res.exit_code}, {res.status}, {res.duration_s:.1f} s"
                                   f"{' (' + res.message + ')' if res.message else ''}\n{said}")
    out: dict[str, Path] = {}
    for h, node in zip(hosts, nodes):
        d = out_dir / h.name
        if _fresh_bundle(d, t0):
            out[h.name] = d
            say(h.name, "done", "ok")
            continue
        about = _said_about(node, said)
        if res.exit_code == 127 and not about:
            about = [f"srun is not installed here: {said.strip() or res.command}"]
        elif not about:   # srun failed for the whole step (allocation refused...): its own last lines
            about = [l for l in said.splitlines() if l.startswith("srun:")][-5:]
        if res.status == "timeout":
            msg = (f"no bundle from {node} before the step's deadline ({opts.deadline_s:g} s; srun was stopped)"
                   + (": " + "; ".join(about) if about else ""))
            out[h.name] = _unreachable(out_dir, h, "timeout", msg)
            say(h.name, "done", "timeout")
        else:
            msg = f"no bundle from {node} after the srun step (exit {res.exit_code})" + \
                  (": " + "; ".join(about) if about else "")
            out[h.name] = _unreachable(out_dir, h, "unreachable", msg)
            say(h.name, "done", "unreachable")
    return out
