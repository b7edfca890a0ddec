"""GPU/power parsers and verdicts on real outputs from ../shared/real-outputs (skipped when absent)."""

from pathlib import Path

from clusterkit.evidence.kinds import sniff
from clusterkit.parsers.dcgmi import parse_dcgmi_diag
from clusterkit.parsers.gpu_records import reason_names
from clusterkit.parsers.kernel_log import parse_kernel_log
from clusterkit.parsers.nvidia_smi import parse_nvidia_smi_q, parse_query_gpu_csv, parse_topo
from clusterkit.parsers.xid import group_xids, xid_events
from clusterkit.pipeline import analyze_paths
from tests.conftest import real_output


def _analyze(tmp_path: Path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text)
    run = analyze_paths([p], suite="full")
    (node,) = run.nodes
    return node, {c.id: c for c in node.checks}


def test_a100_sxm4_80gb_idle_q(tmp_path):
    text = real_output("nvidia_smi_q_a100sxm4_80gb_idle.txt")
    assert sniff(text).name == "nvidia-smi-q"
    inv = parse_nvidia_smi_q(text)
    assert (inv.driver_version, inv.cuda_version, inv.attached, len(inv.gpus)) == ("555.42.02", "12.5", 4, 1)
    g = inv.gpus[0]
    assert (g.name, g.serial, g.pci_bus_id, g.pci_device_id) == ("NVIDIA A100-SXM4-80GB", "1320222043305",
                                                                 "0000:68:00.0", "10de:20b2")
    assert (g.vbios_version, g.power_draw_w, g.power_limit_w, g.power_max_limit_w) == ("92.00.9E.00.02", 59.77, 500.0, 500.0)
    assert reason_names(g.clock_event_reasons) == ["gpu_idle"]
    assert (g.ecc_volatile_uncorrected, g.ecc_aggregate_uncorrected, g.remap_pending, g.remap_failure) == (0, 0, False, False)
    assert (g.pcie_gen, g.pcie_gen_max, g.pcie_width, g.pcie_width_max) == (4, 4, 16, 16)
    assert (g.sm_clock_mhz, g.max_sm_clock_mhz, g.temperature_c, g.persistence_mode) == (210, 1410, 25, True)
    # Verdict: a healthy idle A100 node (the profile is picked from the product name).
    node, checks = _analyze(tmp_path, "a100-q.txt", text)
    assert node.status == "pass", [(c.id, c.summary) for c in node.checks]
    inv_c = checks["gpu.inventory"]
    assert inv_c.metrics["gpu_count_detected"] == 4 and "gpu_power_draw_total_w" not in inv_c.metrics
    assert any("1 of 4" in f.message for f in inv_c.findings)
    assert checks["power.limits"].status == "pass" and "400 W" in checks["power.limits"].summary
    assert checks["gpu.memory"].status == "pass" and checks["gpu.ecc"].status == "pass"


def test_rtx4090_sw_power_cap_is_normal(tmp_path):
    text = real_output("nvidia_smi_q_rtx4090_sw_power_cap_active.txt")
    g = parse_nvidia_smi_q(text).gpus[0]
    assert (g.name, g.power_draw_w, g.power_limit_w, g.utilization_pct) == ("NVIDIA GeForce RTX 4090", 445.38, 450.0, 97)
    assert reason_names(g.clock_event_reasons) == ["sw_power_cap"]
    assert (g.sm_clock_mhz, g.max_sm_clock_mhz, g.serial, g.ecc_volatile_uncorrected) == (2640, 3105, None, None)
    node, checks = _analyze(tmp_path, "4090-q.txt", text)
    ce = checks["gpu.clock_events"]
    assert ce.status == "pass" and [f.code for f in ce.findings] == ["GPU_CLOCK_SW_POWER_CAP"]
    assert checks["gpu.ecc"].status == "skip"   # GeForce: no ECC counters, not "0 errors"
    assert node.status == "pass"


def test_h100_query_csv_vbios(tmp_path):
    text = real_output("nvidia_smi_query_gpu_csv_h100_vbios.txt")
    assert sniff(text).name == "nvidia-smi-query-gpu"
    inv = parse_query_gpu_csv(text)
    assert [(g.name, g.pci_bus_id, g.vbios_version) for g in inv.gpus] == [
        ("NVIDIA H100 80GB HBM3", "0000:04:00.0", "96.00.89.00.01"), ("NVIDIA H100 80GB HBM3", "0000:8b:00.0", "96.00.89.00.01")]
    assert inv.gpus[0].index == 0 and inv.gpus[1].index is None   # after "[...]" the position is not the index
    node, checks = _analyze(tmp_path, "h100.csv", text)
    assert checks["gpu.versions"].status == "pass" and "96.00.89.00.01" in checks["gpu.versions"].summary
    assert node.status == "pass"


