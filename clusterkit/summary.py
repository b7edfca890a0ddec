"""The summary block of a run's JSON: counts by outcome and status, the hosts that failed, and each
host's worst problem (the triage's order, so it matches the table's "worst problem" column)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from clusterkit.results import RunResult

OUTCOMES = ("ok", "timeout", "interrupted", "unreachable", "error")
STATUSES = ("pass", "warn", "fail", "error", "skip")


def run_summary(run: RunResult) -> dict[str, Any]:
    from clusterkit.retry import failed_hosts
    from clusterkit.triage import node_order, triage, worst_by_host

    groups = triage(run)
    worst = worst_by_host(groups)
    outcomes = Counter(n.outcome for n in run.nodes)
    statuses = Counter(n.status for n in run.nodes)
    checks = Counter(c.status for n in run.nodes for c in n.checks)
    checks.update(c.status for c in run.cluster_checks)
    ordered = node_order(run, groups)
    out: dict[str, Any] = {
        "nodes": len(run.nodes),
        "nodes_by_outcome": {o: outcomes.get(o, 0) for o in OUTCOMES},
        "nodes_by_status": {s: statuses.get(s, 0) for s in STATUSES},
        "checks_by_status": {s: checks.get(s, 0) for s in STATUSES},
        "failing_hosts": [n.host for n in ordered if n.status in ("fail", "error")],
        "warning_hosts": [n.host for n in ordered if n.status == "warn"],
        "not_reached_hosts": [n.host for n in ordered if n.outcome != "ok"],
        "rerun_hosts": failed_hosts(run),
        "causes": len(groups),
        "worst_by_host": {},
    }
    for host, g in worst.items():
        p = g.cause
        out["worst_by_host"][host or "cluster"] = {
            "severity": g.severity, "check": p.check, "code": p.code, "text": p.text, "action": p.action,
            "follows": len(g.follows)}
    return out
