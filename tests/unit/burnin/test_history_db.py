"""History: schema contract, migrations, one transaction per check, readers."""

from __future__ import annotations

import json
import sqlite3

import pytest
from hypothesis import given, settings, strategies as st

from clusterkit.errors import ConfigError
from clusterkit.history import SCHEMA_VERSION, History, default_db_path
from clusterkit.results import CheckResult, Finding
from tests.burnin_helpers import ROW_REMAP, node, run

CONTRACT = {
    "runs": {"id", "kind", "started_at", "finished_at", "suite", "profile", "status", "simulated"},
    "node_results": {"run_id", "host", "outcome", "status"},
    "check_results": {"id", "run_id", "host", "check_id", "status", "summary", "duration_s", "finished_at"},
    "findings": {"check_result_id", "code", "severity", "component", "message", "observed", "limit_value",
                 "unit", "action"},
    "metrics": {"check_result_id", "run_id", "host", "check_id", "name", "value", "ts"},
    "schema_version": {"version"},
}


def test_schema_contract_and_wal(tmp_path):
    db = tmp_path / "h.db"
    History(db).close()
    c = sqlite3.connect(db)
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for table, cols in CONTRACT.items():
        have = {r[1] for r in c.execute(f"PRAGMA table_info({table})")}
        assert cols <= have, (table, cols - have)
    assert c.execute("SELECT max(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION


def test_migrates_a_v1_database_keeping_its_rows(tmp_path):
    from clusterkit import history

    db = tmp_path / "old.db"
    c = sqlite3.connect(db)
    c.executescript("CREATE TABLE schema_version(version INTEGER NOT NULL);" + history._MIGRATIONS[0]
                    + "INSERT INTO schema_version VALUES (1);"
                    "INSERT INTO runs(kind, started_at, status, simulated) VALUES ('verify','2026-11-01T00:00:00+00:00','pass',0);"
                    "INSERT INTO check_results(id, run_id, host, check_id, status, finished_at)"
                    " VALUES (7, 1, 'n1', 'nccl.allreduce', 'pass', '2026-11-01T00:10:00+00:00');"
                    "INSERT INTO metrics VALUES (7, 1, 'n1', 'nccl.allreduce', 'busbw_large_gbps', 231.5,"
                    " '2026-11-01T00:10:00+00:00');")
    c.commit()
    c.close()
    with History(db) as h:
        assert h.version() == SCHEMA_VERSION
        assert [r["kind"] for r in h.runs()] == ["verify"]
        h.record_drain(1, "node1", "drain", "clusterkit: X")  # v2 table exists
        # v1 metrics rows survive the move to the compact table, and read back through the view
        assert [tuple(r) for r in h.conn.execute("SELECT * FROM metrics")] == [
            (7, 1, "n1", "nccl.allreduce", "busbw_large_gbps", 231.5, "2026-11-01T00:10:00+00:00")]
        assert [r["host"] for r in h.latest_checks()] == ["n1"]
        from clusterkit.exporter import scrape

        assert (b'clusterkit_nccl_busbw_large_bytes_per_second{host="n1",check="nccl.allreduce"} 231500000000.0\n'
                in scrape(db))
        # a v1-style writer that inserts into `metrics` still works
        h.conn.execute("INSERT INTO metrics(check_result_id, run_id, host, check_id, name, value, ts)"
                       " VALUES (7, 1, 'n1', 'nccl.allreduce', 'algbw_large_gbps', 130.0, 'x')")
        assert h.conn.execute("SELECT value FROM metrics WHERE name='algbw_large_gbps'").fetchone()[0] == 130.0


def test_newer_schema_is_a_config_error(tmp_path):
    db = tmp_path / "new.db"
    History(db).close()
    c = sqlite3.connect(db)
    c.execute("INSERT INTO schema_version VALUES (99)")
    c.commit()
    c.close()
    with pytest.raises(ConfigError, match="newer"):
        History(db)


def test_not_a_database_is_a_config_error(tmp_path):
    bad = tmp_path / "x.db"
    bad.write_text("hello, this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a clusterkit history"):
        History(bad)


def test_record_run_stores_checks_findings_numeric_metrics(tmp_path):
    r = run([node("n1"), node("n2", fail=[ROW_REMAP])], started_at="2026-11-20T01:00:00+00:00",
            finished_at="2026-11-20T02:00:00+00:00")
    with History(tmp_path / "h.db") as h:
        rid = h.record_run(r, kind="verify")
        row = h.run(rid)
        assert (row["kind"], row["status"], row["simulated"], row["suite"]) == ("verify", "fail", 1, "full")
        nodes = {x["host"]: x["status"] for x in h.conn.execute("SELECT * FROM node_results WHERE run_id=?", (rid,))}
        assert nodes == {"n1": "pass", "n2": "fail"}
        f = h.conn.execute("SELECT f.* FROM findings f JOIN check_results c ON c.id=f.check_result_id"
                           " WHERE c.host='n2'").fetchone()
        assert f["code"] == "GPU_ROW_REMAP_PENDING" and json.loads(f["observed"]) == 1
        assert f["action"].startswith("reset the GPU")
        # only finite numbers become metrics: lists and bools are left out
        names = {x[0] for x in h.conn.execute("SELECT DISTINCT name FROM metrics")}
        assert names == {"free_disk_gib", "busbw_large_gbps", "algbw_large_gbps", "effective_ber_max",
                         "gpu_count", "busbw_multinode_gbps"}
        cluster = h.conn.execute("SELECT host FROM check_results WHERE check_id='nccl.multinode'").fetchone()
        assert cluster["host"] is None
        latest = {(x["host"], x["check_id"]): x["status"] for x in h.latest_checks()}
        assert latest[("n2", "gpu.health")] == "fail" and latest[(None, "nccl.multinode")] == "pass"


def test_latest_checks_takes_the_newest_result(tmp_path):
    with History(tmp_path / "h.db") as h:
        h.record_run(run([node("n1", fail=[ROW_REMAP])]))
        h.record_run(run([node("n1")]))
        latest = {(x["host"], x["check_id"]): x["status"] for x in h.latest_checks()}
        assert latest[("n1", "gpu.health")] == "pass"


def test_default_path_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_db_path() == tmp_path / "clusterkit" / "history.db"


def test_readonly_open_of_missing_db_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="no history database"):
        History(tmp_path / "none.db", readonly=True)


json_values = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=20),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                           max_leaves=8)


@settings(max_examples=60, deadline=None)
@given(metrics=st.dictionaries(st.text(min_size=1, max_size=30), json_values, max_size=6),
       observed=json_values, text=st.text(max_size=200))
def test_any_check_result_is_stored_without_loss_or_traceback(tmp_path_factory, metrics, observed, text):
    db = tmp_path_factory.mktemp("fz") / "h.db"
    c = CheckResult.from_findings("x.y", [Finding("SOME_CODE", "warn", text, text, observed=observed)], text, metrics)
    with History(db) as h:
        rid = h.start_run("verify")
        cid = h.record_check(rid, text or None, c)
        (got,) = h.findings_of(cid)
        assert got.message == text
        stored = {n: v for n, v in h.conn.execute("SELECT name, value FROM metrics WHERE check_result_id=?", (cid,))}
        want = {k: float(v) for k, v in metrics.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and abs(float(v)) != float("inf")
                and v == v}
        assert stored == want