def test_topo_8xa100_8_roce_nics(tmp_path):
    text = real_output("nvidia_smi_topo_m_8xa100_8mlx5_roce.txt")
    t = parse_topo(text)
    assert len(t.gpus) == 8 and len(t.nics) == 8
    assert {t.links[(a, b)] for a in t.gpus for b in t.gpus if a != b} == {"NV12"}
    assert [t.nic_name(t.nearest_nic(g)[0]) for g in t.gpus] == ["mlx5_0", "mlx5_0", "mlx5_2", "mlx5_2",
                                                                  "mlx5_4", "mlx5_4", "mlx5_6", "mlx5_6"]
    assert {t.nearest_nic(g)[1] for g in t.gpus} == {"PXB"}
    assert t.cpu_affinity["GPU4"] == "32-63,96-127" and t.numa_affinity["GPU0"] == "0"
    node, checks = _analyze(tmp_path, "topo.txt", text)
    assert checks["gpu.topology"].status == "pass" and checks["gpu.topology"].metrics["gpu_topology_nics"] == 8
    # The same node with GPU3's NICs moved across the CPU interconnect is flagged on GPU3 only.
    lines = text.split("\n")
    i = next(k for k, ln in enumerate(lines) if ln.startswith("GPU3"))
    lines[i] = lines[i].replace("PXB", "SYS")
    _, checks = _analyze(tmp_path, "topo-bad.txt", "\n".join(lines))
    far = checks["gpu.topology"].findings
    assert checks["gpu.topology"].status == "warn" and [f.component for f in far] == ["GPU3"] and far[0].observed == "NODE"


def test_dmesg_xid48_dbe_then_xid63_page_retirement(tmp_path):
    text = real_output("dmesg_xid48_dbe_xid63_page_retirement.txt")
    events = xid_events(parse_kernel_log(text))
    assert [(e.xid, e.bus_id) for e in events] == [(48, "0000:8a:00.0"), (63, "0000:8a:00.0")]
    assert [g.first_wall for g in group_xids(events)] == ["Mon Oct 29 12:07:39 2018", "Mon Oct 29 12:07:40 2018"]
    node, checks = _analyze(tmp_path, "dmesg.txt", text)
    x = checks["gpu.xid"]
    assert x.status == "fail" and [(f.code, f.severity) for f in x.findings] == [("GPU_XID_48", "fail"), ("GPU_XID_63", "warn")]
    assert "0000:8a:00.0" in x.findings[0].component and "RMA" in x.findings[0].action
    assert "reset" in x.findings[1].action.lower()


def test_dcgmi_diag_cuinit_failure_names_fabric_manager(tmp_path):
    text = real_output("dcgmi_diag_r3_8xh100_fail_cuinit.txt")
    d = parse_dcgmi_diag(text)
    assert d.device_ids == ["2330"] * 8 and d.metadata["Driver Version Detected"] == "560.35.03"
    assert [(t.name, t.scope) for t in d.failed] == [("GPU Memory", "All")]
    assert len(d.failed[0].warnings) == 8 and "'system not yet initialized'" in d.failed[0].warnings[7]
    assert {t.name for t in d.tests if t.result == "skip"} == {"PCIe", "Memory Bandwidth", "EUD Test"}
    node, checks = _analyze(tmp_path, "dcgmi.txt", text)
    c = checks["gpu.dcgmi_diag"]
    assert c.status == "fail"
    codes = [f.code for f in c.findings if f.severity == "fail"]
    assert codes == ["GPU_FABRIC_MANAGER_SUSPECTED"]          # a fabric manager problem, not 8 bad GPUs
    assert "nvidia-fabricmanager" in c.findings[0].action and "not a GPU fault" in c.findings[0].action


def test_topo_inside_nccl_log_gpus_reach_nic_across_sockets():
    """The low-bandwidth 2x1 A100 PCIe run: both GPUs reach mlx5_0 only via SYS (across the CPU interconnect)."""
    from clusterkit.analysis import ProfileResolver, analyze_bundles
    from clusterkit.evidence.bundle import Bundle
    from clusterkit.suites import Suite

    text = real_output("nccl_allreduce_2x1xa100pcie_hdr_ib_lowbw_debuginfo.txt")
    t = parse_topo(text)   # the matrix is found among shell prompts and NCCL lines
    assert t.gpus == ["GPU0", "GPU1"] and t.nic_names == {"NIC0": "mlx5_0"}
    assert [t.nearest_nic(g) for g in t.gpus] == [("NIC0", "SYS"), ("NIC0", "SYS")]
    b = Bundle.virtual("n", {"gpu/topo.txt": text}, {"host": "n"})
    c = analyze_bundles([b], Suite("t", ["gpu.topology"]), profiles=ProfileResolver(), loose=True).nodes[0].checks[0]
    assert c.status == "warn" and [(f.code, f.component, f.observed) for f in c.findings] == [
        ("GPU_NIC_FAR", "GPU0", "SYS"), ("GPU_NIC_FAR", "GPU1", "SYS")]
    assert "mlx5_0" in c.findings[0].message


def test_cli_analyze_loose_real_files_exit_codes(tmp_path):
    """What an SRE runs: `clusterkit analyze FILE` - exit 1 on the failing dcgmi diag, 0 on the healthy -q."""
    import json
    import subprocess
    import sys

    bad, good = tmp_path / "dcgmi.txt", tmp_path / "q.txt"
    bad.write_text(real_output("dcgmi_diag_r3_8xh100_fail_cuinit.txt"))
    good.write_text(real_output("nvidia_smi_q_a100sxm4_80gb_idle.txt"))
    r = subprocess.run([sys.executable, "-m", "clusterkit", "analyze", str(bad), "--format", "json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    checks = {c["id"]: c for c in json.loads(r.stdout)["nodes"][0]["checks"]}
    assert checks["gpu.dcgmi_diag"]["findings"][0]["code"] == "GPU_FABRIC_MANAGER_SUSPECTED"
    r = subprocess.run([sys.executable, "-m", "clusterkit", "analyze", str(good)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
