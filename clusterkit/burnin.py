"""Burn-in: repeated verification cycles, each stored in history as soon as it returns.

A cycle is one pass of the suite over the fleet (or over the simulated
cluster, with a new seed per cycle). Its checks are committed one by one the
moment the cycle returns, and the run's progress is saved after them, so a
burn-in killed at any moment keeps every finished cycle and `--resume`
continues with the next one. After the last cycle the trend check reads the
history and its results are stored with this run; with `--drain` failing nodes
are drained after the cycle that found them, and nodes clusterkit drained
earlier are resumed when they passed every cycle of this run.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

from clusterkit.checks.burnin import Sample, evaluate_trends, watches
from clusterkit.history import History, parse_ts
from clusterkit.profiles import Profile
from clusterkit.results import CheckResult, NodeResult, RunResult, now_iso, worst
from clusterkit import slurm as slurm_mod

log = logging.getLogger(__name__)

_BAD = ("fail", "error")
# clusterkit's own trouble: never a reason to take a node out of service
NOT_HARDWARE = frozenset({"CHECK_CRASHED", "CHECK_TIMEOUT", "EVIDENCE_UNUSABLE", "INPUT_UNUSABLE"})


@dataclass
class BurninOptions:
    """Everything `--resume` needs to continue a run the same way (stored as JSON with the run)."""

    simulate: bool = False
    inventory: str | None = None
    nodes: int = 8
    seed: int = 0
    suite: str = "full"
    checks: str | None = None                          # --checks / --skip globs on check ids
    skip: str | None = None
    profile: str | None = None
    limit: str | None = None
    duration_s: float | None = None
    cycles: int | None = None
    drain: bool = False
    max_drain_fraction: float = 0.5
    ssh: dict[str, Any] = field(default_factory=dict)   # FleetOptions.to_json(): known_hosts, identity, timeouts
    srun: dict[str, Any] | None = None                  # SrunOptions.to_json() for --launcher srun
    pid: int = field(default_factory=os.getpid)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "BurninOptions":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


NodeSink = Callable[[NodeResult], None]
# cycle_fn(cycle, on_node): one pass over the fleet; on_node(node) as each node's checks are done
CycleFn = Callable[[int, NodeSink], RunResult]
EventFn = Callable[..., None]


def pipeline_cycle(opts: BurninOptions, on_event: EventFn | None = None) -> CycleFn:
    """One cycle = one pipeline run (simulated cluster with seed+cycle, or the inventory).

    With an inventory, the fleet's per-host progress is passed on as `host` events."""
    from clusterkit import pipeline
    from clusterkit.suites import load_suite, select_checks

    suite = select_checks(load_suite(opts.suite), opts.checks, opts.skip)
    if opts.simulate:
        return lambda c, on_node: pipeline.simulate_run(nodes=opts.nodes, seed=opts.seed + c, suite=suite,
                                                        profile=opts.profile, on_node=on_node)
    from clusterkit.fleet.collect import FleetOptions
    from clusterkit.fleet.srun import SrunOptions

    assert opts.inventory or opts.srun
    inventory = opts.inventory
    fleet = FleetOptions.from_json(opts.ssh)
    srun = SrunOptions.from_json(opts.srun) if opts.srun is not None else None

    def cycle(c: int, on_node: NodeSink) -> RunResult:
        def progress(host: str, step: str, state: str) -> None:
            if on_event is not None:
                on_event("host", cycle=c, host=host, step=step, state=state)

        return pipeline.verify_inventory(inventory, suite=suite, profile=opts.profile, limit=opts.limit,
                                         fleet_options=fleet, progress=progress, on_node=on_node, srun=srun)

    return cycle


def slurm_names(opts: BurninOptions) -> dict[str, str]:
    """Inventory host -> its Slurm node name (`slurm_node`, else the host name)."""
    if not opts.inventory:
        return {}
    from clusterkit.inventory import load_inventory

    inv, _ = load_inventory(opts.inventory, strict=False)
    return {h.name: h.slurm_node for h in inv.hosts if h.slurm_node}


