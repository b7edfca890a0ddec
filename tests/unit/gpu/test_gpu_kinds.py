"""The GPU kinds of issue #13: the default nvidia-smi screen, -q -x, nvlink -s/-e and dcgmi nvlink, bare
nvidia-smi failures, lspci -vvv; and the fragments of issue #12 (-q sections, dcgmi diag rows, the 590 CSV).
Fixtures are written from the tools' documented formats; each test asserts what a user reads in the verdict."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.evidence.bundle import Bundle
from clusterkit.evidence.kinds import sniff
from clusterkit.parsers import ParseError
from clusterkit.parsers.dcgmi import parse_dcgmi_diag
from clusterkit.parsers.gpu_records import reason_names
from clusterkit.parsers.lspci import parse_lspci
from clusterkit.parsers.nvidia_smi import parse_nvidia_smi_q, parse_query_gpu_csv
from clusterkit.parsers.nvidia_smi_errors import parse_nvsmi_failure
from clusterkit.parsers.nvidia_smi_screen import parse_nvidia_smi_screen
from clusterkit.parsers.nvidia_smi_xml import MAX_XML_CHARS, parse_nvidia_smi_xml
from clusterkit.parsers.nvlink import parse_dcgmi_nvlink, parse_nvlink_smi
from clusterkit.pipeline import analyze_paths
from clusterkit.plugins import load_all
from clusterkit.probes.nvml_backend import FakeBackend, read_snapshot
from clusterkit.probes.registry import PROBES, ProbeEnv, probes_for
from clusterkit.suites import Suite, load_suite
from clusterkit.checks.registry import CHECKS

load_all()
FIX = Path(__file__).parent / "fixtures"
H100 = {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8}


def analyze(tmp_path, text, name="paste.txt"):
    """What `clusterkit analyze FILE` says: status and {code: [findings]}."""
    p = tmp_path / name
    p.write_text(text)
    run = analyze_paths([p])
    found: dict[str, list] = {}
    for c in run.nodes[0].checks:
        for f in c.findings:
            found.setdefault(f.code, []).append(f)
    return run.status, found, {c.id: c for c in run.nodes[0].checks}


def bundle_checks(files, declared=None, checks=None):
    b = Bundle.virtual("n1", files, {"host": "n1", "declared": declared if declared is not None else dict(H100)})
    ids = checks or sorted(c for c in CHECKS if c.startswith(("gpu.", "power.", "host.pcie")) and CHECKS[c].scope == "node")
    r = analyze_bundles([b], Suite("t", ids), profiles=ProfileResolver())
    return {c.id: c for c in r.nodes[0].checks}


# ---------------------------------------------------------------- the default screen

def test_narrow_pre_525_screen_two_rows_per_gpu_and_old_process_columns():
    text = (FIX / "nvidia-smi-418-2xv100-narrow.txt").read_text()
    assert sniff(text).name == "nvidia-smi"
    inv = parse_nvidia_smi_screen(text)
    assert (inv.driver_version, inv.cuda_version, inv.count) == ("418.67", "10.1", 2)
    a, b = inv.gpus
    assert (a.index, a.pci_bus_id, a.name, a.persistence_mode) == (0, "0000:00:1e.0", "Tesla V100-SXM2...", True)
    assert (a.temperature_c, a.power_draw_w, a.power_limit_w, a.utilization_pct) == (42, 56, 300, 98)
    assert (a.ecc_volatile_uncorrected, b.ecc_volatile_uncorrected) == (0, 2)
    assert a.fan_error is False and a.mig_enabled is None          # no MIG row before driver 450
    (p,) = inv.processes
    assert (p.gpu, p.pid, p.type, p.name, p.memory_mib) == (0, 12345, "C", "python", 15391)


def test_screen_uncorrectable_ecc_fails_the_gpu_it_names(tmp_path):
    status, found, checks = analyze(tmp_path, (FIX / "nvidia-smi-418-2xv100-narrow.txt").read_text())
    assert status == "fail"
    (f,) = found["GPU_ECC_UNCORRECTABLE"]
    assert f.component == "GPU 1 (0000:00:1f.0)" and f.observed == 2
    assert checks["gpu.inventory"].summary == "2 GPUs found: 2 x Tesla V100-SXM2...; 1 process(es) on the GPUs"


ROW = "|   {i}  NVIDIA A100-SXM4-80GB          On  |   00000000:{bus}:00.0 Off |                    0 |\n"
ROW2 = "| N/A   31C    P0             {w}W /  400W |       4MiB /  81920MiB |      0%      Default |\n"
ROW3 = "|                                         |                        |             Disabled |\n"
RULE = "+-----------------------------------------+------------------------+----------------------+\n"


def _screen(rows, header=True, tail=""):
    head = ("+-----------------------------------------------------------------------------------------+\n"
            "| NVIDIA-SMI 535.129.03             Driver Version: 535.129.03   CUDA Version: 12.2     |\n"
            "|-----------------------------------------+------------------------+----------------------+\n"
            "| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |\n"
            "| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |\n"
            "|                                         |                        |               MIG M. |\n"
            "|=========================================+========================+======================|\n")
    return (head if header else RULE) + "".join(rows) + tail


def test_fewer_gpus_than_declared_fails_the_count():
    rows = [ROW.format(i=i, bus=f"{0x10 + i:02X}") + ROW2.format(w=60 + i) + ROW3 + RULE for i in range(7)]
    res = bundle_checks({"gpu/nvidia-smi.txt": _screen(rows)}, declared={"gpu_model": "a100-sxm4-80gb", "gpu_count": 8})
    inv = res["gpu.inventory"]
    assert inv.status == "fail" and [f.code for f in inv.findings] == ["GPU_COUNT_LOW"]
    assert inv.findings[0].observed == 7 and inv.findings[0].limit == 8
    assert res["power.limits"].status == "pass"       # 400 W read from the Pwr:Usage/Cap cell


def test_err_in_several_cells_is_a_lost_gpu_one_reading_or_the_fan_alone_is_not(tmp_path):
    lost = ROW.format(i=0, bus="10") + "| N/A   ERR!   P0            ERR! /  400W |       4MiB /  81920MiB |    ERR!      Default |\n" + ROW3 + RULE
    temp_err = ROW.format(i=2, bus="12") + "| N/A   ERR!   P0             60W /  400W |       4MiB /  81920MiB |      0%      Default |\n" + ROW3 + RULE
    fan_err = ROW.format(i=1, bus="11") + "|ERR!   31C    P0             61W /  400W |       4MiB /  81920MiB |      0%      Default |\n" + ROW3 + RULE
    inv = parse_nvidia_smi_screen(_screen([lost, fan_err, temp_err]))
    a, b, c = inv.gpus
    assert "temperature" in a.error and b.error is None and b.fan_error is True
    assert c.error is None and c.unknown_error_fields == ["temperature"]
    status, found, _ = analyze(tmp_path, _screen([lost, fan_err, temp_err]))
    assert status == "fail"
    assert [f.component for f in found["GPU_UNREADABLE"]] == ["GPU 0 (0000:10:00.0)"]
    assert [(f.component, f.severity) for f in found["GPU_FAN_ERR"]] == [("GPU 1 (0000:11:00.0)", "warn")]
    assert [(f.component, f.severity) for f in found["NVSMI_FIELD_UNKNOWN_ERROR"]] == [("GPU 2 (0000:12:00.0)", "warn")]


def test_rows_without_header_and_inforom_warning_after_the_table(tmp_path):
    rows = [ROW.format(i=i, bus=f"{0x20 + i:02X}") + ROW2.format(w=70) + ROW3 + RULE for i in (4, 5)]
    text = _screen(rows, header=False, tail="\nWARNING: infoROM is corrupted at gpu 0000:25:00.0\n")
    inv = parse_nvidia_smi_screen(text)
    assert [g.index for g in inv.gpus] == [4, 5] and inv.driver_version is None
    assert any("GPU count is not known" in w for w in inv.warnings)
    assert inv.gpus[1].inforom_corrupt is True and inv.gpus[0].inforom_corrupt is None
    status, found, _ = analyze(tmp_path, text)
    assert status == "fail" and found["GPU_INFOROM_CORRUPT"][0].component == "GPU 5 (0000:25:00.0)"
    assert "reflash" in found["GPU_INFOROM_CORRUPT"][0].action


def test_mig_instances_carry_the_ecc_counts():
    text = _screen([ROW.format(i=0, bus="10").replace("                    0 |", "                   On |")
                    + ROW2.format(w=200).replace("      0%", "     N/A") + ROW3.replace("Disabled", " Enabled") + RULE],
                   tail="\n+-----------------------------------------------------------------------------------------+\n"
                        "| MIG devices:                                                                            |\n"
                        "+------------------+----------------------------------+-----------+-----------------------+\n"
                        "|  0    1   0   0  |           11091MiB / 40448MiB    | 42      1 |  3   0    3    0    3 |\n"
                        "|                  |               0MiB / 24739MiB    |           |                       |\n"
                        "+------------------+----------------------------------+-----------+-----------------------+\n"
                        "|  0    2   0   1  |              17MiB / 40448MiB    | 42      0 |  3   0    3    0    3 |\n"
                        "+------------------+----------------------------------+-----------+-----------------------+\n")
    (g,) = parse_nvidia_smi_screen(text).gpus
    assert g.mig_enabled is True and g.utilization_pct is None and g.ecc_volatile_uncorrected == 1


def test_healthy_h100_screen_passes_under_the_h100_profile_from_the_cli(tmp_path):
    rows = [ROW.format(i=i, bus=f"{0x18 + i:02X}").replace("A100-SXM4-80GB", "H100 80GB HBM3")
            + ROW2.format(w=70).replace("400W", "700W") + ROW3 + RULE for i in range(8)]
    p = tmp_path / "nvidia-smi.txt"
    p.write_text(_screen(rows))
    r = subprocess.run([sys.executable, "-m", "clusterkit", "analyze", str(p), "--format", "json"],
                       capture_output=True, text=True, timeout=120)
    d = json.loads(r.stdout)
    assert r.returncode == 0 and d["status"] == "pass", r.stdout[-2000:]
    checks = {c["id"]: c for c in d["nodes"][0]["checks"]}
    assert checks["power.limits"]["status"] == "pass" and "700 W" in checks["power.limits"]["summary"]
    assert "8 x NVIDIA H100 80GB HBM3" in checks["gpu.inventory"]["summary"]


# ---------------------------------------------------------------- nvidia-smi -q -x

def test_xml_old_dtd_names_map_to_the_same_records():
    text = (FIX / "nvidia-smi-q-x-450-2xv100.xml").read_text()
    assert sniff(text).name == "nvidia-smi-q-xml"
    inv = parse_nvidia_smi_xml(text)
    assert (inv.driver_version, inv.cuda_version, inv.count) == ("450.80.02", "11.0", 2)
    a, b = inv.gpus
    assert (a.index, a.pci_bus_id, a.serial, a.pci_device_id, a.vbios_version) == (
        0, "0000:1a:00.0", "0323118011234", "10de:1db5", "88.00.80.00.01")
    assert reason_names(a.clock_event_reasons) == ["gpu_idle"]
    assert reason_names(b.clock_event_reasons) == ["hw_slowdown", "hw_power_brake"]
    assert (a.ecc_volatile_uncorrected, a.ecc_aggregate_corrected, b.ecc_volatile_uncorrected) == (0, 4, 1)
    assert (b.retired_pages_dbe, b.retired_pages_pending) == (1, True)
    assert (b.power_draw_w, b.power_limit_w) == (121.04, 250.0)       # the enforced limit, not power_limit
    assert (a.pcie_gen, a.pcie_width, a.pcie_width_max, a.temperature_c) == (3, 16, 16, 35)
    assert [(p.gpu, p.pid, p.name, p.memory_mib) for p in inv.processes] == [(1, 4242, "python3", 30211)]


def test_xml_checks_read_it_like_q(tmp_path):
    status, found, _ = analyze(tmp_path, (FIX / "nvidia-smi-q-x-450-2xv100.xml").read_text(), "log.xml")
    assert status == "fail"
    assert {c: [f.component for f in fs] for c, fs in found.items() if c.startswith("GPU_") and fs[0].severity != "info"} == {
        "GPU_ECC_UNCORRECTABLE": ["GPU 1 (0000:1b:00.0, SN 0323118015678)"],
        "GPU_PAGE_RETIREMENT_PENDING": ["GPU 1 (0000:1b:00.0, SN 0323118015678)"],
        "GPU_CLOCK_HW_POWER_SLOWDOWN": ["GPU 1 (0000:1b:00.0, SN 0323118015678)"],
    }


@pytest.mark.parametrize("doctype", [
    '<!DOCTYPE l [<!ENTITY a "x"><!ENTITY b "&a;&a;&a;">]>',                    # entity expansion
    '<!DOCTYPE l [<!ENTITY x SYSTEM "file:///etc/passwd">]>',                    # external entity
    '<!DOCTYPE l [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]>',        # parameter entity / external DTD
])
def test_xml_entities_are_refused_never_expanded(doctype):
    text = f'<?xml version="1.0"?>{doctype}<nvidia_smi_log><driver_version>&b;</driver_version></nvidia_smi_log>'
    with pytest.raises(ParseError):
        parse_nvidia_smi_xml(text)


def test_xml_cut_mid_gpu_keeps_whole_gpus_and_size_is_bounded():
    text = (FIX / "nvidia-smi-q-x-450-2xv100.xml").read_text()
    cut = text[: text.index("<product_name>", text.index('id="00000000:1B:00.0"'))]
    inv = parse_nvidia_smi_xml(cut)
    assert [g.serial for g in inv.gpus] == ["0323118011234"] and inv.gpus[0].index is None
    assert any("cut after 1" in w for w in inv.warnings) and any("1 of 2" in w for w in inv.warnings)
    with pytest.raises(ParseError, match="more than"):
        parse_nvidia_smi_xml("<nvidia_smi_log>" + " " * MAX_XML_CHARS)
    with pytest.raises(ParseError):
        parse_nvidia_smi_xml("<nvidia_smi_log><gpu id='x'><broken")


# ---------------------------------------------------------------- bare failures

@pytest.mark.parametrize("text, code", [
    ("$ nvidia-smi\nFailed to initialize NVML: Driver/library version mismatch\nNVML library version: 570.124\n",
     "NVSMI_DRIVER_MISMATCH"),
    ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA "
     "driver is installed and running.\n", "NVSMI_NO_DRIVER"),
    ("No devices were found\n", "GPU_NOT_FOUND"),
    ("root@gpu01:~# nvidia-smi\nFailed to initialize NVML: Unknown Error\n", "NVSMI_NVML_INIT_FAILED"),
])
def test_bare_failures_fail_the_node_with_their_code(tmp_path, text, code):
    assert sniff(text).name == "nvidia-smi-failure"
    status, found, _ = analyze(tmp_path, text)
    assert status == "fail" and list(found) == [code]
    assert found[code][0].action


def test_unreadable_gpu_line_names_the_bus_and_mismatch_keeps_the_nvml_version():
    inv = parse_nvsmi_failure("Unable to determine the device handle for GPU0000:A1:00.0: Unknown Error\n")
    assert [(g.pci_bus_id, g.error) for g in inv.gpus] == [
        ("0000:a1:00.0", "nvidia-smi: Unable to determine the device handle: Unknown Error")]
    inv = parse_nvsmi_failure("Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 550.144\n")
    assert inv.failure == "driver_mismatch" and "550.144" in inv.error
    with pytest.raises(ParseError):
        parse_nvsmi_failure("all good\n")


def test_nvml_driver_mismatch_and_corrupt_inforom_in_a_verify_bundle():
    doc = read_snapshot(FakeBackend(missing="driver_mismatch"))
    res = bundle_checks({"gpu/nvml.json": json.dumps(doc)})
    assert [f.code for f in res["gpu.inventory"].findings] == ["NVSMI_DRIVER_MISMATCH"]
    doc = read_snapshot(FakeBackend(8))
    doc["gpus"][3]["inforom_corrupt"] = True
    res = bundle_checks({"gpu/nvml.json": json.dumps(doc)})
    board = res["gpu.board"]
    assert board.status == "fail" and board.findings[0].component.startswith("GPU 3 (")


# ---------------------------------------------------------------- NVLink

NVLINK_S_AND_E = """GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaaaaaa-0000-0000-0000-000000000000)
\t Link 0: 26.562 GB/s
\t Link 1: <inactive>
GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaaaaaa-0000-0000-0000-000000000000)
\t Link 0: Replay Errors: 0
\t Link 0: Recovery Errors: 2
\t Link 0: CRC Errors: 7
\t Link 1: Replay Errors: 0
"""


def test_nvlink_status_and_errors_in_one_file():
    assert sniff(NVLINK_S_AND_E).name in ("nvidia-smi-nvlink-status", "nvidia-smi-nvlink-errors")
    (g,) = parse_nvlink_smi(NVLINK_S_AND_E).gpus
    l0, l1 = g.links
    assert (l0.active, l0.speed_gb_s, l0.recovery_errors, l0.crc_flit_errors) == (True, 26.562, 2, 7)
    assert l1.active is False


def test_nvlink_down_against_the_profile_and_error_counters_warn():
    lines = ["GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaaaaaa-0000-0000-0000-000000000000)"]
    lines += [f"\t Link {k}: {'<inactive>' if k == 9 else '26.562 GB/s'}" for k in range(18)]
    errors = lines[0] + "\n\t Link 4: Replay Errors: 3\n\t Link 4: Recovery Errors: 0\n"
    res = bundle_checks({"gpu/nvlink-status.txt": "\n".join(lines) + "\n", "gpu/nvlink-errors.txt": errors},
                        checks=["gpu.nvlink"])
    f = {x.code: x for x in res["gpu.nvlink"].findings}
    assert f["GPU_NVLINK_DOWN"].observed == 17 and f["GPU_NVLINK_DOWN"].limit == 18 and "[9]" in f["GPU_NVLINK_DOWN"].message
    assert f["GPU_NVLINK_ERRORS"].severity == "warn" and f["GPU_NVLINK_ERRORS"].observed == 3


def test_dcgmi_nvlink_gpus_and_switches():
    text = ("+----------------------+\n|  NvLink Link Status  |\n+----------------------+\nGPUs:\n    gpuId 0:\n"
            "        U U U U U U U U U U U U\n    gpuId 1:\n        U U U X U U U U U U U U\nNvSwitches:\n"
            "    physicalId 8:\n        U U D _ _\n\nKey: Up=U, Down=D, Disabled=X, Not Supported=_\n")
    assert sniff(text).name == "dcgmi-nvlink-status"
    rep = parse_dcgmi_nvlink(text)
    assert [sum(lk.active for lk in g.links) for g in rep.gpus] == [12, 11] and rep.gpus[1].disabled == [3]
    (sw,) = rep.switches
    assert [lk.active for lk in sw.links] == [True, True, False]
    res = bundle_checks({"gpu/dcgmi-nvlink-status.txt": text}, declared={"gpu_count": 2}, checks=["gpu.nvlink"])
    down = sorted(f.component for f in res["gpu.nvlink"].findings if f.code == "GPU_NVLINK_DOWN")
    assert down == ["GPU 1", "NVSwitch physicalId 8"]


def test_pcie_card_without_bridge_is_not_a_link_fault(tmp_path):
    text = "GPU 0: NVIDIA H100 PCIe (UUID: GPU-bbbbbbbb-0000-0000-0000-000000000000)\n" + "".join(
        f"\t Link {k}: <inactive>\n" for k in range(18))
    status, found, _ = analyze(tmp_path, text)
    assert status in ("pass", "skip") and "GPU_NVLINK_DOWN" not in found


# ---------------------------------------------------------------- lspci -vvv

def test_lspci_links_aer_advisory_and_lost_functions(tmp_path):
    text = (FIX / "lspci-vvv-gpu-idle-cx6-x8-ue.txt").read_text()
    assert sniff(text).name == "lspci-vvv"
    rep = parse_lspci(text)
    assert [f.kind for f in rep.functions] == ["gpu", "nic", "nic", "gpu", "other"]
    cx6 = rep.functions[1]
    assert (cx6.serial, cx6.part, cx6.sta_width, cx6.cap_width) == ("MT2105X12345", "MCX653105A-HDAT", 8, 16)
    status, found, checks = analyze(tmp_path, text)
    assert status == "fail"
    nic = "PCIe 0000:31:00.0 (ConnectX-6, SN MT2105X12345)"
    got = {(c, f.severity, f.component) for c, fs in found.items() for f in fs}
    assert got == {
        ("HOST_PCIE_SPEED_DEGRADED", "info", "PCIe 0000:17:00.0 (A100 SXM4 80GB, DSN 48-b0-2d-01-ab-03-51-98)"),
        ("HOST_PCIE_WIDTH_DEGRADED", "fail", nic), ("HOST_PCIE_SPEED_DEGRADED", "fail", nic),
        ("HOST_PCIE_AER_UNCORRECTED", "fail", nic), ("HOST_PCIE_AER_CORRECTED", "warn", nic),
        ("HOST_PCIE_DEVICE_LOST", "fail", "PCIe 0000:c1:00.0 (A100 SXM4 80GB)"),
        ("HOST_PCIE_UNREADABLE", "info", "evidence"),
    }
    # the A100's UnsupReq+ is advisory (non-fatal, logged as AdvNonFatalErr): not an uncorrectable error
    assert "CmpltTO+" in found["HOST_PCIE_AER_UNCORRECTED"][0].message


def test_lspci_gpu_named_from_the_inventory_when_the_bundle_has_one():
    doc = read_snapshot(FakeBackend(1))
    doc["gpus"][0]["pci_bus_id"] = "00000000:17:00.0"
    text = (FIX / "lspci-vvv-gpu-idle-cx6-x8-ue.txt").read_text().split("\n\n")[0]
    res = bundle_checks({"gpu/nvml.json": json.dumps(doc), "host/lspci-vvv.txt": text}, checks=["host.pcie"])
    (f,) = res["host.pcie"].findings
    assert f.component == "GPU 0 (0000:17:00.0, SN 1652922000000)" and f.severity == "info"


# ---------------------------------------------------------------- fragments (issue #12)

def test_q_sections_without_headers(tmp_path):
    text = ("    Remapped Rows\n        Correctable Error                 : 0\n        Uncorrectable Error               : 3\n"
            "        Pending                           : Yes\n        Remapping Failure Occurred        : No\n")
    assert sniff(text).name == "nvidia-smi-q"
    (g,) = parse_nvidia_smi_q(text).gpus
    assert (g.remap_uncorrectable, g.remap_pending, g.index, g.pci_bus_id) == (3, True, None, None)
    status, found, _ = analyze(tmp_path, text)
    assert status == "fail" and "GPU_ROW_REMAP_PENDING" in found


def test_other_tools_key_value_sections_are_not_q():
    dmi = "BIOS Information\n\tVendor: American Megatrends\n\tVersion: 2.1.4\n"
    assert sniff(dmi) is None or sniff(dmi).name != "nvidia-smi-q"
    with pytest.raises(ParseError):
        parse_nvidia_smi_q("Clocks\n    Boost : on\n")


def test_dcgmi_rows_without_header_keep_every_result_and_error_rows():
    text = ("| PCIe                      | Pass - GPUs: 0, 1, 2                           |\n"
            "|                           | Fail - GPU: 3                                  |\n"
            "| Warning                   | GPU 3 Power violations totaling 4.2 seconds st |\n"
            "|                           | arted at 1.0 seconds into the test             |\n"
            "|-----  Deployment  --------+------------------------------------------------|\n"
            "| Error                     | GPU 2 had uncorrectable memory errors and row  |\n"
            "|                           |  remapping is pending\n")
    assert sniff(text).name == "dcgmi-diag"
    d = parse_dcgmi_diag(text)
    assert [(t.name, t.result, t.scope) for t in d.tests] == [
        ("PCIe", "pass", "GPUs: 0, 1, 2"), ("PCIe", "fail", "GPU: 3"), ("Deployment error", "fail", "GPU: 2")]
    assert d.tests[1].warnings == ["GPU 3 Power violations totaling 4.2 seconds started at 1.0 seconds into the test"]
    res = bundle_checks({"gpu/dcgmi-diag.txt": text}, declared={"gpu_count": 4}, checks=["gpu.dcgmi_diag"])
    got = [(f.code, f.component) for f in res["gpu.dcgmi_diag"].findings]
    assert got == [("GPU_DCGM_DIAG_FAIL", "GPU 3"), ("GPU_DCGM_DIAG_FAIL", "GPU 2"),
                   ("GPU_DCGM_DIAG_WARN", "GPU 3"), ("GPU_ROW_REMAP_PENDING", "GPU 2")]


def test_dcgmi_persistence_mode_deployment_failure_says_persistence_is_off():
    # DCGM 3.x wording (its Deployment section), the message wrapped over the result column
    text = ("|-----  Deployment  --------+------------------------------------------------|\n"
            "| Denylist                  | Pass                                           |\n"
            "| Persistence Mode          | Fail                                           |\n"
            "| Error                     | Persistence mode for GPU 2 is currently disab  |\n"
            "|                           | led. The DCGM diagnostic requires persistence  |\n"
            "|                           | mode to be enabled.                            |\n"
            "+-----  Hardware  ----------+------------------------------------------------+\n"
            "| GPU Memory                | Skip - All                                     |\n")
    res = bundle_checks({"gpu/dcgmi-diag.txt": text}, declared={"gpu_count": 4}, checks=["gpu.dcgmi_diag"])
    c = res["gpu.dcgmi_diag"]
    got = {(f.code, f.severity, f.component): f for f in c.findings}
    assert c.status == "fail" and set(got) == {("GPU_PERSISTENCE_OFF", "warn", "GPU 2"),
                                               ("GPU_DCGM_DIAG_FAIL", "fail", "GPUs"), ("GPU_DCGM_DIAG_SKIPPED", "info", "dcgmi")}
    assert "-pm 1" in got[("GPU_PERSISTENCE_OFF", "warn", "GPU 2")].action
    assert "rerun" in got[("GPU_DCGM_DIAG_FAIL", "fail", "GPUs")].action
    # another deployment failure is no persistence finding
    other = text.replace("Persistence Mode  ", "Inforom           ").replace("Persistence mode for GPU 2 is currently disab",
                                                                            "Inforom for GPU 2 is corrupt              ")
    res = bundle_checks({"gpu/dcgmi-diag.txt": other}, declared={"gpu_count": 4}, checks=["gpu.dcgmi_diag"])
    assert "GPU_PERSISTENCE_OFF" not in {f.code for f in res["gpu.dcgmi_diag"].findings}


def test_query_csv_with_hundreds_of_fields_is_recognized_by_shape():
    names = ["timestamp", "driver_version", "name", "pci.bus_id", "power.draw [W]", "power.limit [W]"] + [
        f"vendor.field_{k}" for k in range(190)]
    row = ["2026/07/14 08:12:38.696", "590.48.01", "NVIDIA H100 80GB HBM3", "00000000:00:09.0", "70.00 W", "700.00 W"] + [
        "[N/A]"] * 190
    text = ", ".join(names) + "\n" + ", ".join(row) + "\n"
    assert sniff(text).name == "nvidia-smi-query-gpu"
    inv = parse_query_gpu_csv(text)
    assert inv.driver_version == "590.48.01" and inv.gpus[0].power_limit_w == 700.0


# ---------------------------------------------------------------- collection

def test_verify_collects_the_xml_and_lspci_of_both_vendors_as_root():
    needs = [n for c in load_suite("quick").check_ids for n in CHECKS[c].needs]
    names = {p.name for p in probes_for(needs)}
    assert {"gpu.nvidia_smi_q_xml", "host.lspci", "gpu.nvml"} <= names
    env = ProbeEnv("n1", None, None, {})
    (x,) = PROBES["gpu.nvidia_smi_q_xml"].plan(env)
    (l,) = PROBES["host.lspci"].plan(env)
    assert x.argv == ["nvidia-smi", "-q", "-x"] and x.path == "gpu/nvidia-smi-q.xml" and not x.root
    assert l.root and l.path == "host/lspci-vvv.txt" and "-d 10de:" in l.argv[-1] and "-d 15b3:" in l.argv[-1]


def test_simulated_xml_and_lspci_read_back_as_the_nvml_snapshot():
    import random

    from clusterkit.parsers.nvml_json import parse_nvml_json
    from clusterkit.sim.gpu import _nvml_doc, render_lspci, render_nvidia_smi_xml
    from clusterkit.sim.registry import SimNode

    doc = _nvml_doc(SimNode("s", 0, {}, ["gpu.fallen_off_bus", "gpu.row_remap_pending"], random.Random(2)),
                    "h100-sxm5-80gb", 8)
    xml, nv = parse_nvidia_smi_xml(render_nvidia_smi_xml(doc)), parse_nvml_json(json.dumps(doc))
    fields = ("serial", "uuid", "pci_bus_id", "pci_device_id", "power_limit_w", "clock_event_reasons", "pcie_width",
              "ecc_volatile_uncorrected", "remap_pending", "fabric_state")
    by_bus = {g.pci_bus_id: g for g in nv.gpus}
    for g in xml.gpus:
        if not g.error:
            assert [getattr(g, f) for f in fields] == [getattr(by_bus[g.pci_bus_id], f) for f in fields]
    lost = [g for g in xml.gpus if g.error]
    assert xml.count == nv.count == 7 and [g.pci_bus_id for g in lost] == [g.pci_bus_id for g in nv.gpus if g.error]
    rep = parse_lspci(render_lspci(doc, ["mlx5_0", "mlx5_1"]))
    assert [f.kind for f in rep.functions].count("nic") == 2
    assert [f.bus_id for f in rep.functions if f.unresponsive] == [g.pci_bus_id for g in lost]


def test_node_without_nvidia_or_mellanox_functions_skips_host_pcie(tmp_path):
    from clusterkit.evidence.bundle import BundleWriter

    w = BundleWriter(tmp_path / "cpu1", "cpu1", declared={"gpu_count": 0})
    w.write("host/lspci-vvv.txt", "")          # lspci -d 10de: prints nothing there, and exits 0
    w.finish()
    r = analyze_bundles([Bundle.open(tmp_path / "cpu1")], Suite("t", ["host.pcie"]), profiles=ProfileResolver())
    (c,) = r.nodes[0].checks
    assert (c.status, c.summary) == ("skip", "lspci lists no NVIDIA or Mellanox function")


# ---------------------------------------------------------------- NVML's reset state (gpu.board)

Q_RECOVERY = """==============NVSMI LOG==============

