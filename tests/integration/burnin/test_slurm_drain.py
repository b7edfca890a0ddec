"""--drain against a real slurmctld + slurmd: drain failing nodes, resume ours, never touch others'."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from clusterkit.burnin import Burnin, BurninOptions
from clusterkit.history import History
from clusterkit.slurm import Slurm
from tests.burnin_helpers import FLAP, ROW_REMAP, node, run

from tests.integration.burnin.slurm_cluster import running_slurm

pytestmark = pytest.mark.integration
NODES = ["node1", "node2", "node3", "node4"]


@pytest.fixture
def slurm_cluster():
    with running_slurm(NODES) as c:
        yield c


def burnin_once(db, cluster, plan):
    cyc = lambda c, on_node: run([node(h, **kw) for h, kw in plan.items()])  # noqa: E731
    with History(db) as h:
        return Burnin.start(h, BurninOptions(simulate=True, drain=True), cyc, slurm=Slurm(env=cluster.env)).run()


def test_drain_and_resume_with_a_real_slurm(tmp_path, slurm_cluster):
    c = slurm_cluster
    c.scontrol("update", "nodename=node3", "state=drain", "reason=disk replacement #42")
    db = tmp_path / "h.db"

    s = burnin_once(db, c, {"node1": {"fail": [ROW_REMAP]}, "node2": {}, "node3": {"fail": [FLAP]}, "node4": {}})
    st, reason = c.wait_state("node1", lambda st, r: "drain" in st)
    assert reason.startswith("clusterkit: GPU_ROW_REMAP_PENDING GPU 3 (0000:1B:00.0")
    assert f"(burn-in run {s.run_id})" in reason
    assert c.states()["node3"] == ("drained", "disk replacement #42")       # someone else's drain: untouched
    assert c.states()["node2"][0] == "idle" and c.states()["node4"][0] == "idle"
    acts = {(a.node, a.action) for a, err in s.drains if err is None}
    assert ("node1", "drain") in acts and ("node3", "skip") in acts

    # next night node1 and node3 pass: ours comes back, the admin's stays drained
    s2 = burnin_once(db, c, {n: {} for n in NODES})
    c.wait_state("node1", lambda st, r: st == "idle")
    assert c.states()["node3"] == ("drained", "disk replacement #42")
    with History(db) as h:
        log = [tuple(r) for r in h.conn.execute("SELECT run_id, node, action FROM drains ORDER BY id")]
    assert (s.run_id, "node1", "drain") in log and (s2.run_id, "node1", "resume") in log
    assert not any(n == "node3" and a in ("drain", "resume") for _, n, a in log)


def test_a_node_an_admin_took_over_is_not_resumed(tmp_path, slurm_cluster):
    c = slurm_cluster
    db = tmp_path / "h.db"
    burnin_once(db, c, {"node2": {"fail": [ROW_REMAP]}, "node1": {}, "node3": {}, "node4": {}})
    c.wait_state("node2", lambda st, r: r.startswith("clusterkit:"))
    # an admin re-drains it with their own reason (RMA opened): it's theirs now
    c.scontrol("update", "nodename=node2", "state=drain", "reason=RMA 7781")
    burnin_once(db, c, {n: {} for n in NODES})
    assert c.states()["node2"] == ("drained", "RMA 7781")


def test_cli_burnin_on_the_simulated_cluster_drains_through_slurm(tmp_path):
    """The whole path: `clusterkit burnin --simulate --drain` -> pipeline -> history -> scontrol.
    (The simulated cluster puts a fault on most nodes, so the mass-failure guard is lifted.)"""
    hosts = [f"sim-h100-0{i}" for i in range(1, 5)]
    with running_slurm(hosts) as c:
        db = tmp_path / "h.db"
        r = subprocess.run([sys.executable, "-m", "clusterkit", "burnin", "--simulate", "--nodes", "4", "--suite",
                            "quick", "--drain", "--max-drain-percent", "100", "--db", str(db)], env=c.env, capture_output=True, text=True,
                           timeout=180)
        assert r.returncode in (0, 1), r.stderr
        h = subprocess.run([sys.executable, "-m", "clusterkit", "history", "--db", str(db), "--format", "json"],
                           capture_output=True, text=True, timeout=60)
        failed = set(json.loads(h.stdout)["runs"][0]["failed_nodes"])
        states = c.states()
        for host in hosts:
            st, reason = states[host]
            if host in failed:
                assert "drain" in st and reason.startswith("clusterkit: "), (host, st, reason)
                assert "slurm: drain " + host in r.stderr
            else:
                assert st == "idle" and reason == "none", (host, st, reason)
        assert (r.returncode == 1) == bool(failed)
        # with the default guard, more than half the fleet failing drains nothing and says why
        if len(failed) > len(hosts) / 2:
            c.scontrol("update", "nodename=" + ",".join(sorted(failed)), "state=resume")
            c.wait_state(sorted(failed)[0], lambda st, reason: st == "idle")
            r = subprocess.run([sys.executable, "-m", "clusterkit", "burnin", "--simulate", "--nodes", "4", "--suite",
                                "quick", "--drain", "--db", str(db)], env=c.env, capture_output=True, text=True,
                               timeout=180)
            assert "NOT draining" in r.stderr and "fleet-wide problem" in r.stderr
            assert not any("drain" in st for st, _ in c.states().values())


def test_drain_uses_slurm_node_and_never_drains_for_clusterkits_own_errors(tmp_path, slurm_cluster):
    """Against the real slurmctld: the inventory's `slurm_node` names the node to drain, a node
    whose only bad results are clusterkit's own (a crashed check, unusable evidence) stays in
    service, and the drain is logged with its finding."""
    from clusterkit.results import CheckResult

    c = slurm_cluster
    inv = tmp_path / "inv.ini"
    inv.write_text("[gpu]\ngpu-a.example.com slurm_node=node1\ngpu-b.example.com slurm_node=node2\n"
                   "node3\nnode4\n")
    broken_tool = node("gpu-b.example.com")
    broken_tool.checks += [CheckResult.error("gpu.ecc", "internal error in check gpu.ecc: KeyError: 'x'",
                                             code="CHECK_CRASHED", component="clusterkit"),
                           CheckResult.error("host.kernel_log", "host/dmesg.txt: a FIFO, not a regular file; refused",
                                             code="INPUT_UNUSABLE")]
    cyc = lambda cycle, on_node: run([node("gpu-a.example.com", fail=[ROW_REMAP]), broken_tool,  # noqa: E731
                                      node("node3"), node("node4")])
    db = tmp_path / "h.db"
    with History(db) as h:
        s = Burnin.start(h, BurninOptions(inventory=str(inv), drain=True), cyc, slurm=Slurm(env=c.env)).run()
    st, reason = c.wait_state("node1", lambda st, r: "drain" in st)
    assert reason.startswith("clusterkit: GPU_ROW_REMAP_PENDING") and "host gpu-a.example.com" in reason
    assert c.states()["node2"][0] == "idle"            # clusterkit's own errors never drain
    assert s.node_status["gpu-b.example.com"] == "error"
    with History(db) as h:
        log = [tuple(r) for r in h.conn.execute("SELECT node, action, reason FROM drains")]
    assert [(n, a) for n, a, _ in log] == [("node1", "drain")] and "GPU_ROW_REMAP_PENDING" in log[0][2]