def failing_codes(node: NodeResult) -> tuple[list[str], str]:
    """Hardware finding codes that made the node fail, and a one-line detail for a drain reason.

    Only `fail` verdicts count: an `error` (evidence unusable, a check that crashed or ran out
    of time) says clusterkit could not judge the node, never that the node is broken."""
    codes: list[str] = []
    detail = ""
    for c in node.checks:
        if c.status != "fail":
            continue
        bad = [f for f in c.findings if f.severity == "fail" and f.code not in NOT_HARDWARE]
        if not bad and any(f.code in NOT_HARDWARE for f in c.findings):
            continue
        codes += [f.code for f in bad] or [c.id.upper().replace(".", "_") + "_FAILED"]
        if not detail:
            detail = bad[0].headline() if bad else c.summary
    return codes, detail


@dataclass
class BurninSummary:
    run_id: int
    cycles_done: int
    status: str
    node_status: dict[str, str]
    trend: list[CheckResult]
    drains: list[tuple[slurm_mod.Action, str | None]]


class Burnin:
    def __init__(self, hist: History, run_id: int, opts: BurninOptions, cycle_fn: CycleFn, *,
                 trend_profile: Profile | None = None, slurm: slurm_mod.Slurm | None = None,
                 on_event: EventFn | None = None, clock: Callable[[], float] = time.monotonic,
                 node_names: Mapping[str, str] | None = None):
        self.hist, self.run_id, self.opts, self.cycle_fn = hist, run_id, opts, cycle_fn
        self.trend_profile = trend_profile
        self.slurm = slurm
        # host -> Slurm node name where they differ (the inventory's slurm_node)
        self.node_names = dict(node_names) if node_names is not None else (slurm_names(opts) if slurm else {})
        self.on_event = on_event or (lambda *a, **k: None)
        self.clock = clock
        self.drains: list[tuple[slurm_mod.Action, str | None]] = []

    @classmethod
    def start(cls, hist: History, opts: BurninOptions, cycle_fn: CycleFn, **kw: Any) -> "Burnin":
        mark_dead_runs_interrupted(hist)
        rid = hist.start_run("burnin", suite=opts.suite, profile=opts.profile or "", simulated=opts.simulate,
                             options=opts.to_json())
        return cls(hist, rid, opts, cycle_fn, **kw)

    # -- the loop --------------------------------------------------------------------
    def run(self) -> BurninSummary:
        row = self.hist.run(self.run_id)
        progress = json.loads(row["progress"] or "{}")
        cycle = _resume_cycle(self.hist, self.run_id, progress)
        node_status = {r["host"]: r["status"] for r in self.hist.conn.execute(
            "SELECT host, status FROM node_results WHERE run_id=?", (self.run_id,))}
        t0 = self.clock() - float(progress.get("elapsed_s", 0.0))
        want_cycles = self.opts.cycles if self.opts.cycles or self.opts.duration_s else 1
        durations: list[float] = []
        while True:
            elapsed = self.clock() - t0
            if want_cycles and cycle >= want_cycles:
                break
            if self.opts.duration_s and elapsed >= self.opts.duration_s and cycle > 0:
                break
            self.on_event("cycle_start", cycle=cycle, elapsed_s=elapsed, eta_s=self._eta(elapsed, cycle, durations))
            c0 = self.clock()
            stored: set[int] = set()
            reported: set[str] = set()

            def store(n: NodeResult, ts: str | None = None, cycle: int = cycle) -> None:
                # one transaction per node, as soon as its checks are done: a kill mid-cycle
                # keeps every node finished so far, and never half a node
                new = [c for c in n.checks if id(c) not in stored]
                self.hist.record_checks(self.run_id, [(n.host, c) for c in new], finished_at=ts or now_iso(),
                                        cycle=cycle)
                stored.update(id(c) for c in new)
                reported.add(n.host)
                node_status[n.host] = worst([n.status, node_status.get(n.host, "skip")], "skip")
                self.hist.record_node(self.run_id, n.host, n.outcome, node_status[n.host])

            result = self.cycle_fn(cycle, store)
            for n in result.nodes:   # nodes not reported during the cycle; results cluster checks added
                if n.host not in reported or any(id(c) not in stored for c in n.checks):
                    store(n, result.finished_at)
            self.hist.record_checks(self.run_id, [(c.host, c) for c in result.cluster_checks],
                                    finished_at=result.finished_at, cycle=cycle)
            durations.append(self.clock() - c0)
            cycle += 1
            self.hist.set_progress(self.run_id, {"cycles_done": cycle, "elapsed_s": self.clock() - t0})
            self.on_event("cycle_done", cycle=cycle - 1, result=result, duration_s=durations[-1],
                          eta_s=self._eta(self.clock() - t0, cycle, durations))
            if self.opts.drain and self.slurm is not None:
                self._drain_failed(result)
        trend = self._trends()
        if self.opts.drain and self.slurm is not None:
            self._resume_passed(node_status)
        statuses = list(node_status.values()) + [c.status for c in trend]
        cluster = self.hist.conn.execute(
            "SELECT status FROM check_results WHERE run_id=? AND host IS NULL", (self.run_id,)).fetchall()
        status = worst(statuses + [r[0] for r in cluster], "pass")
        self.hist.finish_run(self.run_id, status)
        self.on_event("done", run_id=self.run_id, status=status)
        return BurninSummary(self.run_id, cycle, status, node_status, trend, self.drains)

    def _eta(self, elapsed: float, cycle: int, durations: list[float]) -> float | None:
        if self.opts.duration_s:
            return max(0.0, self.opts.duration_s - elapsed)
        if self.opts.cycles and durations:
            return statistics.mean(durations) * max(0, self.opts.cycles - cycle)
        return None

    # -- Slurm ---------------------------------------------------------------------------
    def _slurm_name(self, host: str) -> str:
        return self.node_names.get(host, host)

    def _drain_failed(self, result: RunResult) -> None:
        assert self.slurm is not None
        failed: dict[str, str] = {}
        for n in result.nodes:
            if n.outcome != "ok":
                continue  # can't verify != broken: an SSH problem must not drain the fleet
            codes, detail = failing_codes(n)
            if codes:
                name = self._slurm_name(n.host)
                where = f", host {n.host}" if name != n.host else ""
                failed[name] = slurm_mod.drain_reason(codes, f"{detail} (burn-in run {self.run_id}{where})")
        reachable = [n for n in result.nodes if n.outcome == "ok"]
        limit = self.opts.max_drain_fraction
        if not (isinstance(limit, (int, float)) and math.isfinite(limit) and 0.0 <= limit <= 1.0):
            # a stored option from elsewhere (--resume): no guard means no drain
            self.on_event("drain_refused", failed=len(failed), nodes=len(reachable), limit=0.0)
            return
        if reachable and len(failed) > limit * len(reachable):
            self.on_event("drain_refused", failed=len(failed), nodes=len(reachable), limit=limit)
            return
        self._apply(slurm_mod.plan(self.slurm.nodes(), failed, set()))

    def _resume_passed(self, node_status: dict[str, str]) -> None:
        assert self.slurm is not None
        passed = {self._slurm_name(h) for h, s in node_status.items() if s in ("pass", "warn")}
        self._apply(slurm_mod.plan(self.slurm.nodes(), {}, passed))

    def _apply(self, actions: list[slurm_mod.Action]) -> None:
        assert self.slurm is not None
        done = slurm_mod.apply(self.slurm, [a for a in actions if a.action != "keep"])
        for a, err in done:
            # every action is logged with the finding it acted on (the reason starts with its codes)
            self.hist.record_drain(self.run_id, a.node, a.action if err is None else f"{a.action} failed",
                                   a.reason if err is None else f"{a.reason} [{err}]")
            if a.action in ("drain", "resume"):
                log.info("slurm %s %s%s: %s", a.action, a.node, " FAILED" if err else "", err or a.reason)
        self.drains += done
        if done:
            self.on_event("slurm", actions=done)

    # -- trends ----------------------------------------------------------------------------
    def _trends(self) -> list[CheckResult]:
        if self.trend_profile is None:
            return []
        results = trend_results(self.hist, self.run_id, self.trend_profile)
        for r in results:
            self.hist.record_check(self.run_id, r.host, r)
        if results:
            self.on_event("trend", results=results)
        return results


