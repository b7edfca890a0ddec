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
    fm = next(h for h, m in meta.items() if "stack.fabric_manager_mismatch" in m.get("injected_faults", []))
    stack = next(c for c in by_host[fm]["checks"] if c["id"] == "stack.versions")
    assert stack["status"] == "fail" and stack["findings"][0]["code"] == "GPU_FABRIC_MANAGER_VERSION_MISMATCH"
    assert "--tags fabric_manager" in stack["findings"][0]["action"]


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


def test_parallel_analysis_gives_the_serial_verdicts(tmp_path, monkeypatch, caplog):
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
    with caplog.at_level("WARNING", logger="clusterkit.workers"):
        parallel = analyze_paths([tmp_path], suite="quick")
    assert not caplog.records, "every node should come from the workers, none redone here"
    assert shape(parallel) == shape(serial)
    assert [c.to_dict()["findings"] for c in parallel.cluster_checks] == [c.to_dict()["findings"] for c in serial.cluster_checks]
    assert serial.status == "fail"


def test_parallel_analysis_runs_beside_threads(tmp_path, monkeypatch, caplog):
    """verify keeps SSH threads alive; the workers still analyze every node (none redone here)."""
    import threading

    from clusterkit import analysis
    from clusterkit.pipeline import analyze_paths
    from clusterkit.sim.cluster import generate

    generate(tmp_path, nodes=analysis.PARALLEL_MIN_NODES, seed=9)
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        monkeypatch.setenv("CLUSTERKIT_ANALYSIS_WORKERS", "2")
        with caplog.at_level("WARNING", logger="clusterkit.workers"):
            run = analyze_paths([tmp_path], suite="quick")
    finally:
        stop.set()
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    assert len(run.nodes) == analysis.PARALLEL_MIN_NODES
    assert all(n.checks for n in run.nodes)


def test_workers_survive_dead_garbling_and_stalled_workers(tmp_path):
    """A worker killed (say by the OOM killer), printing garbage, or hung loses no
    result silently: its items come back missing, quickly, for the caller to redo."""
    import operator
    import sys
    import time

    from clusterkit import workers

    t0 = time.monotonic()
    assert workers.run(operator.add, 10, [1, 2, 3, 4, 5], 2, stall_s=30) == {0: 11, 1: 12, 2: 13, 3: 14, 4: 15}
    # a job that cannot be sent (not picklable) starts no worker: everything is left to the caller
    assert workers.run(operator.add, lambda: 0, [1, 2], 2, stall_s=30) == {}
    # an item whose function raises is left out; the worker goes on with the next
    assert workers.run(operator.truediv, 10, [1, 0, 5], 1, stall_s=30) == {0: 10.0, 2: 2.0}
    # a worker that delivers its first item, then is killed
    dies = tmp_path / "dies.py"
    dies.write_text(
        "import os, pickle, sys\n"
        "from clusterkit import workers\n"
        "fn, shared, items = pickle.load(open(sys.argv[1], 'rb'))\n"
        "i, x = items[0]\n"
        "workers._write_frame(sys.stdout.buffer, (i, fn(shared, x)))\n"
        "os.kill(os.getpid(), 9)\n")
    got = workers.run(operator.add, 10, [1, 2, 3, 4], 2, stall_s=30, command=[sys.executable, str(dies)])
    assert got == {0: 11, 1: 12}                      # items 2 and 3 are missing, not invented
    got = workers.run(operator.add, 10, [1, 2], 2, stall_s=30,
                      command=[sys.executable, "-c", "import sys; sys.stdout.write('x' * 64)"])
    assert got == {}                                  # a length with no frame behind it
    junk = "import struct, sys; sys.stdout.buffer.write(struct.pack('!Q', 4) + b'junk'); sys.stdout.flush()"
    got = workers.run(operator.add, 10, [1, 2], 2, stall_s=30, command=[sys.executable, "-c", junk])
    assert got == {}                                  # a whole frame that is not a pickle
    got = workers.run(operator.add, 10, [1, 2], 2, stall_s=2,
                      command=[sys.executable, "-c", "import time; time.sleep(3600)"])
    assert got == {}
    assert time.monotonic() - t0 < 60


def test_small_parses_are_kept_for_cluster_checks_and_large_ones_dropped():
    """Cluster checks reuse a node's small parses; a power trace's samples must not stay in
    memory for every node of a large fleet."""
    from clusterkit.analysis import KEEP_PARSED_MAX_CHARS, NodeContext
    from clusterkit.evidence.bundle import Bundle
    from clusterkit.profiles import load_profile

    big = "x" * (KEEP_PARSED_MAX_CHARS + 1)
    b = Bundle.virtual("n1", {"gpu/power-trace.csv": big, "gpu/nvml.json": "{}"})
    ctx = NodeContext("n1", b, load_profile("base"))
    assert ctx.parsed("gpu/power-trace.csv", len) == len(big)
    assert ctx.parsed("gpu/nvml.json", len) == 2
    ctx.drop_large()
    assert set(ctx._cache) == {("gpu/nvml.json", len)}


def test_workers_import_clusterkit_from_where_the_caller_did(tmp_path):
    """A script that puts a checkout on sys.path (not installed, another cwd) gets real workers."""
    import os
    from pathlib import Path

    import clusterkit

    root = str(Path(clusterkit.__file__).resolve().parent.parent)
    script = ("import operator, sys; sys.path.insert(0, %r)\n"
              "from clusterkit import workers\n"
              "print(sorted(workers.run(operator.add, 1, [1, 2, 3], 2, stall_s=60).items()))\n" % root)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[(0, 2), (1, 3), (2, 4)]", r.stderr


def test_no_check_crashes_on_the_simulated_cluster():
    """The README's first command must never show "internal error ... report this as a clusterkit bug":
    every check, node and cluster scope, copes with every simulated node, at every size and seed."""
    from clusterkit.pipeline import simulate_run

    for nodes, seed, suite in ((8, 0, "quick"), (8, 0, "full"), (3, 1, "full"), (1, 2, "full"), (12, 3, "quick")):
        run = simulate_run(nodes=nodes, seed=seed, suite=suite)
        results = [c for n in run.nodes for c in n.checks] + list(run.cluster_checks)
        crashed = [(c.host, c.id, c.summary) for c in results
                   if any(f.code == "CHECK_CRASHED" for f in c.findings) or "internal error" in c.summary]
        assert not crashed, (nodes, seed, suite, crashed)
