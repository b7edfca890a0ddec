"""`clusterkit check --local` as Slurm runs it, on a real slurmctld + slurmd per node: the health check
drains its own failing node (and resumes it once healthy), a failing prolog keeps a job off its node,
and `verify --launcher srun` over 4 nodes gives the verdicts of the same evidence analyzed directly.

Nodes differ by the tools on their PATH (tests/node_roots.py): Slurm itself is real and untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.burnin.slurm_cluster import running_slurm
from tests.node_roots import GPU_LOST_SMI, HEALTHY_DMESG, XID79_DMESG, NodeRoots

pytestmark = pytest.mark.integration


def _until(pred, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout_s:g} s: {what}")


def _slurm_runs_check(roots: NodeRoots, name: str, budget: int, conf_lines: str):
    """slurm.conf lines (with `{script}`) for a script that runs `check --local --drain` as each node,
    logging to ROOT/<node>/NAME.log; it needs the test cluster's SLURM_CONF for scontrol."""
    def conf(cluster_dir: Path) -> str:
        script = roots.script(name, ["check", "--local", "--drain", "--budget", str(budget)], log=True,
                              env={"SLURM_CONF": str(cluster_dir / "slurm.conf")})
        return conf_lines.format(script=script)
    return conf


def _roots(tmp_path: Path, nodes: list[str]) -> NodeRoots:
    """Node environments where node1's kernel log has a GPU fallen off the bus."""
    roots = NodeRoots(tmp_path / "nodes", nodes)
    roots.tool("node1", "dmesg", XID79_DMESG)
    return roots


def test_health_check_drains_its_failing_node_and_resumes_it_once_healthy(tmp_path):
    nodes = ["node1", "node2", "node3"]
    roots = _roots(tmp_path, nodes)
    conf = _slurm_runs_check(roots, "healthcheck", 20, "HealthCheckProgram={script}\nHealthCheckInterval=5\n"
                                                       "HealthCheckNodeState=ANY\n")
    with running_slurm(nodes, conf) as c:
        st, reason = c.wait_state("node1", lambda st, r: "drain" in st, timeout_s=40)
        assert reason.startswith("clusterkit: GPU_XID_79 GPU at PCI 0000:1b:00.0"), reason
        _until(lambda: "clusterkit check node2: PASS" in roots.log("node2", "healthcheck"), 30, "node2 checked")
        assert c.states()["node2"] == ("idle", "none") and c.states()["node3"] == ("idle", "none")
        assert "slurm: drain node1: clusterkit: GPU_XID_79" in roots.log("node1", "healthcheck")

        # an admin takes node3 out; node1 is repaired: the next health checks resume only clusterkit's drain
        c.scontrol("update", "nodename=node3", "state=drain", "reason=RMA 7781")
        passes = roots.log("node3", "healthcheck").count(": PASS")
        roots.tool("node1", "dmesg", HEALTHY_DMESG)
        c.wait_state("node1", lambda st, r: st == "idle", timeout_s=40)
        _until(lambda: roots.log("node3", "healthcheck").count(": PASS") > passes, 30, "node3 checked again")
        assert c.states()["node3"] == ("drained", "RMA 7781")
        assert "slurm: skip node3: drained by someone else: RMA 7781" in roots.log("node3", "healthcheck")


def test_a_failing_prolog_keeps_the_job_off_its_node(tmp_path):
    nodes = ["node1", "node2"]
    roots = _roots(tmp_path, nodes)
    # a job whose prolog failed goes back to the queue instead of being held (it should run, elsewhere)
    conf = _slurm_runs_check(roots, "prolog", 15, "Prolog={script}\nSchedulerParameters=nohold_on_prolog_fail\n")
    with running_slurm(nodes, conf) as c:
        c.scontrol("update", "nodename=node2", "state=drain", "reason=busy")   # the job can only start on node1
        out = tmp_path / "job.out"
        out.write_text("")
        out.chmod(0o666)
        sub = subprocess.run(["sbatch", "--parsable", "-o", str(out), "--wrap", 'echo "ran on $SLURMD_NODENAME"'],
                             env=c.env, capture_output=True, text=True, timeout=30, check=True)
        job = sub.stdout.strip().split(";")[0]
        c.wait_state("node1", lambda st, r: "drain" in st, timeout_s=40)
        assert "GPU_XID_79" in roots.log("node1", "prolog")
        # requeued (not run): it waits for its new begin time; bring node2 back and start it now
        _until(lambda: subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], env=c.env, capture_output=True,
                                      text=True, timeout=15).stdout.strip() == "PENDING", 30, "job requeued")
        c.scontrol("update", "nodename=node2", "state=resume")
        c.scontrol("update", f"jobid={job}", "starttime=now")
        _until(lambda: "ran on" in out.read_text(), 60, "job ran")
        assert "ran on node2" in out.read_text() and "ran on node1" not in out.read_text()
        assert "clusterkit check node2: PASS" in roots.log("node2", "prolog")
        # Slurm drains a node whose prolog failed; the reason clusterkit gave first is kept
        st, reason = c.states()["node1"]
        assert st == "drained" and reason.startswith("clusterkit: GPU_XID_79 GPU at PCI 0000:1b:00.0"), reason


