"""`clusterkit verify` end to end over SSH against real sshd nodes (no GPU here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def _verify(inv, known_hosts, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clusterkit", "verify", "-i", str(inv), "--known-hosts",
                           str(known_hosts), "--format", "json", "--connect-timeout", "5", *extra],
                          capture_output=True, text=True, timeout=120)


def test_verify_reports_host_checks_pass_and_gpu_checks_skip(sshd_cluster, tmp_path):
    nodes = sshd_cluster.nodes
    inv = sshd_cluster.write_inventory(tmp_path / "hosts.ini", nodes, host_vars={
        nodes[1].name: {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8}})
    r = _verify(inv, sshd_cluster.known_hosts, "--keep-evidence", str(tmp_path / "evidence"))
    assert r.returncode == 0, r.stderr
    run = json.loads(r.stdout)
    assert [n["host"] for n in run["nodes"]] == [n.name for n in nodes]
    for node in run["nodes"]:
        assert node["outcome"] == "ok"
        by_id = {c["id"]: c for c in node["checks"]}
        host_checks = {i: c["status"] for i, c in by_id.items() if i.startswith("host.")}
        assert {"host.reachable", "host.kernel", "host.clock"} <= set(host_checks)
        assert set(host_checks.values()) == {"pass"}, host_checks
        others = {i: c["status"] for i, c in by_id.items() if not i.startswith("host.")}
        assert set(others.values()) <= {"skip"}, f"no GPU here, so every GPU check must skip: {others}"
    # the evidence kept is what the node printed
    uname = (tmp_path / "evidence" / nodes[0].name / "host" / "uname.txt").read_text()
    assert uname == subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout


def test_verify_names_a_lost_node_and_still_checks_the_others(sshd_cluster, tmp_path):
    good = sshd_cluster.nodes[0]
    inv = sshd_cluster.write_inventory(tmp_path / "hosts.ini", [good])
    with inv.open("a") as f:
        f.write(f"down01 ansible_host=127.0.0.1 ansible_port={sshd_cluster.closed_port()} ansible_user=root\n")
    r = _verify(inv, sshd_cluster.known_hosts)
    assert r.returncode == 1, r.stderr
    nodes = {n["host"]: n for n in json.loads(r.stdout)["nodes"]}
    assert nodes["down01"]["outcome"] == "unreachable"
    assert "connection refused" in nodes["down01"]["message"]
    assert nodes[good.name]["outcome"] == "ok"
    assert {c["status"] for c in nodes[good.name]["checks"] if c["id"].startswith("host.")} == {"pass"}
