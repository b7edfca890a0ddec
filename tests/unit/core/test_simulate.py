"""`clusterkit verify --simulate`: the README's first command."""

import json
import subprocess
import sys

from clusterkit.sim.registry import FAULTS


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "clusterkit", *args], capture_output=True, text=True, timeout=300)


def test_simulate_json_labels_nodes_and_fails_on_injected_faults(tmp_path):
    keep = tmp_path / "evidence"
    r = _cli("verify", "--simulate", "--nodes", "6", "--seed", "3", "--format", "json", "--keep-evidence", str(keep))
    assert r.returncode == 1, r.stderr
    d = json.loads(r.stdout)
    assert d["simulated"] is True and d["status"] == "fail"
    assert len(d["nodes"]) == 6 and all(n["simulated"] and n["host"].startswith("sim-") for n in d["nodes"])
    # the reference node carries no fault and passes; every fault placed is reported somewhere
    meta = {p.parent.name: json.loads(p.read_text()) for p in keep.glob("*/bundle.json")}
    healthy = [h for h, m in meta.items() if h != "_cluster" and not m["injected_faults"]]
    assert healthy and all(m["label"].startswith("SIMULATED") for m in meta.values())
    by_host = {n["host"]: n for n in d["nodes"]}
    for h in healthy:
        assert by_host[h]["status"] in ("pass", "skip"), by_host[h]
    raid = next(h for h, m in meta.items() if "host.raid_full" in m.get("injected_faults", []))
    disk = next(c for c in by_host[raid]["checks"] if c["id"] == "host.disk")
    assert disk["status"] == "fail" and disk["findings"][0]["component"] == "filesystem /raid"


def test_simulate_is_deterministic_per_seed_and_every_fault_is_placed():
    a = _cli("verify", "--simulate", "--nodes", "4", "--seed", "11", "--format", "json")
    b = _cli("verify", "--simulate", "--nodes", "4", "--seed", "11", "--format", "json")
    strip = lambda s: [(n["host"], [(c["id"], c["status"]) for c in n["checks"]]) for n in json.loads(s)["nodes"]]
    assert strip(a.stdout) == strip(b.stdout)
    from clusterkit.plugins import load_all
    from clusterkit.sim.cluster import assign_faults

    load_all()
    placed = assign_faults(4)
    assert sorted(f for fs in placed.values() for f in fs) == sorted(FAULTS) and placed[0] == []


def test_simulate_table_says_simulated_and_bad_options_exit_2():
    r = _cli("verify", "--simulate", "--nodes", "3", "--format", "table")
    assert "SIMULATED" in r.stdout and "action:" in r.stdout
    r = _cli("verify", "--simulate", "--nodes", "0")
    assert r.returncode == 2 and "--nodes" in r.stderr
    r = _cli("verify", "--simulate", "--profile", "no-such-gpu")
    assert r.returncode == 2 and "unknown profile 'no-such-gpu'" in r.stderr
    r = _cli("verify", "--simulate", "--format", "xml")
    assert r.returncode == 2 and "--format" in r.stderr


def test_verify_history_option_stores_the_run(tmp_path):
    import sqlite3

    db = tmp_path / "h.db"
    r = _cli("verify", "--simulate", "--nodes", "3", "--format", "json", "--history", str(db))
    assert r.returncode == 1
    d = json.loads(r.stdout)
    con = sqlite3.connect(db)
    (kind, status, simulated), = con.execute("select kind, status, simulated from runs").fetchall()
    assert (kind, status, simulated) == ("verify", d["status"], 1)
    hosts = {h for (h,) in con.execute("select host from node_results")}
    assert hosts == {n["host"] for n in d["nodes"]}
    n_checks = con.execute("select count(*) from check_results where host is not null").fetchone()[0]
    assert n_checks == sum(len(n["checks"]) for n in d["nodes"])


def test_parallel_analysis_gives_the_serial_verdicts(tmp_path, monkeypatch):
    """Large fleets are analyzed on every core; the verdicts must not depend on it."""
    from clusterkit import analysis
    from clusterkit.pipeline import analyze_paths
    from clusterkit.sim.cluster import generate

    generate(tmp_path, nodes=analysis.PARALLEL_MIN_NODES + 2, seed=5)
    shape = lambda run: [(n.host, [(c.id, c.status, [f.code for f in c.findings]) for c in n.checks]) for n in run.nodes]
    monkeypatch.setenv("CLUSTERKIT_ANALYSIS_WORKERS", "1")
    serial = analyze_paths([tmp_path], suite="quick")
    monkeypatch.setenv("CLUSTERKIT_ANALYSIS_WORKERS", "2")
    assert analysis._workers(len(serial.nodes)) == 2
    parallel = analyze_paths([tmp_path], suite="quick")
    assert shape(parallel) == shape(serial)
    assert [c.to_dict()["findings"] for c in parallel.cluster_checks] == [c.to_dict()["findings"] for c in serial.cluster_checks]
    assert serial.status == "fail"
