"""Builds a burn-in history DB with the schema the burn-in writes (plain SQL, no burn-in code)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE runs (id INTEGER PRIMARY KEY, kind TEXT, started_at TEXT, finished_at TEXT, suite TEXT,
                   profile TEXT, status TEXT, simulated INTEGER);
CREATE TABLE node_results (run_id INTEGER, host TEXT, outcome TEXT, status TEXT);
CREATE TABLE check_results (id INTEGER PRIMARY KEY, run_id INTEGER, host TEXT, check_id TEXT, status TEXT,
                            summary TEXT, duration_s REAL, finished_at TEXT);
CREATE TABLE findings (id INTEGER PRIMARY KEY, check_result_id INTEGER, code TEXT, severity TEXT);
CREATE TABLE metrics (check_result_id INTEGER, run_id INTEGER, host TEXT, check_id TEXT, name TEXT,
                      value REAL, ts TEXT);
"""


def make_history(path: Path, runs: list[dict]) -> Path:
    """runs: [{simulated, nodes: {host: (outcome, status)}, power: {host: [watts, ...]}}]"""
    con = sqlite3.connect(path)
    con.executescript(SCHEMA)
    for i, run in enumerate(runs, start=1):
        con.execute("INSERT INTO runs VALUES (?, 'burnin', ?, ?, 'full', 'h100-sxm5-80gb', 'pass', ?)",
                    (i, f"2026-11-{i:02d}T01:00:00Z", f"2026-11-{i:02d}T03:00:00Z", int(run.get("simulated", 0))))
        for host, (outcome, status) in run.get("nodes", {}).items():
            con.execute("INSERT INTO node_results VALUES (?, ?, ?, ?)", (i, host, outcome, status))
        for host, watts in run.get("power", {}).items():
            con.execute("INSERT INTO check_results (run_id, host, check_id, status, summary, duration_s, finished_at)"
                        " VALUES (?, ?, 'gpu.power_step', 'pass', 'ok', 60, ?)", (i, host, f"2026-11-{i:02d}T02:00Z"))
            cr = con.execute("SELECT last_insert_rowid()").fetchone()[0]
            for w in watts:
                con.execute("INSERT INTO metrics VALUES (?, ?, ?, 'gpu.power_step', 'gpu_power_draw_total_w', ?, ?)",
                            (cr, i, host, w, f"2026-11-{i:02d}T02:00Z"))
            # an unrelated metric that must not be averaged in
            con.execute("INSERT INTO metrics VALUES (?, ?, ?, 'gpu.power_step', 'gpu_temp_max_c', 80, 'x')",
                        (cr, i, host))
    con.commit()
    con.close()
    return path
