"""Burn-in history databases for the cost tests, written by clusterkit's own History class (the writer
the burn-in uses), so the reader is tested against the real schema: runs, cycles of check results,
node outcomes, metrics, Slurm drains."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from clusterkit.history import History
from clusterkit.results import CheckResult

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


def at(hours: float) -> str:
    return (T0 + dt.timedelta(hours=hours)).isoformat(timespec="seconds")


def make_history(path: Path, runs: list[dict], drains: tuple = ()) -> Path:
    """runs: [{simulated, profile, cycles: [{"h": hours after T0, "nodes": {host: state}}],
    power: {host: [watts per cycle]}, metrics: {host: {name: value}}}], state one of pass, warn, fail,
    unreachable, nogpu (a host whose GPU checks skip: a login node). drains: (node, action, hours)."""
    with History(path) as h:
        for run in runs:
            cycles = run.get("cycles") or [{"h": 0, "nodes": {}}]
            rid = h.start_run("burnin", suite="full", profile=run.get("profile", "h100-sxm5-80gb"),
                              simulated=bool(run.get("simulated")), started_at=at(cycles[0]["h"] - 1))
            for n, cyc in enumerate(cycles):
                for host, state in cyc["nodes"].items():
                    if state == "unreachable":
                        h.record_node(rid, host, "unreachable", "error")
                        continue
                    metrics = dict(run.get("metrics", {}).get(host, {}))
                    watts = run.get("power", {}).get(host)
                    if watts and n < len(watts):
                        metrics["gpu_power_draw_total_w"] = watts[n]
                    check = ("host.os", "pass") if state == "nogpu" else ("gpu.inventory", state)
                    results = [(host, CheckResult(check[0], check[1], "", [], metrics))]
                    if state == "nogpu":
                        results.append((host, CheckResult("gpu.inventory", "skip", "no GPU")))
                    h.record_checks(rid, results, finished_at=at(cyc["h"]), cycle=n)
                    h.record_node(rid, host, "ok", "pass" if state == "nogpu" else state)
            h.finish_run(rid, "pass", finished_at=at(cycles[-1]["h"]))
        with h.conn:
            for node, action, hours in drains:
                h.conn.execute("INSERT INTO drains(run_id, node, action, reason, ts) VALUES (NULL, ?, ?, 'test', ?)",
                               (node, action, at(hours)))
    return path
