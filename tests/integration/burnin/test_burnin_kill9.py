"""A burn-in killed with SIGKILL loses nothing finished; the exporter reads the WAL meanwhile; --resume completes it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration


def stored(db) -> tuple[int, int]:
    """(checks stored, cycles done) read by a separate connection, as another process would."""
    if not db.exists():
        return 0, 0
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        n = c.execute("SELECT count(*) FROM check_results").fetchone()[0]
        prog = c.execute("SELECT progress FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        import json

        return n, int(json.loads(prog[0] or "{}").get("cycles_done", 0)) if prog else 0
    except sqlite3.OperationalError:
        return 0, 0
    finally:
        c.close()


def served_checks(exporter) -> int:
    fams = {f.name: f for f in text_string_to_metric_families(exporter.scrape())}
    ok = {s.labels["collector"]: s.value for s in fams["clusterkit_scrape_collector_success"].samples}
    assert ok == {"checks": 1, "metrics": 1, "findings": 1, "runs": 1, "nodes": 1}
    return sum(1 for s in fams["clusterkit_check_status"].samples if s.value == 1)


def test_kill_9_loses_nothing_finished_and_resume_completes(tmp_path, start_exporter):
    db = tmp_path / "history.db"
    exporter = start_exporter(db)  # before the burn-in: it reads while the burn-in writes
    cmd = [sys.executable, "-m", "clusterkit", "burnin", "--simulate", "--nodes", "24", "--suite", "quick",
           "--cycles", "5", "--db", str(db), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while stored(db)[1] < 2 and time.monotonic() < deadline and proc.poll() is None:
            if stored(db)[0]:
                seen.append(served_checks(exporter))
            time.sleep(0.05)
        assert proc.poll() is None, "burn-in ended before it could be killed: " + proc.stderr.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert seen and max(seen) > 0   # the exporter served the in-progress run from the WAL
    n_checks, cycles_done = stored(db)
    assert cycles_done >= 2 and n_checks >= cycles_done * 24
    c = sqlite3.connect(db)
    assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    per_cycle = dict(c.execute("SELECT cycle, count(*) FROM check_results GROUP BY cycle").fetchall())
    full = per_cycle[0]
    assert all(per_cycle[k] == full for k in range(cycles_done))  # every finished cycle is complete
    # no findings/metrics orphaned from a half-written check
    assert c.execute("SELECT count(*) FROM findings WHERE check_result_id NOT IN (SELECT id FROM check_results)"
                     ).fetchone()[0] == 0
    run = c.execute("SELECT status, finished_at FROM runs").fetchone()
    assert run == ("running", None)
    c.close()
    assert served_checks(exporter) > 0  # the exporter still reads it after the writer died

    r = subprocess.run([sys.executable, "-m", "clusterkit", "burnin", "--resume", "--db", str(db), "--quiet"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode in (0, 1), r.stderr
    assert "after 5 cycles" in r.stdout
    c = sqlite3.connect(db)
    per_cycle = dict(c.execute("SELECT cycle, count(*) FROM check_results WHERE cycle IS NOT NULL GROUP BY cycle"))
    assert sorted(per_cycle) == list(range(5)) and set(per_cycle.values()) == {full}
    assert c.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    assert c.execute("SELECT finished_at FROM runs").fetchone()[0] is not None
    c.close()
