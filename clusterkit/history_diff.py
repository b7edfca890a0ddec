"""What changed since last time: findings new, gone or changed per host, against that host's previous run.

Each host is compared with the newest earlier run that included it, so a rerun of a few hosts
(`--limit @failed.txt`) is compared with the night before, not with an unrelated run. A finding is
keyed by (check, code, component); codes are compared under their current names, so a code renamed
between the two runs is not "gone" and "new" at once. Info findings are left out. A finding counts as
gone only when its check ran again on the host (a host not reached, or a check skipped, says nothing
about what it found before): those are listed as not judged again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from clusterkit.codes import canonical
from clusterkit.history import History
from clusterkit.results import Finding, RunResult

_SHOWN = ("fail", "error", "warn")
Key = tuple[str, str, str]        # check, code, component


@dataclass
class HostState:
    """One host in one run: its outcome, which checks ran, and its findings by key."""

    host: str
    outcome: str
    run_id: int | None
    started_at: str | None
    ran: set[str] = field(default_factory=set)                       # checks that judged (not skipped)
    findings: dict[Key, Finding] = field(default_factory=dict)


@dataclass
class Change:
    kind: str                     # new | gone | changed | unknown
    host: str
    check: str
    code: str
    component: str
    now: Finding | None
    before: Finding | None

    def to_dict(self) -> dict[str, Any]:
        def f(x: Finding | None) -> dict[str, Any] | None:
            return None if x is None else {"severity": x.severity, "message": x.message, "observed": x.observed}

        return {"change": self.kind, "host": self.host, "check": self.check, "code": self.code,
                "component": self.component, "now": f(self.now), "before": f(self.before)}


@dataclass
class Changes:
    changes: list[Change] = field(default_factory=list)
    compared: dict[str, int | None] = field(default_factory=dict)     # host -> previous run id (None: no previous)
    outcome_changes: list[tuple[str, str, str]] = field(default_factory=list)   # host, before, now

    def count(self, kind: str) -> int:
        return sum(c.kind == kind for c in self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {"new": self.count("new"), "gone": self.count("gone"), "changed": self.count("changed"),
                "not_judged_again": self.count("unknown"),
                "hosts_without_previous_run": sorted(h for h, r in self.compared.items() if r is None),
                "previous_run_of": {h: r for h, r in sorted(self.compared.items()) if r is not None},
                "outcome_changes": [{"host": h, "before": b, "now": n} for h, b, n in self.outcome_changes],
                "changes": [c.to_dict() for c in self.changes]}


def _key(check: str, f: Finding) -> Key:
    return check, canonical(f.code), f.component or ""


def _observed(f: Finding) -> str:
    return json.dumps(f.observed, sort_keys=True, default=str)


def states_of_run(run: RunResult) -> dict[str, HostState]:
    out = {}
    for n in run.nodes:
        st = HostState(n.host, n.outcome, None, run.started_at)
        for c in n.checks:
            if c.status != "skip":
                st.ran.add(c.id)
            for f in c.findings:
                if f.severity in _SHOWN:
                    st.findings[_key(c.id, f)] = f
        out[n.host] = st
    return out


def _state_from_db(hist: History, run_id: int, host: str, outcome: str, started_at: str | None) -> HostState:
    st = HostState(host, outcome, run_id, started_at)
    rows = hist.conn.execute(   # the latest result of each check in the run (a burn-in has one per cycle)
        "SELECT c.id, c.check_id, c.status FROM check_results c JOIN (SELECT max(id) AS id FROM check_results"
        " WHERE run_id=? AND host=? GROUP BY check_id) m ON m.id = c.id", (run_id, host)).fetchall()
    for r in rows:
        if r["status"] != "skip":
            st.ran.add(r["check_id"])
        for f in hist.findings_of(r["id"]):
            if f.severity in _SHOWN:
                st.findings[_key(r["check_id"], f)] = f
    return st


def previous_states(hist: History, hosts: Iterable[str], before_run: int | None = None) -> dict[str, HostState]:
    """Each host's state in the newest stored run that included it (before `before_run` when given)."""
    out = {}
    for host in hosts:
        q = ("SELECT n.run_id, n.outcome, r.started_at FROM node_results n JOIN runs r ON r.id = n.run_id"
             " WHERE n.host=?" + (" AND n.run_id < ?" if before_run is not None else "") +
             " ORDER BY n.run_id DESC LIMIT 1")
        row = hist.conn.execute(q, (host, before_run) if before_run is not None else (host,)).fetchone()
        if row is not None:
            out[host] = _state_from_db(hist, row["run_id"], host, row["outcome"] or "ok", row["started_at"])
    return out


