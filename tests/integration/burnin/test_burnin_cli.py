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
    assert "burn-in run 1:" in r.stdout and "after 2 cycles; 4 nodes" in r.stdout
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


def test_burnin_over_ssh_takes_the_ssh_options_and_keeps_them_for_resume(sshd_cluster, tmp_path):
    """A nightly burn-in of real nodes verifies host keys against --known-hosts, like verify does,
    and stores the options so that `--resume` reconnects the same way."""
    import sqlite3

    inv = sshd_cluster.write_inventory(tmp_path / "hosts.ini", sshd_cluster.nodes[:2])
    suite = tmp_path / "host.toml"
    suite.write_text('checks = ["host.*"]\n')
    db = tmp_path / "h.db"
    r = ck("burnin", "-i", str(inv), "--suite", str(suite), "--cycles", "1", "--db", str(db), "-q",
           "--known-hosts", str(sshd_cluster.known_hosts), "--connect-timeout", "5")
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "2 nodes, 0 failing" in r.stdout
    (options,) = sqlite3.connect(db).execute("select options from runs").fetchone()
    ssh = json.loads(options)["ssh"]
    assert ssh["known_hosts"] == str(sshd_cluster.known_hosts) and ssh["connect_timeout_s"] == 5.0

    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    r = ck("burnin", "-i", str(inv), "--suite", str(suite), "--cycles", "1", "--db", str(tmp_path / "h2.db"),
           "--known-hosts", str(empty), "--connect-timeout", "5")
    assert r.returncode == 1, r.stdout + r.stderr[-3000:]
    assert "2 nodes, 2 failing" in r.stdout
    assert "host key" in r.stderr.lower(), r.stderr[-3000:]      # why, per node, in the cycle's lines