Timestamp                                 : Mon Nov 30 06:00:00 2026
Driver Version                            : 570.86.15
CUDA Version                              : 12.8

Attached GPUs                             : 2
GPU 00000000:18:00.0
    Product Name                          : NVIDIA H100 80GB HBM3
    GPU Reset Status
        Reset Required                    : No
        Drain and Reset Recommended       : No
    GPU Recovery Action                   : {a}
GPU 00000000:2A:00.0
    Product Name                          : NVIDIA H100 80GB HBM3
    GPU Reset Status
        Reset Required                    : {r}
        Drain and Reset Recommended       : No
    GPU Recovery Action                   : None
"""


def test_recovery_action_and_reset_required_in_q_fail_the_gpu_none_passes(tmp_path):
    inv = parse_nvidia_smi_q(Q_RECOVERY.format(a="Reset", r="No"))
    assert [(g.recovery_action, g.reset_required, g.drain_reset_recommended) for g in inv.gpus] == [
        ("Reset", False, False), ("None", False, False)]
    checks = bundle_checks({"gpu/nvidia-smi-q.txt": Q_RECOVERY.format(a="Reset", r="No")}, checks=["gpu.board"])
    [f] = checks["gpu.board"].findings
    assert (f.code, f.severity, f.component) == ("GPU_RESET_REQUIRED", "fail", "GPU 0 (0000:18:00.0)")
    assert "recovery action Reset" in f.message
    checks = bundle_checks({"gpu/nvidia-smi-q.txt": Q_RECOVERY.format(a="None", r="Yes")}, checks=["gpu.board"])
    assert [(f.code, f.component) for f in checks["gpu.board"].findings] == [("GPU_RESET_REQUIRED", "GPU 1 (0000:2a:00.0)")]
    checks = bundle_checks({"gpu/nvidia-smi-q.txt": Q_RECOVERY.format(a="None", r="No")}, checks=["gpu.board"])
    assert checks["gpu.board"].status == "pass"


def test_noheader_query_gpu_is_read_with_the_columns_its_command_names(tmp_path):
    text = ("$ nvidia-smi --query-gpu=index,pci.bus_id,gpu_recovery_action --format=csv,noheader\n"
            "0, 00000000:18:00.0, None\n1, 00000000:2A:00.0, Drain and Reset\n")
    assert sniff(text).name == "nvidia-smi-query-gpu"
    inv = parse_query_gpu_csv(text)
    assert [(g.index, g.recovery_action) for g in inv.gpus] == [(0, "None"), (1, "Drain and Reset")]
    status, found, _ = analyze(tmp_path, text)
    assert status == "fail" and [f.component for f in found["GPU_RESET_REQUIRED"]] == ["GPU 1 (0000:2a:00.0)"]
    # without the command a noheader output names no column: unusable, said so
    with pytest.raises(ParseError):
        parse_query_gpu_csv("0, 00000000:18:00.0, None\n")
    # a header row with NVML's reset fields (reset_status.*, deprecated in 570 but still printed by older drivers)
    hdr = "index, reset_status.reset_required, reset_status.drain_and_reset_recommended\n0, No, No\n1, No, Yes\n"
    assert [(g.reset_required, g.drain_reset_recommended) for g in parse_query_gpu_csv(hdr).gpus] == [(False, False),
                                                                                                       (False, True)]


def test_recovery_action_in_the_xml(tmp_path):
    xml = (FIX / "nvidia-smi-q-x-450-2xv100.xml").read_text()
    at = xml.index("</product_name>") + len("</product_name>")
    xml = xml[:at] + "\n\t\t<gpu_recovery_action>Reboot</gpu_recovery_action>" + xml[at:]
    inv = parse_nvidia_smi_xml(xml)
    assert [g.recovery_action for g in inv.gpus] == ["Reboot", None]
    status, found, _ = analyze(tmp_path, xml, "log.xml")
    assert status == "fail" and len(found["GPU_RESET_REQUIRED"]) == 1