def trend_results(hist: History, run_id: int, profile: Profile) -> list[CheckResult]:
    """Evaluate the trend check for one run from history (one sample per run, host and check)."""
    ws = watches(profile)
    if not ws:
        return []
    names = sorted({w.metric for w in ws})
    row = hist.run(run_id)
    last = hist.conn.execute("SELECT max(ts) FROM metrics WHERE run_id=?", (run_id,)).fetchone()[0]
    end = parse_ts(last or row["started_at"])
    window = float(profile.get("burnin.trend_window_days", 7.0))
    since = (end - _dt.timedelta(days=window)).isoformat(timespec="seconds")
    q = ("SELECT run_id, host, check_id, name, value, ts FROM metrics WHERE name IN (%s) AND ts >= ? AND ts <= ?"
         " AND host IS NOT NULL" % ",".join("?" * len(names)))
    per_run: dict[tuple[int, str, str, str], list[tuple[float, float]]] = {}
    for rid, host, check_id, name, value, ts in hist.conn.execute(q, [*names, since, end.isoformat()]):
        per_run.setdefault((rid, host, check_id, name), []).append((parse_ts(ts).timestamp() / 86400.0, value))
    samples: list[Sample] = []
    current: dict[tuple[str, str, str], float] = {}
    for (rid, host, check_id, name), pts in per_run.items():
        t = statistics.median(p[0] for p in pts)
        v = statistics.median(p[1] for p in pts)   # several cycles in one run: one nightly sample
        samples.append(Sample(host, check_id, name, t, v))
        if rid == run_id:
            current[(host, check_id, name)] = v
    return evaluate_trends(samples, current, profile)


