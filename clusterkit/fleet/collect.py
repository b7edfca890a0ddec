"""Collect: run the suite's probes on every host over SSH into evidence bundles.

Each host works through its commands on its own (one SSH connection, commands
in `Command.phase` order); no host waits for another except where a
measurement needs it: when some host has load tests (`PHASE_LOAD`), every host
takes its "before" counter snapshots before any load starts, and its "after"
snapshots once the load is over everywhere, so the snapshots bracket the load
window on all nodes. A host that misses such a sync point is not waited for
beyond the command it is running (its probe timeout): it is left out of the
window, goes on alone, and its bundle says so (`missed_sync`).

Each host gets `out_dir/<host>/` (a `BundleWriter` bundle): stdout as printed at
`Command.path` (for `output="files-json"`, the files of the JSON object it
prints), and one `commands` entry per command with the controller's clock
around it (`local_start_epoch`/`local_end_epoch`, for clock-skew analysis).
Stdout is stored when the command exited 0 or printed something; a tool that is
not installed (exit 127) leaves only its entry, which is evidence, not an error.
A command that hangs is killed at its timeout and recorded; the commands of
the host that need the same driver are `skipped` (clusterkit.fleet.hostrun).
A host's bundle is written as soon as the host is done.

Host outcomes: `ok`; `unreachable` and `error` (could not connect or log in: no
evidence); `timeout` (a command overran its timeout, or the run's deadline ran
out); `interrupted` (SIGINT/SIGTERM, see `StopRequest`). Hosts that were reached
keep all the evidence gathered, and record each command they did not run as
`not_run` with the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

from clusterkit.analysis import ProfileResolver
from clusterkit.checks.registry import CHECKS
from clusterkit.evidence.bundle import BundleWriter, bundle_dir
from clusterkit.fleet.hostkeys import KnownHosts
from clusterkit.fleet.hostrun import HostRun, Progress, connect
from clusterkit.fleet.ssh import Deadline, SshSession, Target, target_for
from clusterkit.inventory import HostSpec
from clusterkit.plugins import load_all
from clusterkit.probes.registry import PHASE_AFTER, PHASE_LOAD, Command, ProbeEnv, probes_for
from clusterkit.suites import Suite

log = logging.getLogger(__name__)

__all__ = ["FleetOptions", "StopRequest", "Progress", "collect_bundles", "collect_planned", "plan_commands",
           "safe_progress"]

# Sessions stay open between segments up to this many hosts (one socket and one
# paramiko thread each); larger runs reconnect after each sync point instead.
KEEP_OPEN_MAX_HOSTS = 256
# At a sync point a late host is waited for until the command it runs ends (done or
# killed at its timeout), plus this: a healthy host that is a little behind still makes it.
SYNC_SLACK_S = 3.0
POLL_S = 0.2
CUT_GRACE_S = 2.0         # cut short: how long commands in flight get to be recorded
# The sync points between segments: before the load window, after it.
SYNC_POINTS = {1: "the start of the load window", 2: "the end of the load window"}


class StopRequest:
    """Ask a collection to stop (the CLI's SIGINT/SIGTERM handler does): hosts not done are cut
    short with outcome `interrupted`, their evidence kept and their bundles written. Setting
    it only sets a flag, so it is safe from a signal handler."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout_s: float) -> bool:
        return self._event.wait(timeout_s)


@dataclass
class FleetOptions:
    known_hosts: Optional[Path] = None          # None: ~/.ssh/known_hosts (+ /etc/ssh/ssh_known_hosts)
    accept_new_host_keys: bool = False          # record unknown keys (never replaces a changed one)
    connect_timeout_s: float = 10.0
    deadline_s: float = 1800.0                  # the whole run, all phases
    concurrency: int = 64
    identity_file: Optional[Path] = None        # default key where the inventory names none
    user: Optional[str] = None                  # default user where the inventory names none
    probe_timeout_s: Optional[float] = None     # caps every probe's own timeout (--probe-timeout)

    _PATHS = ("known_hosts", "identity_file")

    def to_json(self) -> dict[str, Any]:
        """Plain values (paths as text), e.g. for a burn-in to resume with the same options."""
        d = asdict(self)
        return {k: str(v) if k in self._PATHS and v is not None else v for k, v in d.items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "FleetOptions":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**{k: Path(v) if k in cls._PATHS and v is not None else v for k, v in known.items()})


def plan_commands(hosts: list[HostSpec], suite: Suite, profiles: ProfileResolver) -> dict[str, list[Command]]:
    """The commands each host runs: the probes that produce what the suite's checks need."""
    load_all()
    needs = sorted({n for cid in suite.check_ids if cid in CHECKS for n in CHECKS[cid].needs})
    probes = [p for p in probes_for(needs) if p.name not in suite.skip_probes]
    plans: dict[str, list[Command]] = {}
    for spec in hosts:
        profile = profiles.get(profiles.name_for(spec))
        cmds: list[Command] = []
        for p in probes:
            cmds += p.plan(ProbeEnv(spec.name, spec, profile, suite.params_for(p.name)))
        plans[spec.name] = cmds
    return plans


def collect_bundles(hosts: list[HostSpec], suite: Suite, profiles: ProfileResolver, out_dir: Path,
                    options: FleetOptions, progress: Progress | None = None,
                    stop: StopRequest | None = None) -> list[Path]:
    """Collect every host's evidence into `out_dir/<host>/`, then the cluster-wide steps the
    suite asks for (multi-node NCCL) into `out_dir/_cluster/`; returns the bundle directories."""
    from clusterkit.fleet.cluster_steps import run_cluster_steps

    deadline = Deadline(options.deadline_s)
    dirs = collect_planned(hosts, plan_commands(hosts, suite, profiles), out_dir, options, progress, stop=stop,
                           deadline=deadline, meta=suite.bundle_meta())
    cluster = run_cluster_steps(hosts, suite, profiles, out_dir, options, stop=stop, deadline=deadline,
                                progress=safe_progress(progress))
    return dirs + ([cluster] if cluster is not None else [])


def _segment_of(phase: int) -> int:
    return 0 if phase < PHASE_LOAD else 1 if phase < PHASE_AFTER else 2


def collect_planned(hosts: list[HostSpec], plans: dict[str, list[Command]], out_dir: Path,
                    options: FleetOptions, progress: Progress | None = None, *, stop: StopRequest | None = None,
                    deadline: Deadline | None = None, meta: dict[str, Any] | None = None) -> list[Path]:
    """`collect_bundles` for explicit per-host commands; `meta`: more for each bundle.json (the suite)."""
    return _Collection(hosts, plans, out_dir, options, safe_progress(progress), stop or StopRequest(),
                       deadline or Deadline(options.deadline_s), meta or {}).run()


class _Collection:
    """The coordinator: hands hosts to a bounded pool of workers, holds them at the sync
    points around the load window (never past a late host's command in flight), and
    cuts everyone short on the deadline or a stop request."""

    def __init__(self, hosts: list[HostSpec], plans: dict[str, list[Command]], out_dir: Path,
                 options: FleetOptions, say: Progress, stop: StopRequest, deadline: Deadline,
                 meta: dict[str, Any]):
        self.options, self.say, self.stop, self.deadline = options, say, stop, deadline
        self.known = KnownHosts(options.known_hosts, accept_new=options.accept_new_host_keys)
        windowed = any(_segment_of(c.phase) == 1 for cmds in plans.values() for c in cmds)
        self.runs: list[HostRun] = []
        for spec in hosts:
            cmds = sorted(plans.get(spec.name, []), key=lambda c: c.phase)   # stable: plan order within a phase
            writer = BundleWriter(bundle_dir(out_dir, spec.name), spec.name, declared=spec.declared())
            writer.meta.update(meta)
            self.runs.append(HostRun(
                spec, target_for(spec, user=options.user, identity_file=options.identity_file, inventory=hosts),
                writer, cmds, [_segment_of(c.phase) if windowed else 0 for c in cmds]))
        self.keep_open = len(self.runs) <= KEEP_OPEN_MAX_HOSTS
        self.cond = threading.Condition()
        self.pool = ThreadPoolExecutor(max_workers=max(1, min(options.concurrency, len(self.runs) or 1)),
                                       thread_name_prefix="clusterkit-ssh")

    # -- coordinator ---------------------------------------------------------------------
    def run(self) -> list[Path]:
        segments = sorted({s for h in self.runs for s in h.segments}) or [0]
        try:
            for i, seg in enumerate(segments):
                self.say("", "phase", "collecting" if seg == 0 else "load window" if seg == 1 else
                         "after the load window")
                todo = self._start_round(seg, first=i == 0)
                sync = SYNC_POINTS.get(segments[i + 1]) if i + 1 < len(segments) else None
                if not self._wait_round(todo, sync):
                    break
            self._wait_all()
        except BaseException as e:   # Ctrl-C without a handler (library use): cut everyone, keep the evidence
            self.stop.request("Ctrl-C" if isinstance(e, KeyboardInterrupt) else f"{type(e).__name__}: {e}")
            self._cut_all()
            raise
        finally:
            if self.stop.requested or self.deadline.expired:
                self._cut_all()
            self.pool.shutdown(wait=False, cancel_futures=True)
        return [h.writer.root for h in self.runs]

    def _start_round(self, seg: int, first: bool) -> list[HostRun]:
        with self.cond:
            todo = [h for h in self.runs if not h.final and not h.running and
                    (h.next_segment() is not None and h.next_segment() <= seg or first and not h.commands)]
            for h in todo:
                h.allowed = max(h.allowed, seg)
                h.running, h.started, h.sync_deadline = True, False, None
        for h in todo:
            self.pool.submit(self._work, h)
        return todo

    def _wait_round(self, todo: list[HostRun], sync: str | None) -> bool:
        """Until every host of the round reached the sync point or was left out of it; False when
        the run is cut (deadline, stop)."""
        while True:
            with self.cond:
                if self.stop.requested or self.deadline.expired:
                    return False
                busy = [h for h in self.runs if h.running]
                # someone of this round waits at the sync point: only then can a host be late for it
                waiting = any(not h.running and not h.final and h.has_work for h in todo)
                if sync is not None and waiting:
                    busy = [h for h in busy if not self._leave_out(h, sync)]
                if not busy:
                    return True
                self.cond.wait(POLL_S)

    def _leave_out(self, h: HostRun, sync: str) -> bool:
        """Others wait at the sync point: is `h` too late to be waited for? (cond held)"""
        if h.allowed >= 2:
            return True          # left out before: it goes on alone
        if not h.started:
            return False         # still queued for a worker: not late
        now = time.monotonic()
        if h.sync_deadline is None:
            cur = h.current
            h.sync_deadline = (cur[1] + cur[2] if cur is not None else now) + SYNC_SLACK_S
        if now < h.sync_deadline:
            return False
        what = f" (still running `{h.current[0]}`)" if h.current is not None else ""
        h.missed.append(f"left out of {sync}: the other hosts waited for it until its command in flight "
                        f"ended{what}; it went on alone")
        h.allowed = 2
        log.debug("%s left out of %s", h.name, sync)
        return True

    def _wait_all(self) -> None:
        while True:
            with self.cond:
                if self.stop.requested or self.deadline.expired:
                    return
                if not any(h.running for h in self.runs):
                    break
                self.cond.wait(POLL_S)
        for h in self.runs:              # hosts held at a sync point that never came (all segments ran)
            self._finish(h)

    def _cut_all(self) -> None:
        """Deadline or stop: every host not done is cut short and its bundle written now."""
        reason = self.stop.reason
        if reason is not None:
            for h in self.runs:
                if not h.final:
                    h.cut("interrupted", f"collection interrupted ({reason})" if h.connected else
                          f"collection interrupted ({reason}) before this host was reached")
                    h.close()    # ends its command in flight; the worker sees the host is cut
        # commands in flight end within moments (killed, or cut at the deadline): let their
        # workers record them, but never wait on a worker that is still connecting
        end = time.monotonic() + CUT_GRACE_S
        with self.cond:
            while any(h.running and h.started and (h.current is None or h.current[0] != "connect")
                      for h in self.runs):
                left = end - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, POLL_S))
        for h in self.runs:
            if not h.final:
                h.cut("timeout", f"the run's deadline ({self.deadline.seconds:g} s) ran out" if h.connected else
                      f"the run's deadline ({self.deadline.seconds:g} s) ran out before this host's turn")
            self._finish(h)

    # -- one host, on a worker ----------------------------------------------------------
    def _work(self, h: HostRun) -> None:
        with self.cond:
            h.started = True
        try:
            if not h.connected and self.deadline.expired:
                h.cut("timeout", f"the run's deadline ({self.deadline.seconds:g} s) ran out before this host's "
                                 f"turn")
            while not h.lost and not h.final and not self.stop.requested:
                with self.cond:
                    seg = h.next_segment()
                    if seg is not None and seg > h.allowed:
                        break            # at a sync point
                if not connect(h, self._open, self.options.connect_timeout_s, self.say) or seg is None:
                    break
                h.run_next(self._limit, self.deadline.remaining, self.deadline.seconds, self.say)
        except Exception as e:  # a bug must cost one host, not the run
            log.debug("host %s crashed", h.name, exc_info=True)
            h.cut("error", f"internal error while collecting: {type(e).__name__}: {e} (report this as a "
                           f"clusterkit bug)")
        finally:
            if h.lost or not h.has_work:
                self._finish(h)
            if h.final or not self.keep_open:
                h.close()
            with self.cond:
                h.running = False
                self.cond.notify_all()

    def _open(self, target: Target) -> SshSession:
        return SshSession.open(target, self.known, connect_timeout_s=self.options.connect_timeout_s,
                               deadline=self.deadline)

    def _limit(self, cmd: Command) -> float:
        cap = self.options.probe_timeout_s
        return min(cmd.timeout_s, cap) if cap else cmd.timeout_s

    def _finish(self, h: HostRun) -> None:
        t = h.target
        h.finish(self.say, {"address": t.endpoint.address, "port": t.endpoint.port, "user": t.endpoint.user,
                            "jump_hosts": [str(j) for j in t.jumps], "become": t.become})


def safe_progress(progress: Progress | None) -> Progress:
    """`progress`, or a no-op; a callback that raises is logged, never stops the work."""
    def say(host: str, step: str, state: str) -> None:
        if progress is not None:
            try:
                progress(host, step, state)
            except Exception:  # a display problem must not stop collection
                log.debug("progress callback failed", exc_info=True)
    return say
