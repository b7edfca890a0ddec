"""gpu.* / power.limits / power.psu checks on bundles built from the fake NVML backend and written fixtures."""

import json

import pytest

from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.checks.registry import CHECKS
from clusterkit.evidence.bundle import Bundle
from clusterkit.plugins import load_all
from clusterkit.probes.nvml_backend import FakeBackend, read_snapshot
from clusterkit.sim.gpu import render_topo
from clusterkit.suites import Suite

load_all()
GPU_CHECKS = sorted(c for c in CHECKS if c.startswith(("gpu.", "power.")))
H100 = {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8}


def nvml_doc(n=8, **patch_by_index):
    doc = read_snapshot(FakeBackend(n))
    for i, patch in patch_by_index.items():
        doc["gpus"][int(i[1:])].update(patch)
    return doc


def run(files, declared=None, checks=None, host="n1", commands=()):
    meta = {"host": host, "declared": declared if declared is not None else dict(H100), "commands": list(commands)}
    b = Bundle.virtual(host, files, meta)
    r = analyze_bundles([b], Suite("t", checks or GPU_CHECKS), profiles=ProfileResolver())
    return {c.id: c for c in r.nodes[0].checks}


def nv(doc):
    return {"gpu/nvml.json": json.dumps(doc)}


def test_healthy_node_passes_with_cost_metrics():
    res = run(nv(nvml_doc()))
    assert {k: v.status for k, v in res.items() if v.status not in ("pass", "skip")} == {}
    m = res["gpu.inventory"].metrics
    assert m == {"gpu_count_detected": 8, "gpu_power_draw_total_w": 576.0}
    assert res["gpu.nvlink"].status == "pass" and "18 NVLinks" in res["gpu.nvlink"].summary


def test_node_without_gpus_skips_every_gpu_and_power_check():
    files = {"gpu/nvml.json": json.dumps(read_snapshot(FakeBackend(missing="library_not_found"))),
             "gpu/nvidia-smi-q.txt": "sh: 1: nvidia-smi: not found\n", "gpu/topo.txt": "sh: nvidia-smi: not found\n",
             "host/dmesg.txt": "[    0.000000] Linux version 6.1.0\n"}
    cmds = [{"path": "gpu/nvidia-smi-q.txt", "exit_code": 127}, {"path": "gpu/topo.txt", "exit_code": 127}]
    res = run(files, declared={"gpu_count": 0}, commands=cmds)
    assert {k: (v.status, v.summary) for k, v in res.items()} == {c: ("skip", "no NVIDIA GPU") for c in GPU_CHECKS
                                                                   if CHECKS[c].scope == "node"}


def test_declared_gpus_but_none_found_fails_inventory():
    files = {"gpu/nvml.json": json.dumps(read_snapshot(FakeBackend(missing="driver_not_loaded")))}
    res = run(files)
    inv = res["gpu.inventory"]
    assert inv.status == "fail"
    assert inv.summary == "declared 8 x h100-sxm5-80gb, found no NVIDIA GPU: check driver installation / PCIe"
    assert inv.metrics["gpu_count_detected"] == 0
    assert res["gpu.ecc"].status == "skip"   # per-GPU checks do not pile on


def test_missing_gpu_and_wrong_model():
    doc = nvml_doc(7, g2={"pci_device_id": "0x233110DE", "name": "NVIDIA H100 PCIe"})
    inv = run(nv(doc))["gpu.inventory"]
    codes = [(f.code, f.component) for f in inv.findings]
    assert ("GPU_COUNT_LOW", "node") in codes
    assert any(c == "GPU_MODEL_MISMATCH" and c2.startswith("GPU 2 (0000:3a:00.0, SN") for c, c2 in codes)
    assert inv.metrics["gpu_count_detected"] == 7


def test_memory_health_remap_pending_failure_and_retired_pages():
    doc = nvml_doc(g1={"remap_pending": True, "remap_uncorrectable": 3, "ecc_volatile_uncorrected": 2},
                   g4={"remap_failure": True}, g6={"retired_pages_dbe": 16, "retired_pages_pending": True},
                   g7={"ecc_aggregate_uncorrected": 5})
    res = run(nv(doc))
    mem = {(f.code, f.component.split(" (")[0]) for f in res["gpu.memory"].findings}
    assert mem == {("GPU_ROW_REMAP_PENDING", "GPU 1"), ("GPU_ROW_REMAP_FAILURE", "GPU 4"),
                   ("GPU_RETIRED_PAGES_LIMIT", "GPU 6"), ("GPU_PAGE_RETIREMENT_PENDING", "GPU 6")}
    pend = next(f for f in res["gpu.memory"].findings if f.code == "GPU_ROW_REMAP_PENDING")
    assert "reset the GPU" in pend.action
    fail = next(f for f in res["gpu.memory"].findings if f.code == "GPU_ROW_REMAP_FAILURE")
    assert fail.action.startswith("RMA")
    ecc = {(f.code, f.severity) for f in res["gpu.ecc"].findings}
    assert ecc == {("GPU_ECC_UNCORRECTABLE", "fail"), ("GPU_ECC_UNCORRECTABLE_HISTORY", "warn")}