def _resume_cycle(hist: History, run_id: int, progress: dict[str, Any]) -> int:
    """Next cycle to run: after the saved progress, or after a cycle whose checks were stored
    before the progress write (killed in between: its data is kept, not measured twice)."""
    stored = hist.conn.execute("SELECT max(cycle) FROM check_results WHERE run_id=?", (run_id,)).fetchone()[0]
    return max(int(progress.get("cycles_done", 0)), (stored + 1) if stored is not None else 0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_dead_runs_interrupted(hist: History) -> None:
    """Burn-ins whose process is gone (killed, crashed) show as `interrupted`, still resumable."""
    for r in hist.conn.execute("SELECT id, options FROM runs WHERE kind='burnin' AND status='running'"
                               " AND finished_at IS NULL").fetchall():
        pid = int(json.loads(r["options"] or "{}").get("pid", 0) or 0)
        if not pid or (pid != os.getpid() and not _alive(pid)):
            with hist.conn:
                hist.conn.execute("UPDATE runs SET status='interrupted' WHERE id=?", (r["id"],))


def resumable(hist: History, max_age_s: float = 86400.0) -> tuple[int, BurninOptions] | None:
    """The newest interrupted burn-in started within `max_age_s` (older ones stay interrupted:
    last week's run is not tonight's), claimed for this process."""
    mark_dead_runs_interrupted(hist)
    since = (_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(seconds=max_age_s)).isoformat(timespec="seconds")
    row = hist.conn.execute("SELECT id, options FROM runs WHERE kind='burnin' AND finished_at IS NULL"
                            " AND status='interrupted' AND started_at >= ? ORDER BY id DESC LIMIT 1",
                            (since,)).fetchone()
    if row is None:
        return None
    opts = BurninOptions.from_json(json.loads(row["options"] or "{}"))
    opts.pid = os.getpid()
    with hist.conn:
        hist.conn.execute("UPDATE runs SET status='running', options=? WHERE id=?",
                          (json.dumps(opts.to_json()), row["id"]))
    return int(row["id"]), opts
