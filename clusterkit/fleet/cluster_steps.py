"""Cluster-wide steps, after every node's phases: the multi-node NCCL run and, when it
is low, the localization rounds. They are launched from the first reachable GPU node
over SSH (mpirun or srun run there, as a user would), or by another `launch` (the srun
launcher starts them from where it runs: clusterkit.fleet.srun), and written to `_cluster/`.
Nodes that did not finish cleanly (unreachable, timed out, interrupted) are left out.
The steps end with the run's deadline or a stop request, like the node commands:
what ran is recorded, and `_cluster/bundle.json` says why the rest did not run.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import threading
import time
from pathlib import Path
from typing import Any, Callable

from clusterkit.evidence.bundle import CLUSTER_DIR, Bundle, BundleWriter, bundle_dir
from clusterkit.fleet.ssh import Deadline, HostFailure, KnownHosts, SshSession, target_for
from clusterkit.inventory import HostSpec
from clusterkit.parsers import ParseError
from clusterkit.parsers.nccl_tests import ALL_REDUCE, parse as parse_nccl
from clusterkit.suites import Suite

log = logging.getLogger(__name__)

MULTI_NODE_PATH = ALL_REDUCE.path   # in the `_cluster/` bundle
CLUSTER_CHECKS = ("nccl.multi_node", "nccl.localize")
HOSTFILE_PLACEHOLDER = "HOSTFILE"   # replaced by the temporary file made on the launch node


def wanted(suite: Suite) -> bool:
    return any(c in suite.check_ids for c in CLUSTER_CHECKS)


def _remote_runner(session: SshSession, deadline: Deadline):
    """A `run_plan` stand-in that runs a LaunchPlan on the first node, within the run's deadline."""
    from clusterkit.fleet.nccl_runner import RunRecord

    def run(plan, *, timeout_s: float = 900.0, hostfile_path: str | None = None, cwd: str | None = None) -> RunRecord:
        left = deadline.remaining()
        if left <= 0:
            return RunRecord(plan, f"Test failure: not run: the run's deadline ({deadline.seconds:g} s) ran out\n",
                             None, 0.0, "timeout")
        timeout_s = min(timeout_s, left)
        made = None
        if plan.hostfile:
            # a new private file (mktemp: exclusive creation, 0600, unpredictable name), removed after
            wrote = session.run(["sh", "-c", 'f=$(mktemp "${TMPDIR:-/tmp}/clusterkit-hosts.XXXXXXXXXX") && '
                                             'cat > "$f" && printf %s "$f"'], timeout_s=30,
                                stdin=plan.hostfile.encode())
            made = wrote.stdout.decode(errors="replace").strip()
            if wrote.exit_code != 0 or not made.startswith("/"):
                return RunRecord(plan, f"Test failure: cannot write a hostfile on {session.target.name}: "
                                       f"{wrote.stderr.decode(errors='replace')}\n", wrote.exit_code,
                                 wrote.duration_s, "error")
            plan = plan.with_hostfile(made)
        try:
            argv = ["env", *[f"{k}={v}" for k, v in sorted(plan.env.items())], *plan.argv]
            res = session.run(argv, timeout_s=timeout_s)
        finally:
            if made:
                with contextlib.suppress(HostFailure):   # connection lost: the file stays in the node's temp dir
                    session.run(["rm", "-f", "--", made], timeout_s=30)
        text = (res.stdout + res.stderr).decode(errors="replace")
        return RunRecord(plan, text, res.exit_code, res.duration_s, res.status)

    return run