def test_pcie_width_always_generation_only_under_load():
    doc = nvml_doc(g0={"pcie_width": 8}, g3={"pcie_gen": 1})   # idle downshift of GPU 3 is normal
    res = run(nv(doc))["gpu.pcie"]
    assert [(f.code, f.component.split(" (")[0]) for f in res.findings] == [("HOST_PCIE_WIDTH_DEGRADED", "GPU 0")]
    trace = ("# clusterkit power-trace v1\n# pcie_under_load: 3,4,5,16,16\n# gpu: 3,00000000:4B:00.0,1,x,700\n"
             "t_s,gpu,phase,power_w,sm_clock_mhz,clock_event_reasons,temp_c,error\n0.0,3,load,600,1900,0x4,60,\n")
    res = run({**nv(nvml_doc()), "gpu/power-trace.csv": trace}, checks=["gpu.pcie"])["gpu.pcie"]
    assert [(f.code, f.observed, f.limit) for f in res.findings] == [("GPU_PCIE_GEN_DEGRADED", 4, 5)]


def test_nvlink_down_and_errors_rising():
    before = nvml_doc()
    before["gpus"][5]["nvlinks"][7]["active"] = False
    after = json.loads(json.dumps(before))
    after["gpus"][2]["nvlinks"][3]["crc_flit_errors"] = 40
    res = run({**nv(before), "gpu/nvml-after.json": json.dumps(after)})["gpu.nvlink"]
    got = [(f.code, f.component.split(" (")[0], f.observed) for f in res.findings]
    assert got == [("GPU_NVLINK_ERRORS_RISING", "GPU 2", 40), ("GPU_NVLINK_DOWN", "GPU 5", 17)]


def test_clock_events_brake_fails_power_cap_is_info():
    doc = nvml_doc(g0={"clock_event_reasons": 0x88}, g1={"clock_event_reasons": 0x4}, g2={"clock_event_reasons": 0x40})
    res = run(nv(doc))["gpu.clock_events"]
    got = [(f.code, f.severity) for f in res.findings]
    assert got == [("GPU_CLOCK_HW_POWER_SLOWDOWN", "fail"), ("GPU_CLOCK_SW_POWER_CAP", "info"), ("GPU_CLOCK_HW_THERMAL", "fail")]
    assert "PSU" in res.findings[0].action


def test_versions_vbios_mix_persistence_and_fabric_manager():
    doc = nvml_doc(g3={"vbios_version": "96.00.30.00.01", "persistence_mode": False}, g4={"fabric_state": "in_progress"})
    files = {**nv(doc), "gpu/fabricmanager.txt": "failed\nFabric Manager version is : 535.129.03\n"}
    res = run(files)["gpu.versions"]
    codes = [f.code for f in res.findings]
    assert codes == ["GPU_VBIOS_MIXED", "GPU_PERSISTENCE_OFF", "GPU_FABRIC_MANAGER_NOT_RUNNING",
                     "GPU_FABRIC_MANAGER_VERSION_MISMATCH", "GPU_FABRIC_NOT_READY"]
    assert "systemctl enable --now nvidia-fabricmanager" in res.findings[2].action


def test_topology_pcie_p2p_and_far_nic():
    topo = render_topo(8, [f"mlx5_{i}" for i in range(8)], "NV18")
    assert run({**nv(nvml_doc()), "gpu/topo.txt": topo}, declared={**H100, "ib_devices": [f"mlx5_{i}" for i in range(8)]},
               checks=["gpu.topology"])["gpu.topology"].status == "pass"
    bad = render_topo(8, [f"mlx5_{i}" for i in range(7)], "NODE")  # NVLink not in use, one NIC missing
    res = run({**nv(nvml_doc()), "gpu/topo.txt": bad}, declared={**H100, "ib_devices": [f"mlx5_{i}" for i in range(8)]},
              checks=["gpu.topology"])["gpu.topology"]
    codes = {f.code for f in res.findings}
    assert codes == {"GPU_P2P_NOT_NVLINK", "GPU_NIC_FAR", "GPU_NIC_MISSING_FROM_TOPOLOGY"}
    far = [f for f in res.findings if f.code == "GPU_NIC_FAR"]
    assert [f.component for f in far] == ["GPU7"]


