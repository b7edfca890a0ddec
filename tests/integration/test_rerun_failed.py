"""`--limit @failed.txt` against real sshd nodes: a run writes the hosts it could not judge, and the rerun
covers exactly those hosts (and ansible reads the same file)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
CHECKS = "host.reachable,host.disk"


def _verify(inv: Path, known_hosts: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clusterkit", "verify", "-i", str(inv), "--known-hosts",
                           str(known_hosts), "--connect-timeout", "5", "--checks", CHECKS, "--format", "json", *extra],
                          capture_output=True, text=True, timeout=120)


def test_failed_txt_reruns_exactly_the_failed_hosts(sshd_cluster, tmp_path):
    nodes = sshd_cluster.nodes
    inv = sshd_cluster.write_inventory(tmp_path / "hosts.ini", nodes)
    with inv.open("a") as f:
        f.write(f"down01 ansible_host=127.0.0.1 ansible_port={sshd_cluster.closed_port()} ansible_user=root\n")
    wrong = sshd_cluster.write_known_hosts(tmp_path / "wrong_known_hosts", wrong_key_for=(nodes[2].name,))
    db = tmp_path / "history.db"

    night1 = tmp_path / "night1"
    r1 = _verify(inv, wrong, "-o", str(night1 / "report.json"), "--db", str(db))
    assert r1.returncode == 1, r1.stderr
    report = json.loads((night1 / "report.json").read_text())
    outcomes = {n["host"]: n["outcome"] for n in report["nodes"]}
    assert outcomes == {nodes[0].name: "ok", nodes[1].name: "ok", nodes[2].name: "error", "down01": "unreachable"}
    failed = night1 / "failed.txt"
    assert sorted(failed.read_text().split()) == ["down01", nodes[2].name] == sorted(report["summary"]["rerun_hosts"])
    assert f"--limit @{failed}" in r1.stderr

    # the host key is fixed; the rerun reaches exactly the failed hosts and says what changed for them
    night2 = tmp_path / "night2"
    r2 = _verify(inv, sshd_cluster.known_hosts, "--limit", f"@{failed}", "-o", str(night2 / "report.json"),
                 "--compare", str(db))
    assert r2.returncode == 1, r2.stderr
    report = json.loads((night2 / "report.json").read_text())
    assert sorted(n["host"] for n in report["nodes"]) == ["down01", nodes[2].name]
    assert {n["host"]: n["outcome"] for n in report["nodes"]} == {nodes[2].name: "ok", "down01": "unreachable"}
    assert (night2 / "failed.txt").read_text() == "down01\n"
    changes = report["changes"]
    assert changes["outcome_changes"] == [{"host": nodes[2].name, "before": "error", "now": "ok"}]
    assert changes["previous_run_of"] == {nodes[2].name: 1, "down01": 1}

    # one host name a line: Ansible's own --limit @FILE reads it as well
    ansible = shutil.which("ansible", path=str(Path(sys.executable).parent)) or shutil.which("ansible")
    if ansible is None:
        pytest.skip("ansible not installed")
    listed = subprocess.run([ansible, "-i", str(inv), "all", "--limit", f"@{night2 / 'failed.txt'}", "--list-hosts"],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert [x.strip() for x in listed.stdout.splitlines()[1:]] == ["down01"]


def test_a_burnin_writes_its_failed_hosts_beside_the_history(sshd_cluster, tmp_path):
    inv = sshd_cluster.write_inventory(tmp_path / "hosts.ini", sshd_cluster.nodes[:1])
    with inv.open("a") as f:
        f.write(f"down01 ansible_host=127.0.0.1 ansible_port={sshd_cluster.closed_port()} ansible_user=root\n")
    db = tmp_path / "night" / "history.db"
    r = subprocess.run([sys.executable, "-m", "clusterkit", "burnin", "-i", str(inv), "--known-hosts",
                        str(sshd_cluster.known_hosts), "--connect-timeout", "5", "--checks", "host.reachable",
                        "--cycles", "1", "--db", str(db), "-q"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert (db.parent / "failed.txt").read_text() == "down01\n"
    assert f"--limit @{db.parent / 'failed.txt'}" in r.stderr