def states_of_stored_run(hist: History, run_id: int) -> dict[str, HostState]:
    rows = hist.conn.execute("SELECT n.host, n.outcome, r.started_at FROM node_results n JOIN runs r"
                             " ON r.id = n.run_id WHERE n.run_id=? ORDER BY n.host", (run_id,)).fetchall()
    return {r["host"]: _state_from_db(hist, run_id, r["host"], r["outcome"] or "ok", r["started_at"]) for r in rows}


def diff(now: dict[str, HostState], before: dict[str, HostState]) -> Changes:
    out = Changes()
    for host, cur in now.items():
        prev = before.get(host)
        out.compared[host] = prev.run_id if prev is not None else None
        if prev is None:
            continue
        if cur.outcome != prev.outcome:
            out.outcome_changes.append((host, prev.outcome, cur.outcome))
        for key, f in cur.findings.items():
            old = prev.findings.get(key)
            if old is None:
                out.changes.append(Change("new", host, *key, f, None))
            elif old.severity != f.severity or _observed(old) != _observed(f):
                out.changes.append(Change("changed", host, *key, f, old))
        for key, old in prev.findings.items():
            if key in cur.findings:
                continue
            kind = "gone" if key[0] in cur.ran else "unknown"
            out.changes.append(Change(kind, host, *key, None, old))
    order = {"new": 0, "changed": 1, "gone": 2, "unknown": 3}
    out.changes.sort(key=lambda c: (order[c.kind], c.host, c.check, c.code, c.component))
    return out


def compare_run(hist: History, run: RunResult) -> Changes:
    """A run not stored yet (verify --compare) against each host's newest stored run."""
    now = states_of_run(run)
    return diff(now, previous_states(hist, now))


def compare_stored(hist: History, run_id: int) -> Changes:
    """A stored run against each of its hosts' previous runs (`clusterkit history diff`)."""
    now = states_of_stored_run(hist, run_id)
    return diff(now, previous_states(hist, now, before_run=run_id))


def _number(v: Any) -> str:
    from clusterkit.render.fmt import number

    return number(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else json.dumps(v, default=str)


def render_text(ch: Changes, title: str) -> str:
    from clusterkit.render.fmt import plural

    lines = [title]
    for h, b, n in ch.outcome_changes:
        lines.append(f"  HOST     {h}: {b} -> {n}")
    for c in ch.changes:
        f = c.now or c.before
        assert f is not None
        head = f"  {('NOT JUDGED' if c.kind == 'unknown' else c.kind.upper()):<10} {c.host}  {c.check}  {c.code}"
        if c.kind == "changed" and c.before is not None and c.now is not None:
            what = []
            if c.before.severity != c.now.severity:
                what.append(f"{c.before.severity} -> {c.now.severity}")
            if _observed(c.before) != _observed(c.now):
                what.append(f"observed {_number(c.before.observed)} -> {_number(c.now.observed)}")
            lines.append(f"{head}: {f.headline()} ({'; '.join(what)})")
        else:
            lines.append(f"{head}: {f.severity} - {f.headline()}")
    fresh = sorted(h for h, r in ch.compared.items() if r is None)
    if fresh:
        lines.append(f"  no previous run of {', '.join(fresh[:10])}{' ...' if len(fresh) > 10 else ''}")
    compared = sum(r is not None for r in ch.compared.values())
    lines.append(f"  {plural(ch.count('new'), 'new finding')}, {ch.count('changed')} changed, "
                 f"{ch.count('gone')} gone" + (f", {ch.count('unknown')} not judged again" if ch.count('unknown') else "")
                 + f" ({plural(compared, 'host')} compared)")
    return "\n".join(lines) + "\n"
