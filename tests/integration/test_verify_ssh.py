"""`clusterkit verify` end to end over SSH against real sshd nodes (no GPU here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def _verify(inv, known_hosts, *extra: str) -> subprocess.CompletedProcess:
    # run beside the inventory: a failed host goes to ./failed.txt, which must not land in the checkout
    return subprocess.run([sys.executable, "-m", "clusterkit", "verify", "-i", str(inv), "--known-hosts",
                           str(known_hosts), "--format", "json", "--connect-timeout", "5", *extra],
                          capture_output=True, text=True, timeout=120, cwd=inv.parent)


GPU_FAMILIES = ("gpu", "power")      # checks that read GPU evidence: without a GPU they must skip


def _host_and_gpu_suite(path):
    """A suite of the host checks and the GPU families that exist in this tree."""
    from clusterkit.checks.registry import CHECKS
    from clusterkit.plugins import load_all

    load_all()
    families = ["host"] + [f for f in GPU_FAMILIES if any(c.startswith(f + ".") for c in CHECKS)]
    path.write_text("checks = [" + ", ".join(f'"{f}.*"' for f in families) + "]\n")
    return path


def _judged(host_checks: dict[str, str]) -> dict[str, str]:
    """Host checks that judge every Linux node: host.pcie reads only NVIDIA/Mellanox functions, which a
    plain test node has none of, host.mcelog reads mcelog's decoded records (a paste, or a node whose
    mcelog service keeps /var/log/mcelog) and host.rasdaemon rasdaemon's database (`ras-mc-ctl`), which
    nothing collects here: they skip there."""
    only_some = ("host.pcie", "host.mcelog", "host.rasdaemon")
    for cid in only_some:
        assert host_checks.get(cid) in (None, "skip")
    return {i: s for i, s in host_checks.items() if i not in only_some}


def test_verify_reports_host_checks_pass_and_gpu_checks_skip(sshd_cluster, tmp_path):
    nodes = sshd_cluster.nodes
    inv = sshd_cluster.write_inventory(tmp_path / "hosts.ini", nodes)     # no GPUs declared
    suite = _host_and_gpu_suite(tmp_path / "suite.toml")
    r = _verify(inv, sshd_cluster.known_hosts, "--suite", str(suite), "--keep-evidence", str(tmp_path / "evidence"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    run = json.loads(r.stdout)
    assert [n["host"] for n in run["nodes"]] == [n.name for n in nodes]
    for node in run["nodes"]:
        assert node["outcome"] == "ok"
        by_id = {c["id"]: c for c in node["checks"]}
        host_checks = {i: c["status"] for i, c in by_id.items() if i.startswith("host.")}
        assert {"host.reachable", "host.kernel", "host.clock"} <= set(host_checks)
        assert set(_judged(host_checks).values()) == {"pass"}, sorted(host_checks.items())
        gpu = {i: c["status"] for i, c in by_id.items() if i.split(".")[0] in GPU_FAMILIES}
        assert set(gpu.values()) <= {"skip"}, f"no GPU here, so every GPU check must skip: {gpu}"
    # the evidence kept is what the node printed
    uname = (tmp_path / "evidence" / nodes[0].name / "host" / "uname.txt").read_text()
    assert uname == subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout


def test_verify_names_lost_nodes_and_still_checks_the_others(sshd_cluster, tmp_path):
    import socket

    good = sshd_cluster.nodes[0]
    inv = sshd_cluster.write_inventory(tmp_path / "hosts.ini", [good])
    with socket.socket() as mute:                     # accepts, never speaks SSH: a hung sshd
        mute.bind(("127.0.0.1", 0))
        mute.listen(4)
        with inv.open("a") as f:
            f.write(f"down01 ansible_host=127.0.0.1 ansible_port={sshd_cluster.closed_port()} ansible_user=root\n"
                    f"mute01 ansible_host=127.0.0.1 ansible_port={mute.getsockname()[1]} ansible_user=root\n")
        r = _verify(inv, sshd_cluster.known_hosts, "--connect-timeout", "1")
    assert r.returncode == 1, r.stderr
    nodes = {n["host"]: n for n in json.loads(r.stdout)["nodes"]}
    assert nodes["down01"]["outcome"] == "unreachable"
    assert "connection refused" in nodes["down01"]["message"]
    assert nodes["mute01"]["outcome"] == "unreachable" and "no SSH banner" in nodes["mute01"]["message"]
    assert "Traceback" not in r.stderr and "paramiko" not in r.stderr, r.stderr
    assert nodes[good.name]["outcome"] == "ok"
    assert set(_judged({c["id"]: c["status"] for c in nodes[good.name]["checks"] if c["id"].startswith("host.")}).values()) == {"pass"}


def test_verify_fails_a_node_that_declares_gpus_it_does_not_have(sshd_cluster, tmp_path):
    from clusterkit.checks.registry import CHECKS
    from clusterkit.plugins import load_all

    load_all()
    if "gpu.inventory" not in CHECKS:
        pytest.skip("the gpu family is not in this tree")
    node = sshd_cluster.nodes[1]
    inv = sshd_cluster.write_inventory(tmp_path / "hosts.ini", [node], host_vars={
        node.name: {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8}})
    r = _verify(inv, sshd_cluster.known_hosts, "--suite", str(_host_and_gpu_suite(tmp_path / "suite.toml")))
    assert r.returncode == 1, r.stderr
    checks = {c["id"]: c for c in json.loads(r.stdout)["nodes"][0]["checks"]}
    assert checks["gpu.inventory"]["status"] == "fail"
    assert "8" in checks["gpu.inventory"]["summary"] and "h100" in checks["gpu.inventory"]["summary"].lower()
    assert set(_judged({i: c["status"] for i, c in checks.items() if i.startswith("host.")}).values()) == {"pass"}


def test_default_quick_suite_raises_no_false_alarm_on_plain_linux_nodes(sshd_cluster, tmp_path):
    """Nodes that declare no GPU and no fabric: every check passes or skips with its reason."""
    inv = sshd_cluster.write_inventory(tmp_path / "hosts.ini", sshd_cluster.nodes[:2])
    r = _verify(inv, sshd_cluster.known_hosts)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    run = json.loads(r.stdout)
    for node in run["nodes"]:
        bad = {c["id"]: c["summary"] for c in node["checks"] if c["status"] not in ("pass", "skip")}
        assert not bad, bad
        skipped = {c["id"]: c["summary"] for c in node["checks"] if c["status"] == "skip"}
        assert skipped["gpu.inventory"] == "no NVIDIA GPU"
        assert "InfiniBand/RoCE" in skipped["fabric.ports"]
    assert all(c["status"] in ("pass", "skip") for c in run["cluster_checks"])
