"""Several processes open one history database at once (a burn-in, `verify --history`, the
exporter): none fails, the schema is migrated once, and the file is private."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

from clusterkit.history import SCHEMA_VERSION, History

CHILD = r"""
import sys, time
from clusterkit.history import History
from clusterkit.results import CheckResult
start = float(sys.argv[2])
while time.time() < start:
    pass
try:
    with History(sys.argv[1]) as h:
        rid = h.start_run("verify")
        h.record_check(rid, "n1", CheckResult("a.b", "pass", "ok", metrics={"x": 1.0}))
    print("ok")
except Exception as e:
    print(f"FAIL {type(e).__name__}: {e}")
"""


def test_six_processes_opening_a_new_database_at_once_all_succeed(tmp_path):
    failures = []
    for rnd in range(3):
        db = tmp_path / f"r{rnd}" / "history.db"
        start = time.time() + 1.0   # all six past their imports, then at the same instant
        procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(start)], stdout=subprocess.PIPE,
                                  text=True) for _ in range(6)]
        failures += [out for p in procs if not (out := p.communicate(timeout=60)[0].strip()).startswith("ok")]
        with History(db) as h:
            assert h.conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 6
            assert [r[0] for r in h.conn.execute("SELECT version FROM schema_version ORDER BY version")] == \
                list(range(1, SCHEMA_VERSION + 1))
    assert failures == []


def test_a_new_database_is_private_and_an_existing_ones_mode_is_kept(tmp_path):
    db = tmp_path / "new" / "history.db"
    with History(db) as h:
        h.start_run("verify")
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in db.parent.glob("history.db-*"))
    shared = tmp_path / "shared.db"
    with History(shared):
        pass
    os.chmod(shared, 0o640)   # group-readable on purpose: an exporter running as another user
    with History(shared):
        pass
    assert stat.S_IMODE(shared.stat().st_mode) == 0o640
