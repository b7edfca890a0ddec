"""Nodes that are not current (unreachable, never seen, cut short, stale) in history, the exporter
and `clusterkit history`: a node that drops out must not keep looking healthy."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clusterkit.cli.history import node_problems
from clusterkit.exporter import scrape
from clusterkit.history import History
from clusterkit.results import NodeResult
from tests.burnin_helpers import node, run

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
DAY = 24 * 3600


def _iso(seconds_ago: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).isoformat()


@pytest.fixture
def db(tmp_path):
    """Three days ago every node passed; an hour ago gpu02 was unreachable, gpu03 refused the login
    (never reached at all), gpu06 was cut short by a hung probe, and gpu05 was not in the run."""
    path = tmp_path / "history.db"
    with History(path) as h:
        h.record_run(run([node("gpu01"), node("gpu02"), node("gpu05"), node("gpu06")],
                         started_at=_iso(3 * DAY), finished_at=_iso(3 * DAY - 600)), kind="verify")
        cut = node("gpu06")
        cut.outcome, cut.message = "timeout", "`nvidia-smi -q` hung (timeout after 60 s, killed)"
        h.record_run(run([node("gpu01"), NodeResult("gpu02", "unreachable", message="connection refused"),
                          NodeResult("gpu03", "error", message="authentication failed"), cut],
                         started_at=_iso(3600), finished_at=_iso(3000)), kind="verify")
    return path


def _series(text: bytes) -> dict[str, list]:
    out: dict[str, list] = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def _by_host(samples, label: str | None = None) -> dict:
    return {lab["host"]: lab[label] if label else v for lab, v in samples}


def test_history_knows_which_nodes_are_current(db):
    with History(db, readonly=True) as h:
        states = {s.host: s for s in h.node_states(["gpu01", "gpu04"])}
    assert sorted(states) == ["gpu01", "gpu02", "gpu03", "gpu04", "gpu05", "gpu06"]
    assert {h: s.outcome for h, s in states.items()} == {
        "gpu01": "ok", "gpu02": "unreachable", "gpu03": "error", "gpu04": "never_seen", "gpu05": "ok",
        "gpu06": "timeout"}
    stale = {h for h, s in states.items() if s.stale(NOW, 36 * 3600)}
    # gpu02: its last result predates the run that could not reach it; gpu05: 3 days old
    assert stale == {"gpu02", "gpu03", "gpu04", "gpu05"}
    assert states["gpu02"].last_seen_at == _iso(3 * DAY) and states["gpu02"].worst == "pass"
    assert states["gpu03"].last_seen_at is None and states["gpu04"].last_result_at is None
    assert states["gpu06"].up and not states["gpu06"].stale(NOW, 36 * 3600)   # cut short, but judged now
    assert not states["gpu05"].stale(NOW, 4 * DAY)


def test_exporter_serves_every_node_with_up_outcome_and_stale_status(db):
    m = _series(scrape(db, inventory=["gpu01", "gpu04"], stale_after_s=36 * 3600))
    assert _by_host(m["clusterkit_node_up"]) == {"gpu01": 1, "gpu02": 0, "gpu03": 0, "gpu04": 0, "gpu05": 1,
                                                 "gpu06": 1}
    assert _by_host(m["clusterkit_node_outcome"], "outcome") == {
        "gpu01": "ok", "gpu02": "unreachable", "gpu03": "error", "gpu04": "never_seen", "gpu05": "ok",
        "gpu06": "timeout"}
    # the unreachable node's "pass" from three days ago is not served as current
    assert _by_host(m["clusterkit_node_status"], "status") == {
        "gpu01": "pass", "gpu02": "stale", "gpu03": "unknown", "gpu04": "unknown", "gpu05": "stale",
        "gpu06": "pass"}
    assert _by_host(m["clusterkit_node_stale"]) == {"gpu01": 0, "gpu02": 1, "gpu03": 1, "gpu04": 1, "gpu05": 1,
                                                    "gpu06": 0}
    seen = _by_host(m["clusterkit_node_last_seen_timestamp_seconds"])
    assert seen["gpu03"] == seen["gpu04"] == 0 and seen["gpu02"] == (NOW.timestamp() - 3 * DAY)
    ts = _by_host(m["clusterkit_node_timestamp_seconds"])
    assert ts["gpu04"] == 0 and ts["gpu01"] == NOW.timestamp() - 3000
    assert m["clusterkit_node_stale_after_seconds"] == [({}, 36 * 3600.0)]
    # a longer --stale-after keeps gpu05's result current; gpu02's stays stale (its run missed it)
    m = _series(scrape(db, stale_after_s=4 * DAY))
    assert _by_host(m["clusterkit_node_stale"])["gpu05"] == 0 and _by_host(m["clusterkit_node_stale"])["gpu02"] == 1


def test_cached_scraper_reevaluates_staleness_on_every_scrape(db, monkeypatch):
    import clusterkit.exporter as exp

    s = exp.Scraper(db, fresh_wait_s=60, stale_after_s=36 * 3600)
    assert _by_host(_series(s())["clusterkit_node_stale"])["gpu01"] == 0
    later = NOW + dt.timedelta(days=2)

    class Clock(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return later

    monkeypatch.setattr(exp._dt, "datetime", Clock)      # two days later, the database unchanged
    assert _by_host(_series(s())["clusterkit_node_stale"])["gpu01"] == 1


def test_history_lists_the_nodes_that_are_not_current(db):
    with History(db, readonly=True) as h:
        rows = {r["host"]: r for r in node_problems(h, inventory=["gpu04"], now=NOW)}
    assert sorted(rows) == ["gpu02", "gpu03", "gpu04", "gpu05"]
    assert rows["gpu02"]["why"].startswith("unreachable in its latest run")
    assert rows["gpu02"]["last_status"] == "pass" and rows["gpu02"]["last_seen_at"] == _iso(3 * DAY)
    assert rows["gpu04"]["why"] == "never seen: no stored run included it"
    assert rows["gpu05"]["why"] == "newest result is older than 36h00m"


def test_history_and_exporter_commands_take_the_inventory_and_the_age(db, tmp_path):
    inv = tmp_path / "hosts.ini"
    inv.write_text("[gpu]\ngpu01 ansible_host=10.0.0.1\ngpu04 ansible_host=10.0.0.4\n")
    r = subprocess.run([sys.executable, "-m", "clusterkit", "history", "--db", str(db), "--inventory", str(inv),
                        "--stale-after", "4d", "--format", "json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert {n["host"] for n in json.loads(r.stdout)["nodes"]} == {"gpu02", "gpu03", "gpu04"}
    r = subprocess.run([sys.executable, "-m", "clusterkit", "history", "--db", str(db)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    table = r.stdout.split("Nodes not reached or stale", 1)[1]
    gpu02 = next(x for x in table.splitlines() if "gpu02" in x)     # piped: one line per node
    assert "unreachable" in gpu02 and "unreachable in its latest run" in gpu02
    r = subprocess.run([sys.executable, "-m", "clusterkit", "exporter", "--db", str(db), "--textfile",
                        str(tmp_path / "tf"), "--inventory", str(inv), "--stale-after", "1h"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    m = _series((tmp_path / "tf" / "clusterkit.prom").read_bytes())
    assert _by_host(m["clusterkit_node_outcome"], "outcome")["gpu04"] == "never_seen"
    assert m["clusterkit_node_stale_after_seconds"] == [({}, 3600.0)]


def test_a_stopped_verify_is_stored_as_interrupted(tmp_path):
    r = run([node("gpu01")])
    r.interrupted = "SIGTERM"
    with History(tmp_path / "h.db") as h:
        rid = h.record_run(r)
        assert h.run(rid)["status"] == "interrupted"
