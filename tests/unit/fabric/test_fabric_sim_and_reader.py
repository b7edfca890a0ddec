"""Simulated fabric faults are found as what they are; the sysfs reader on a fake root."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clusterkit.evidence.bundle import Bundle, find_bundles
from clusterkit.node_scripts.fabric_counters import read_snapshot
from clusterkit.plugins import load_all
from clusterkit.probes.registry import PHASE_AFTER, PHASE_BEFORE, PROBES, ProbeEnv
from clusterkit.sim.cluster import generate
from tests.fabric_helpers import analyze

FAULTS = ["fabric.dirty_fiber", "fabric.flapping_link", "fabric.half_rate", "fabric.saturated_counters"]


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory):
    load_all()
    out = generate(tmp_path_factory.mktemp("sim"), nodes=5, seed=7, faults=FAULTS)
    bundles = [Bundle.open(p) for p in find_bundles(out) if p.name != "_cluster"]
    run = analyze(bundles)
    faults = {b.host: b.meta.get("injected_faults", []) for b in bundles}
    return run, faults


# Fabric-wide tools the per-node probes do not run (ibswinfo, ibdiagnet): their checks skip on sim nodes.
NO_NODE_EVIDENCE = ("fabric.switches", "fabric.ibdiagnet")


def _node(run, faults, fault):
    host = next(h for h, f in faults.items() if fault in f)
    return {c.id: c for c in next(n for n in run.nodes if n.host == host).checks}, host


def test_healthy_sim_node_passes(sim_run):
    run, faults = sim_run
    host = next(h for h, f in faults.items() if not any(x.startswith("fabric.") for x in f))
    checks = next(n for n in run.nodes if n.host == host).checks
    assert {c.id: c.status for c in checks if c.id.startswith("fabric.") and c.id not in NO_NODE_EVIDENCE} == {
        "fabric.ports": "pass", "fabric.counters": "pass", "fabric.flaps": "pass", "fabric.ber": "pass",
        "fabric.optics": "pass", "fabric.kernel_log": "pass"}


def test_dirty_fiber_reported_as_that_link_with_clean_action(sim_run):
    run, faults = sim_run
    checks, host = _node(run, faults, "fabric.dirty_fiber")
    lane = next(f for f in checks["fabric.optics"].findings if f.code == "FABRIC_RX_LANE_WEAK_FIBER")
    dev = lane.component.split()[0]
    sym = next(f for f in checks["fabric.counters"].findings if f.code == "IB_SYMBOL_ERROR_INCREASED")
    assert sym.component.split()[0] == dev and sym.severity == "fail"
    links = next(c for c in run.cluster_checks if c.id == "fabric.links")
    verdict = next(f for f in links.findings if f.component.startswith(f"link {host} {dev} port 1"))
    assert "clean/re-terminate" in verdict.action and "MQM9700" in verdict.component


def test_flapping_link_half_rate_and_saturated_counters(sim_run):
    run, faults = sim_run
    checks, _ = _node(run, faults, "fabric.flapping_link")
    codes = {f.code for f in checks["fabric.flaps"].findings}
    assert {"IB_LINK_DOWNED_INCREASED", "FABRIC_LINK_FLAPS_KERNEL_LOG"} <= codes
    assert checks["fabric.flaps"].metrics["link_flaps_total"] >= 2
    checks, _ = _node(run, faults, "fabric.half_rate")
    rate = [f for f in checks["fabric.ports"].findings if f.severity == "fail"]
    assert rate and rate[0].observed == 200 and "reseat" in rate[0].action
    checks, _ = _node(run, faults, "fabric.saturated_counters")
    sat = checks["fabric.counters"].findings[0]
    assert "at least 535" in sat.message and "saturated" in sat.message and "reset" in sat.action


def _fake_sysfs(root: Path, symbol_error: int, carrier: int) -> None:
    port = root / "sys/class/infiniband/mlx5_0/ports/1"
    (port / "counters").mkdir(parents=True)
    (port / "hw_counters").mkdir()
    (port / "counters/symbol_error").write_text(f"{symbol_error}\n")
    (port / "counters/link_downed").write_text("0\n")
    (port / "hw_counters/out_of_buffer").write_text("7\n")
    (port / "state").write_text("4: ACTIVE\n")
    (port / "rate").write_text("400 Gb/sec (4X NDR)\n")
    (root / "sys/class/infiniband/mlx5_0/fw_ver").write_text("28.39.1002\n")
    (root / "sys/class/infiniband/mlx5_0/device/net/ibp0s0").mkdir(parents=True)
    net = root / "sys/class/net/ibp0s0"
    net.mkdir(parents=True)
    (net / "carrier_changes").write_text(f"{carrier}\n")
    (net / "operstate").write_text("up\n")
    (root / "proc").mkdir()
    (root / "proc/uptime").write_text("1234.5 99.0\n")


def test_reader_on_fake_root_feeds_the_checks(tmp_path):
    before, after = tmp_path / "b", tmp_path / "a"
    _fake_sysfs(before, 5, 2)
    _fake_sysfs(after, 95, 4)
    sb, sa = read_snapshot(str(before), "before"), read_snapshot(str(after), "after")
    p = sa["ib"]["mlx5_0/1"]
    assert p["counters"] == {"symbol_error": 95, "link_downed": 0} and p["hw_counters"] == {"out_of_buffer": 7}
    assert p["netdevs"] == ["ibp0s0"] and p["fw_ver"] == "28.39.1002" and sa["uptime_s"] == 1234.5
    sa["taken_at"] = sb["taken_at"] + 300
    b = Bundle.virtual("n", {"fabric/counters-before.json": json.dumps(sb), "fabric/counters-after.json": json.dumps(sa)},
                       {"host": "n", "declared": {}})
    run = analyze([b], "fabric.counters", "fabric.flaps")
    checks = {c.id: c for c in run.nodes[0].checks}
    assert checks["fabric.counters"].findings[0].observed == 90
    assert checks["fabric.flaps"].findings[0].code == "FABRIC_CARRIER_CHANGES"   # the HCA's netdev is watched


def test_probe_sends_the_same_reader_on_stdin_before_and_after(tmp_path):
    load_all()
    cmds = PROBES["fabric.counters"].plan(ProbeEnv("n", None, None))
    assert [c.phase for c in cmds] == [PHASE_BEFORE, PHASE_AFTER]
    assert cmds[0].argv[:2] == ["python3", "-"]
    _fake_sysfs(tmp_path, 3, 1)
    r = subprocess.run([sys.executable, "-", *cmds[1].argv[2:], "--root", str(tmp_path)], input=cmds[1].stdin,
                       capture_output=True, timeout=30)
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["phase"] == "after" and doc["ib"]["mlx5_0/1"]["counters"]["symbol_error"] == 3


def test_roce_sim_node_faults_through_ethtool(tmp_path):
    import random

    from clusterkit.evidence.bundle import BundleWriter
    from clusterkit.sim.fabric import generate as fabric_generate
    from clusterkit.sim.registry import SimNode

    spec = {"roce_interfaces": ["ens0np0", "ens1np0"], "roce_rate_gbps": 200}
    out = []
    for i, faults in enumerate([[], ["fabric.dirty_fiber"]]):
        node = SimNode(f"r{i}", i, spec, faults, random.Random(5))
        w = BundleWriter(tmp_path / node.host, node.host, simulated=True, declared=spec)
        fabric_generate(node, w)
        w.finish()
        out.append(Bundle.open(tmp_path / node.host))
    run = analyze(out)
    # not collected in these fabric-only bundles (no kernel log either): those skip
    healthy = {c.id: c.status for c in run.nodes[0].checks if c.id not in NO_NODE_EVIDENCE + ("fabric.kernel_log",)}
    assert set(healthy.values()) == {"pass"} and "fabric.ber" in healthy
    bad = {c.id: c for c in run.nodes[1].checks}
    assert bad["fabric.counters"].findings[0].code.startswith("ETH_RX_") and bad["fabric.counters"].status == "fail"
    assert bad["fabric.optics"].findings[0].code == "FABRIC_RX_LANE_WEAK_FIBER"
    assert bad["fabric.ber"].metrics["raw_ber_max"] > 1e-5


def test_ethtool_and_mlxlink_probes_follow_the_declaration():
    from clusterkit.inventory import HostSpec

    load_all()
    spec = HostSpec("n", "10.0.0.1", ib_devices=["mlx5_0"], roce_interfaces=["ens1np0", "x; rm -rf /"])
    env = ProbeEnv("n", spec, None)
    eth = PROBES["fabric.ethtool"].plan(env)
    # a name that cannot be an interface is not collected (it would also become a bundle path)
    assert [(c.path, c.phase) for c in eth] == [
        ("fabric/before/ethtool-S-ens1np0.txt", PHASE_BEFORE),
        ("fabric/ethtool-S-ens1np0.txt", PHASE_AFTER),
        ("fabric/ethtool-m-ens1np0.txt", PHASE_AFTER)]
    assert eth[0].argv == ["ethtool", "-S", "ens1np0"]
    mlx = PROBES["fabric.mlxlink"].plan(env)
    assert mlx[0].argv[:3] == ["mlxlink", "-d", "mlx5_0"] and mlx[0].root and mlx[0].optional
    assert PROBES["fabric.ethtool"].plan(ProbeEnv("n", None, None)) == []
