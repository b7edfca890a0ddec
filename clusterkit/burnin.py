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
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from clusterkit.checks.burnin import Sample, evaluate_trends, watches
from clusterkit.history import History, parse_ts
from clusterkit.profiles import Profile
from clusterkit.results import CheckResult, NodeResult, RunResult, worst
from clusterkit import slurm as slurm_mod

_BAD = ("fail", "error")


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
    pid: int = field(default_factory=os.getpid)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "BurninOptions":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


CycleFn = Callable[[int], RunResult]
EventFn = Callable[..., None]


def pipeline_cycle(opts: BurninOptions, on_event: EventFn | None = None) -> CycleFn:
    """One cycle = one pipeline run (simulated cluster with seed+cycle, or the inventory).

    With an inventory, the fleet's per-host progress is passed on as `host` events."""
    from clusterkit import pipeline
    from clusterkit.suites import load_suite, select_checks

    suite = select_checks(load_suite(opts.suite), opts.checks, opts.skip)
    if opts.simulate:
        return lambda c: pipeline.simulate_run(nodes=opts.nodes, seed=opts.seed + c, suite=suite,
                                               profile=opts.profile)
    from clusterkit.fleet.collect import FleetOptions

    assert opts.inventory
    inventory = opts.inventory
    fleet = FleetOptions.from_json(opts.ssh)

    def cycle(c: int) -> RunResult:
        def progress(host: str, step: str, state: str) -> None:
            if on_event is not None:
                on_event("host", cycle=c, host=host, step=step, state=state)

        return pipeline.verify_inventory(inventory, suite=suite, profile=opts.profile, limit=opts.limit,
                                         fleet_options=fleet, progress=progress)

    return cycle


def failing_codes(node: NodeResult) -> tuple[list[str], str]:
    """Finding codes that made the node fail, and a one-line detail for a drain reason."""
    codes: list[str] = []
    detail = ""
    for c in node.checks:
        if c.status not in _BAD:
            continue
        bad = [f for f in c.findings if f.severity in _BAD] or []
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
                 on_event: EventFn | None = None, clock: Callable[[], float] = time.monotonic):
        self.hist, self.run_id, self.opts, self.cycle_fn = hist, run_id, opts, cycle_fn
        self.trend_profile = trend_profile
        self.slurm = slurm
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
            result = self.cycle_fn(cycle)
            # one transaction per node: a kill leaves whole nodes, never half a check
            for n in result.nodes:
                self.hist.record_checks(self.run_id, [(n.host, c) for c in n.checks],
                                        finished_at=result.finished_at, cycle=cycle)
                node_status[n.host] = worst([n.status, node_status.get(n.host, "skip")], "skip")
                self.hist.record_node(self.run_id, n.host, n.outcome, node_status[n.host])
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
    def _drain_failed(self, result: RunResult) -> None:
        assert self.slurm is not None
        failed: dict[str, str] = {}
        for n in result.nodes:
            if n.outcome != "ok":
                continue  # can't verify != broken: an SSH problem must not drain the fleet
            codes, detail = failing_codes(n)
            if codes:
                failed[n.host] = slurm_mod.drain_reason(codes, f"{detail} (burn-in run {self.run_id})")
        reachable = [n for n in result.nodes if n.outcome == "ok"]
        if reachable and len(failed) > self.opts.max_drain_fraction * len(reachable):
            self.on_event("drain_refused", failed=len(failed), nodes=len(reachable),
                          limit=self.opts.max_drain_fraction)
            return
        self._apply(slurm_mod.plan(self.slurm.nodes(), failed, set()))

    def _resume_passed(self, node_status: dict[str, str]) -> None:
        assert self.slurm is not None
        passed = {h for h, s in node_status.items() if s in ("pass", "warn")}
        self._apply(slurm_mod.plan(self.slurm.nodes(), {}, passed))

    def _apply(self, actions: list[slurm_mod.Action]) -> None:
        assert self.slurm is not None
        done = slurm_mod.apply(self.slurm, [a for a in actions if a.action != "keep"])
        for a, err in done:
            self.hist.record_drain(self.run_id, a.node, a.action if err is None else f"{a.action} failed",
                                   a.reason if err is None else err)
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