def _until_stopped(stop: Any, session: SshSession) -> Callable[[], None]:
    """Close `session` (ending its command) when `stop` is requested; returns the canceller."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            if stop is not None and stop.requested:
                session.close()
                return

    threading.Thread(target=watch, name="clusterkit-cluster-stop", daemon=True).start()
    return done.set


# first GPU node -> (a `run_plan` stand-in, what closes it); HostFailure when nothing can be launched
Launch = Callable[[HostSpec], "tuple[Callable[..., Any], Callable[[], None]]"]


def _ssh_launch(hosts: list[HostSpec], options: Any, deadline: Deadline, stop: Any) -> Launch:
    """Steps run on the first GPU node over SSH, ended by a stop request."""
    def launch(first: HostSpec) -> tuple[Callable[..., Any], Callable[[], None]]:
        known = KnownHosts(options.known_hosts, accept_new=options.accept_new_host_keys)
        session = SshSession.open(target_for(first, user=options.user, identity_file=options.identity_file,
                                             inventory=hosts), known, connect_timeout_s=options.connect_timeout_s,
                                  deadline=deadline)
        release = _until_stopped(stop, session)

        def close() -> None:
            release()
            session.close()

        return _remote_runner(session, deadline), close

    return launch


def run_cluster_steps(hosts: list[HostSpec], suite: Suite, profiles, out_dir: Path, options, *, stop: Any = None,
                      deadline: Deadline | None = None, progress: Callable[[str, str, str], None] | None = None,
                      launch: Launch | None = None) -> Path | None:
    """Write `_cluster/` evidence for the selected cluster checks; None when none is selected."""
    if not wanted(suite):
        return None
    deadline = deadline or Deadline(options.deadline_s)
    if progress is not None:
        progress("", "phase", "cluster steps (multi-node NCCL)")
    from clusterkit.checks.nccl import network_expectation
    from clusterkit.fleet.nccl_runner import multi_node_plan, run_localization
    from clusterkit.probes.nccl import options as nccl_options

    w = BundleWriter(out_dir / CLUSTER_DIR, CLUSTER_DIR)
    gpu_nodes = [h for h in hosts if h.gpu_count > 0 and Bundle.open(bundle_dir(out_dir, h.name)).outcome == "ok"]
    w.meta["nodes"] = [h.name for h in gpu_nodes]
    if len(gpu_nodes) < 2:
        w.meta["note"] = "multi-node NCCL test not run: fewer than two reachable GPU nodes"
        w.finish()
        return w.root
    cut = ("collection interrupted" if stop is not None and stop.requested else
           f"the run's deadline ({deadline.seconds:g} s) ran out" if deadline.expired else None)
    if cut:
        w.meta["note"] = f"multi-node NCCL test not run: {cut}"
        w.finish()
        return w.root
    first = gpu_nodes[0]
    profile = profiles.get(profiles.name_for(first))
    opts = nccl_options(suite.params_for("nccl.multi_node"))
    try:
        run, close = (launch or _ssh_launch(hosts, options, deadline, stop))(first)
    except HostFailure as e:
        w.meta["note"] = f"multi-node NCCL test not run: launch node {first.name}: {e.message}"
        w.finish()
        return w.root
    try:
        plan = multi_node_plan(gpu_nodes, profile, opts, hostfile_path=HOSTFILE_PLACEHOLDER)
        t0 = time.time()
        rec = run(plan, timeout_s=opts.timeout_s)
        w.write(MULTI_NODE_PATH, rec.stdout)
        w.record(MULTI_NODE_PATH, shlex.join(rec.plan.argv), rec.exit_code, rec.duration_s, status=rec.status,
                 local_start_epoch=t0, local_end_epoch=time.time(), launched_on=first.name, **rec.plan.record())
        if "nccl.localize" not in suite.check_ids:
            return w.root
        try:
            measured = parse_nccl(rec.stdout)
        except ParseError:
            return w.root  # nothing measured: nccl.multi_node reports why
        exp = network_expectation(profile, first.declared(), measured)
        gate = measured.busbw_large_gbps()
        if gate is not None and gate >= exp.warn and not measured.wrong_total:
            return w.root
        for path, text in run_localization(gpu_nodes, profile, opts, expected_full_gbps=exp.expected,
                                           run=run).items():
            w.write(path, text)
        return w.root
    except HostFailure as e:   # the launch node was lost, or the run was interrupted
        why = "collection interrupted" if stop is not None and stop.requested else e.message
        w.meta["note"] = f"multi-node NCCL test cut short: {why}"
        return w.root
    finally:
        close()
        w.finish()
