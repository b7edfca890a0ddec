"""`clusterkit burnin --simulate` fills the history; `history` and `exporter --textfile` read it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration


def ck(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "clusterkit", *args], capture_output=True, text=True, timeout=timeout)


def test_simulated_burnin_fills_history_and_is_served(tmp_path):
    db = tmp_path / "h.db"
    r = ck("burnin", "--simulate", "--nodes", "4", "--cycles", "2", "--suite", "quick", "--db", str(db))
    assert r.returncode in (0, 1), r.stderr
    assert "burn-in run 1:" in r.stdout and "after 2 cycle(s); 4 nodes" in r.stdout
    assert "cycle 2:" in r.stderr  # progress per cycle on stderr

    h = ck("history", "--db", str(db), "--format", "json")
    assert h.returncode == 0, h.stderr
    data = json.loads(h.stdout)
    assert [x["kind"] for x in data["runs"]] == ["burnin"] and data["runs"][0]["finished_at"]
    # whatever the simulated faults are, each failing result names a finding code and an action
    for p in data["problems"]:
        assert p["findings"] and p["findings"][0]["code"].isupper()
    bad_nodes = set(data["runs"][0]["failed_nodes"])
    assert bad_nodes == {p["host"] for p in data["problems"] if p["status"] in ("fail", "error") and p["host"]}

    host = "sim-h100-01"
    h = ck("history", "--db", str(db), "--host", host, "--format", "json")
    series = json.loads(h.stdout)["series"]
    assert series and all(s["host"] == host and s["samples"] == 2 for s in series)

    t = ck("history", "--db", str(db), "--host", host)
    assert t.returncode == 0 and "Metric trends" in t.stdout

    out = ck("exporter", "--db", str(db), "--textfile", str(tmp_path / "tf"))
    assert out.returncode == 0, out.stderr
    fams = {f.name: f for f in text_string_to_metric_families((tmp_path / "tf" / "clusterkit.prom").read_text())}
    hosts = {s.labels["host"] for s in fams["clusterkit_check_status"].samples}
    assert {f"sim-h100-0{i}" for i in range(1, 5)} <= hosts
    runs = {(s.labels["kind"], s.labels["status"]): s.value for s in fams["clusterkit_run_status"].samples}
    assert sum(v for (k, _), v in runs.items() if k == "burnin") == 1


def test_usage_errors_exit_2_with_one_line(tmp_path):
    r = ck("burnin", "--db", str(tmp_path / "h.db"))
    assert r.returncode == 2 and "missing option --inventory" in r.stderr
    r = ck("burnin", "--resume", "--db", str(tmp_path / "h.db"))
    assert r.returncode == 2 and "no interrupted burn-in of the last 24 h to resume" in r.stderr
    r = ck("burnin", "--simulate", "--duration", "2 fortnights", "--db", str(tmp_path / "h.db"))
    assert r.returncode == 2 and "invalid duration" in r.stderr
    r = ck("history", "--db", str(tmp_path / "none.db"))
    assert r.returncode == 2 and "no history database" in r.stderr