def _verdicts(report: dict) -> dict[str, tuple[str, str, set[str]]]:
    """node -> (outcome, status, failing finding codes)."""
    out = {}
    for n in report["nodes"]:
        codes = {f["code"] for c in n["checks"] if c["status"] == "fail" for f in c["findings"] if f["severity"] == "fail"}
        out[n["host"]] = (n["outcome"], n["status"], codes)
    return out


def _clusterkit(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clusterkit", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_verify_through_srun_matches_the_same_evidence_analyzed_directly(tmp_path):
    nodes = ["node1", "node2", "node3", "node4"]
    roots = NodeRoots(tmp_path / "nodes", nodes)
    roots.tool("node2", "dmesg", XID79_DMESG)
    roots.tool("node3", "nvidia-smi", GPU_LOST_SMI, exit_code=15)
    roots.without_clusterkit("node4")
    node_cmd = roots.script("node-clusterkit", [])
    shared = tmp_path / "shared"
    with running_slurm(nodes, "") as c:
        r = _clusterkit("verify", "--launcher", "srun", "--nodelist", "node[1-4]", "--suite", "node",
                        "--node-clusterkit", str(node_cmd), "--keep-evidence", str(shared), "--deadline", "120",
                        "--format", "json", env=c.env)
    assert r.returncode == 1, r.stderr
    via_srun = _verdicts(json.loads(r.stdout))
    assert via_srun["node1"][:2] == ("ok", "pass")
    assert via_srun["node2"][1] == "fail" and "GPU_XID_79" in via_srun["node2"][2]
    assert via_srun["node3"][1] == "fail" and "GPU_UNREADABLE" in via_srun["node3"][2]
    # the node without clusterkit: unreachable, with srun's own words
    report = {n["host"]: n for n in json.loads(r.stdout)["nodes"]}
    assert via_srun["node4"][0] == "unreachable"
    assert "srun: error: node4: task 3: Exited with exit code 127" in report["node4"]["message"]
    assert "clusterkit: command not found" in report["node4"]["message"]
    assert (shared / ".clusterkit" / "srun.log").is_file()

    # the same evidence analyzed directly gives the same verdicts
    again = _clusterkit("analyze", str(shared), "--suite", "node", "--format", "json")
    assert _verdicts(json.loads(again.stdout)) == via_srun
    # and the same nodes checked by hand, without Slurm, too
    direct = tmp_path / "direct"
    for n in nodes[:3]:
        p = subprocess.run([str(node_cmd), "check", "--local", "--collect-only", str(direct)], env=roots.env(n),
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
    by_hand = _verdicts(json.loads(_clusterkit("analyze", str(direct), "--suite", "node", "--format", "json").stdout))
    assert by_hand == {n: via_srun[n] for n in nodes[:3]}


def test_the_multi_node_nccl_test_runs_as_an_srun_step_on_the_chosen_nodes(tmp_path):
    """No GPU here: `all_reduce_perf` on the nodes' PATH prints an nccl-tests table (rank 0) and says
    where each rank ran; what is real is the srun step that starts it and the verdict on its output."""
    from tests.unit.nccl.nccl_fixtures import CURRENT_8X_H100

    nodes = ["node1", "node2"]
    roots = NodeRoots(tmp_path / "nodes", nodes)
    fake = tmp_path / "bin"
    fake.mkdir()
    (tmp_path / "table.txt").write_text(CURRENT_8X_H100)
    (fake / "all_reduce_perf").write_text(
        f'#!/bin/sh\necho "$SLURMD_NODENAME" >> {tmp_path}/ranks.txt\n'
        f'[ "$SLURM_PROCID" = 0 ] && cat {tmp_path}/table.txt\nexit 0\n')
    (fake / "all_reduce_perf").chmod(0o755)
    inv = tmp_path / "inventory.json"
    inv.write_text(json.dumps({"all": {"hosts": {
        f"gpu-{n}": {"gpu_model": "h100-sxm5-80gb", "gpu_count": 1, "slurm_node": n} for n in nodes}}}))
    suite = tmp_path / "multinode.toml"
    suite.write_text('description = "multi-node NCCL only"\nchecks = ["nccl.multi_node"]\n')
    shared = tmp_path / "shared"
    with running_slurm(nodes, "") as c:
        r = _clusterkit("verify", "--launcher", "srun", "-i", str(inv), "--suite", str(suite),
                        "--node-clusterkit", str(roots.script("node-clusterkit", [])), "--keep-evidence", str(shared),
                        "--deadline", "120", "--format", "json", env=dict(c.env, PATH=f"{fake}:{os.environ['PATH']}"))
    assert r.stdout, r.stderr
    report = json.loads(r.stdout)
    assert {n["host"]: n["outcome"] for n in report["nodes"]} == {"gpu-node1": "ok", "gpu-node2": "ok"}, r.stderr
    step = json.loads((shared / "_cluster" / "bundle.json").read_text())["commands"][0]
    assert step["command"].startswith("srun --nodes=2 --ntasks-per-node=1 --nodelist=node1,node2 ")
    assert sorted((tmp_path / "ranks.txt").read_text().split()) == nodes          # one rank on each chosen node
    multi = next(c for c in report["cluster_checks"] if c["id"] == "nccl.multi_node")
    assert multi["status"] == "pass" and multi["metrics"]["busbw_large_gbps"] == pytest.approx(477.8, abs=0.1), multi