def test_xid_severity_table_and_profile_ignore_list():
    log = "".join(f"[{100 + k:>12.6f}] NVRM: Xid (PCI:0000:18:00): 13, pid=1, name=python, Graphics Exception\n" for k in range(50))
    log += "[  300.000000] NVRM: Xid (PCI:0000:3a:00): 95, pid=2, name=python, Uncontained: FBHUB. RST: Yes, D-RST: No\n"
    log += "[  301.000000] NVRM: Xid (PCI:0000:3a:00): 154, GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset Required)\n"
    res = run({**nv(nvml_doc()), "host/dmesg.txt": log}, checks=["gpu.xid"])["gpu.xid"]
    got = [(f.code, f.severity, f.observed) for f in res.findings]
    assert got == [("GPU_XID_95", "fail", 1), ("GPU_XID_154", "warn", 1), ("GPU_XID_13", "info", 50)]
    assert res.findings[0].component.startswith("GPU 2 (0000:3a:00.0, SN")   # named via the NVML inventory
    assert res.metrics["gpu_xid_events"] == 52


def test_power_limits_and_psu():
    res = run(nv(nvml_doc(g6={"power_limit_w": 500.0})), checks=["power.limits"])["power.limits"]
    assert [(f.code, f.observed, f.limit) for f in res.findings] == [("POWER_LIMIT_LOW", 500.0, 700.0)]
    assert res.status == "warn"
    sdr = ("PS1 Status       | C8h | ok  | 10.1 | Presence detected\n"
           "PS2 Status       | C9h | ok  | 10.2 | Presence detected, Power Supply AC lost\n")
    sel = "   7 | 11/23/2026 | 13:52:17 | Power Supply PS2 Status | Power Supply AC lost | Asserted\n"
    res = run({"host/ipmitool-sdr-psu.txt": sdr, "host/ipmitool-sel.txt": sel}, checks=["power.psu"])["power.psu"]
    assert res.status == "fail"
    assert [(f.code, f.component) for f in res.findings] == [("POWER_PSU_FAILED", "PS2 Status")]  # SEL twin folded
    assert "status column says 'ok'" in res.findings[0].message and "PS2" in res.findings[0].action
    ok = run({"host/ipmitool-sdr-psu.txt": sdr.split("\n")[0] + "\n"}, checks=["power.psu"])["power.psu"]
    assert ok.status == "pass" and ok.summary == "1 PSUs present, none failed"


@pytest.mark.parametrize("path,text", [("gpu/nvml.json", "{broken"), ("gpu/nvidia-smi-q.txt", "garbage\n")])
def test_unusable_gpu_evidence_is_an_error_not_a_pass(path, text):
    res = run({path: text}, checks=["gpu.inventory", "gpu.ecc"])
    assert res["gpu.inventory"].status == "fail" and "found no NVIDIA GPU" in res["gpu.inventory"].summary
    assert res["gpu.ecc"].status == "error"


def test_version_drift_is_cluster_scope_and_attached_to_the_odd_node():
    bundles = []
    for k in range(4):
        doc = nvml_doc()
        if k == 2:
            doc["driver_version"] = "535.129.03"
        bios = "1.9.2" if k == 3 else "2.1.4"
        files = {**nv(doc), "host/dmidecode-bios.txt": f"BIOS Information\n\tVersion: {bios}\n"}
        bundles.append(Bundle.virtual(f"n{k}", files, {"host": f"n{k}", "declared": dict(H100)}))
    r = analyze_bundles(bundles, Suite("t", ["gpu.version_drift"]), profiles=ProfileResolver())
    by = {n.host: {c.id: c for c in n.checks} for n in r.nodes}
    assert by["n0"]["gpu.version_drift"].status == "pass"
    assert [f.code for f in by["n2"]["gpu.version_drift"].findings] == ["STACK_VERSION_DRIFT"]
    assert [(f.code, f.observed, f.limit) for f in by["n3"]["gpu.version_drift"].findings] == [("NODE_BIOS_DRIFT", "1.9.2", "2.1.4")]
    assert "driver 550.90.07 (2 versions)" in r.cluster_checks[0].summary
