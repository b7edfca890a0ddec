"""Simulated GPU/power faults: each is reported as an SRE would call it (and healthy nodes stay quiet)."""

import json

import pytest

from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.evidence.bundle import Bundle, find_bundles
from clusterkit.parsers.nvidia_smi import parse_nvidia_smi_q, parse_topo
from clusterkit.parsers.nvml_json import parse_nvml_json
from clusterkit.sim.cluster import generate
from clusterkit.suites import load_suite

FAULTS = ["gpu.row_remap_pending", "power.node_brake_psu_lost", "gpu.fallen_off_bus"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    generate(d, nodes=4, seed=5, faults=FAULTS)
    bundles = [Bundle.open(p) for p in find_bundles(d) if p.name != "_cluster"]
    r = analyze_bundles(bundles, load_suite("full"), profiles=ProfileResolver())
    faults = {b.host: b.meta["injected_faults"] for b in bundles}
    return r, faults, {b.host: b for b in bundles}


def _node(run, fault):
    r, faults, _ = run
    host = next(h for h, fs in faults.items() if fault in fs)
    n = next(n for n in r.nodes if n.host == host)
    return {c.id: c for c in n.checks}


def _gpu_power_checks(checks):
    return {k: v for k, v in checks.items() if k.startswith(("gpu.", "power."))}


def test_healthy_node_all_gpu_and_power_checks_pass(run):
    r, faults, _ = run
    healthy = next(n for n in r.nodes if not faults[n.host])
    bad = {k: (c.status, c.summary) for k, c in _gpu_power_checks({c.id: c for c in healthy.checks}).items()
           if c.status not in ("pass", "skip")}
    assert bad == {}
    inv = next(c for c in healthy.checks if c.id == "gpu.inventory")
    assert inv.metrics["gpu_count_detected"] == 8 and 480 < inv.metrics["gpu_power_draw_total_w"] < 640


def test_row_remap_pending_is_reset_the_named_gpu(run):
    c = _node(run, "gpu.row_remap_pending")
    f = next(f for f in c["gpu.memory"].findings if f.code == "GPU_ROW_REMAP_PENDING")
    assert f.severity == "fail" and f.component.startswith("GPU ") and "SN " in f.component
    assert "reset the GPU" in f.action
    assert c["power.step"].status == "pass" and c["power.psu"].status == "pass"


def test_psu_lost_node_is_a_node_power_problem_not_a_gpu_fault(run):
    c = _node(run, "power.node_brake_psu_lost")
    step = c["power.step"]
    fails = [f for f in step.findings if f.severity == "fail"]
    assert [f.code for f in fails] == ["POWER_NODE_DELIVERY"]
    assert "8 of 8 GPUs" in fails[0].message and "PS2" in fails[0].action and "BIOS 1.9.2" in fails[0].action
    assert [f.code for f in c["power.psu"].findings if f.severity == "fail"] == ["POWER_PSU_FAILED", "POWER_PSU_REDUNDANCY_LOST"]
    assert c["power.psu"].findings[0].component == "PS2 Status"
    # no GPU is blamed anywhere on that node
    gpu_fails = [(k, f.code) for k, v in _gpu_power_checks(c).items() for f in v.findings
                 if f.severity == "fail" and f.component.startswith("GPU")]
    assert gpu_fails == []
    drift = c["gpu.version_drift"].findings
    assert [(f.code, f.observed) for f in drift] == [("NODE_BIOS_DRIFT", "1.9.2")]


def test_fallen_off_bus_gpu_named_by_inventory_xid_and_power_step(run):
    c = _node(run, "gpu.fallen_off_bus")
    assert c["gpu.inventory"].status == "fail" and "found 7" in c["gpu.inventory"].summary
    x = [f for f in c["gpu.xid"].findings if f.code == "GPU_XID_79"]
    assert len(x) == 1 and x[0].observed == 1                     # the Xid line and the driver's echo are one event
    drop = [f for f in c["power.step"].findings if f.code == "POWER_GPU_DROPPED"]
    assert len(drop) == 1 and drop[0].severity == "fail"
    bus = x[0].component.split("(")[1].split(")")[0]
    assert bus in drop[0].component                              # the same GPU in both
    assert not any(f.code == "POWER_NODE_DELIVERY" for f in c["power.step"].findings)


def test_simulated_files_are_in_the_real_formats(run):
    _, faults, bundles = run
    b = next(b for h, b in bundles.items() if "gpu.fallen_off_bus" in faults[h])
    q = parse_nvidia_smi_q(b.text("gpu/nvidia-smi-q.txt"))
    nv = parse_nvml_json(b.text("gpu/nvml.json"))
    assert q.count == nv.count == 7 and q.driver_version == nv.driver_version
    ok_q = [g for g in q.gpus if not g.error]
    ok_nv = {g.pci_bus_id: g for g in nv.gpus if not g.error}
    for g in ok_q:   # -q rendered from the same facts reads back identically
        n = ok_nv[g.pci_bus_id]
        assert (g.serial, g.uuid, g.vbios_version, g.power_limit_w, g.remap_pending) == \
               (n.serial, n.uuid, n.vbios_version, n.power_limit_w, n.remap_pending)
    t = parse_topo(b.text("gpu/topo.txt"))
    assert len(t.gpus) == 8 and all(t.nearest_nic(g)[1] == "PIX" for g in t.gpus)
    assert json.loads(b.text("gpu/nvml.json"))["backend"] == "fake"


def test_node_without_gpus_in_simulation(tmp_path):
    from clusterkit.evidence.bundle import BundleWriter
    from clusterkit.sim.gpu import generate_gpu
    from clusterkit.sim.registry import SimNode
    import random

    node = SimNode("cpu-01", 0, {"gpu_count": 0}, [], random.Random(1))
    w = BundleWriter(tmp_path / "cpu-01", "cpu-01", simulated=True, declared={"gpu_count": 0})
    generate_gpu(node, w)
    w.finish()
    r = analyze_bundles([Bundle.open(tmp_path / "cpu-01")], load_suite("full"), profiles=ProfileResolver())
    checks = {c.id: c for c in r.nodes[0].checks}
    ran = {k: (v.status, v.summary) for k, v in _gpu_power_checks(checks).items()}
    assert len(ran) >= 13 and set(ran.values()) == {("skip", "no NVIDIA GPU")}, ran


def test_simulated_dcgmi_diag_names_the_remap_gpu(run):
    c = _node(run, "gpu.row_remap_pending")["gpu.dcgmi_diag"]
    assert c.status == "fail" and c.findings[0].code == "GPU_DCGM_DIAG_FAIL"
    mem = next(f for f in _node(run, "gpu.row_remap_pending")["gpu.memory"].findings if f.code == "GPU_ROW_REMAP_PENDING")
    assert c.findings[0].component == mem.component          # DCGM's "GPU: 4" named as GPU 4 (bus, SN)
    assert "row remapping is pending. Drain and reset the GPU." in c.findings[0].evidence
    r, faults, _ = run
    healthy = next(n for n in r.nodes if not faults[n.host])
    assert next(c for c in healthy.checks if c.id == "gpu.dcgmi_diag").status == "pass"


@pytest.mark.parametrize("model", ["a100-sxm4-40gb", "a100-sxm4-80gb", "h100-pcie-80gb"])
def test_healthy_clusters_of_every_model_pass(tmp_path, model):
    generate(tmp_path, nodes=2, seed=1, gpu_model=model, faults=[])
    bundles = [Bundle.open(p) for p in find_bundles(tmp_path) if p.name != "_cluster"]
    r = analyze_bundles(bundles, load_suite("full"), profiles=ProfileResolver())
    for n in r.nodes:
        bad = {c.id: c.summary for c in n.checks if c.id.startswith(("gpu.", "power.")) and c.status not in ("pass", "skip")}
        assert bad == {}, (model, bad)
        step = next(c for c in n.checks if c.id == "power.step")
        assert step.status == "pass" and step.metrics["power_step_gpus"] == 8
