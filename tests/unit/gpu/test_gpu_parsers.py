"""GPU parsers on fixtures written from the formats (nvidia-smi -q, --query-gpu, topo -m, Xid, ipmitool, dcgmi)."""

from pathlib import Path

import pytest

from clusterkit.evidence.kinds import sniff
from clusterkit.parsers import ParseError
from clusterkit.parsers.dcgmi import parse_dcgmi_diag
from clusterkit.parsers.dmidecode_bios import parse_dmidecode_bios
from clusterkit.parsers.fabricmanager import parse_fabricmanager
from clusterkit.parsers.gpu_records import norm_bus_id, norm_device_id, reason_names
from clusterkit.checks._bmc_source import psu_event_states
from clusterkit.parsers.ipmi import parse_sdr_psu, parse_sel
from clusterkit.parsers.nvidia_smi import parse_nvidia_smi_q, parse_query_gpu_csv, parse_topo
from clusterkit.parsers.nvml_json import parse_nvml_json
from clusterkit.parsers.power_trace import parse_power_trace
from clusterkit.parsers.xid import group_xids, parse_xid_message

FIX = Path(__file__).parent / "fixtures"


def test_old_driver_q_two_gpus_all_fields():
    text = (FIX / "nvidia-smi-q-470-2xa100.txt").read_text()
    assert sniff(text).name == "nvidia-smi-q"
    inv = parse_nvidia_smi_q(text)
    assert inv.driver_version == "470.82.01" and inv.cuda_version == "11.4" and inv.count == 2
    a, b = inv.gpus
    assert (a.index, a.pci_bus_id, a.serial, a.pci_device_id) == (0, "0000:07:00.0", "1561021003141", "10de:20b0")
    assert a.persistence_mode is False and b.persistence_mode is True
    # "Clocks Throttle Reasons" (pre-535 name), nested HW slowdown detail
    assert reason_names(a.clock_event_reasons) == ["hw_slowdown", "hw_power_brake"]
    assert reason_names(b.clock_event_reasons) == ["gpu_idle"]
    # old Single Bit / Double Bit ECC layout
    assert (a.ecc_volatile_corrected, a.ecc_volatile_uncorrected) == (3, 2)
    assert (a.ecc_aggregate_corrected, a.ecc_aggregate_uncorrected) == (17, 2)
    assert (a.retired_pages_sbe, a.retired_pages_dbe, a.retired_pages_pending) == (1, 16, True)
    assert (a.remap_uncorrectable, a.remap_pending, a.remap_failure) == (2, True, False)
    # "Power Readings" + "Enforced Power Limit" (old names): the enforced limit, not "Power Limit"
    assert (a.power_draw_w, a.power_limit_w, a.power_default_limit_w, a.power_max_limit_w) == (181.3, 300.0, 400.0, 400.0)
    assert (a.pcie_gen, a.pcie_gen_max, a.pcie_width, a.pcie_width_max) == (4, 4, 8, 16)
    assert (a.sm_clock_mhz, a.max_sm_clock_mhz, a.utilization_pct, a.temperature_c) == (1005, 1410, 98, 71)
    # comma decimal (de_DE locale) is read, not lost
    assert b.power_draw_w == 52.4 and b.pcie_gen == 1


def test_q_enforced_limit_preferred_over_requested():
    # Old drivers print both "Power Limit" (requested) and "Enforced Power Limit": the enforced one counts.
    inv = parse_nvidia_smi_q((FIX / "nvidia-smi-q-470-2xa100.txt").read_text())
    assert inv.gpus[0].power_limit_w == 300.0


def test_partial_q_power_only_and_lost_gpu_line():
    text = """
==============NVSMI LOG==============

Timestamp                                 : Mon Nov 23 10:00:00 2026
Driver Version                            : 550.90.07
CUDA Version                              : 12.4

Attached GPUs                             : 3
Unable to determine the device handle for GPU 0000:5D:00.0: Unknown Error
GPU 00000000:18:00.0
    GPU Power Readings
        Power Draw                        : 699.12 W
        Current Power Limit               : 700.00 W
GPU 00000000:2A:00.0
    GPU Power Readings
        Average Power Draw                : 512.00 W
        Current Power Limit               : 700.00 W
"""
    inv = parse_nvidia_smi_q(text)
    assert [g.power_draw_w for g in inv.gpus[:2]] == [699.12, 512.0]
    lost = inv.gpus[2]
    assert lost.pci_bus_id == "0000:5d:00.0" and "Unknown Error" in lost.error
    assert inv.count == 2  # 3 attached, one unreachable
    assert inv.gpus[0].ecc_volatile_uncorrected is None  # section absent: unknown, not 0


@pytest.mark.parametrize("text", ["", "hello\nworld\n", "GPU 0: NVIDIA A100 (UUID: GPU-x)\n", "Timestamp : x\n"])
def test_q_garbage_is_parse_error(text):
    with pytest.raises(ParseError):
        parse_nvidia_smi_q(text)


def test_truncated_q_keeps_what_it_has():
    text = (FIX / "nvidia-smi-q-470-2xa100.txt").read_text()
    cut = text[: text.index("    ECC Errors")]  # cut mid-first block
    inv = parse_nvidia_smi_q(cut)
    assert len(inv.gpus) == 1 and inv.gpus[0].serial == "1561021003141"
    assert inv.gpus[0].ecc_volatile_uncorrected is None
    assert any("1 of 2" in w for w in inv.warnings)


def test_query_gpu_csv_with_units_and_na():
    text = ("$ nvidia-smi --query-gpu=index,name,pci.bus_id,power.draw,power.limit,clocks_event_reasons.active,"
            "ecc.errors.uncorrected.volatile.total,remapped_rows.pending --format=csv\n"
            "index, name, pci.bus_id, power.draw [W], power.limit [W], clocks_event_reasons.active, "
            "ecc.errors.uncorrected.volatile.total, remapped_rows.pending\n"
            "0, NVIDIA H100 80GB HBM3, 00000000:18:00.0, 693.41 W, 700.00 W, 0x0000000000000004, 0, No\n"
            "1, NVIDIA H100 80GB HBM3, 00000000:2A:00.0, [N/A], 700.00 W, 0x0000000000000088, 1, Yes\n")
    assert sniff(text).name == "nvidia-smi-query-gpu"
    inv = parse_query_gpu_csv(text)
    a, b = inv.gpus
    assert (a.index, a.pci_bus_id, a.power_draw_w, a.clock_event_reasons) == (0, "0000:18:00.0", 693.41, 4)
    assert b.power_draw_w is None and reason_names(b.clock_event_reasons) == ["hw_slowdown", "hw_power_brake"]
    assert (b.ecc_volatile_uncorrected, b.remap_pending) == (1, True)


def test_query_gpu_csv_without_header_is_an_error():
    with pytest.raises(ParseError, match="header"):
        parse_query_gpu_csv("NVIDIA H100 80GB HBM3, 00000000:18:00.0, 96.00.89.00.01\n")


TOPO = """\tGPU0\tGPU1\tGPU2\tGPU3\tNIC0\tNIC1\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID
GPU0\t X \tNV18\tNV18\tSYS\tPIX\tSYS\t0-55\t0\t\tN/A
GPU1\tNV18\t X \tNV18\tNV18\tNODE\tSYS\t0-55\t0\t\tN/A
GPU2\tNV18\tNV18\t X \tNV18\tSYS\tPXB\t56-111\t1\t\tN/A
GPU3\tSYS\tNV18\tNV18\t X \tSYS\tSYS\t56-111\t1\t\tN/A
NIC0\tPIX\tNODE\tSYS\tSYS\t X \tSYS
NIC1\tSYS\tSYS\tPXB\tSYS\tSYS\t X

Legend:

  X    = Self

NIC Legend:

  NIC0: mlx5_0
  NIC1: mlx5_1
"""


def test_topo_with_nic_legend_and_numa_id_column():
    assert sniff(TOPO).name == "nvidia-smi-topo"
    t = parse_topo(TOPO)
    assert t.gpus == ["GPU0", "GPU1", "GPU2", "GPU3"] and t.nics == ["NIC0", "NIC1"]
    assert t.nic_name("NIC1") == "mlx5_1"
    assert t.nearest_nic("GPU0") == ("NIC0", "PIX")
    assert t.nearest_nic("GPU1") == ("NIC0", "NODE")
    assert t.nearest_nic("GPU3") == ("NIC0", "SYS")
    assert t.links[("GPU0", "GPU3")] == "SYS"
    assert t.cpu_affinity["GPU2"] == "56-111" and t.numa_affinity["GPU2"] == "1"


def test_topo_cut_after_its_first_rows_keeps_them_and_names_the_missing_ones():
    cut = parse_topo("\n".join(TOPO.split("\n")[:2]) + "\n")
    assert ("GPU0", "GPU0") in cut.links and cut.missing_rows == [g for g in cut.gpus if g != "GPU0"]
    with pytest.raises(ParseError):          # the header alone: nothing to judge
        parse_topo(TOPO.split("\n")[0] + "\n")


@pytest.mark.parametrize("msg,xid,bus,detail", [
    ("NVRM: Xid (PCI:0000:5d:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.", 79, "0000:5d:00.0",
     "GPU has fallen off the bus."),
    ("NVRM: Xid (PCI:0000:8a:00): 48, An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer "
     "at partition 4, subpartition 1.", 48, "0000:8a:00.0", "An uncorrectable double bit error"),
    ("NVRM: Xid (0000:3b:00): 13, Graphics Exception: ESR 0x405840=0x1", 13, "0000:3b:00.0", "Graphics Exception"),
    ("NVRM: Xid (PCI:0000:18:00): 119, pid=2121, name=nvidia-smi, Timeout after 6s of waiting for RPC response from GPU0 GSP!",
     119, "0000:18:00.0", "Timeout after 6s"),
    ("NVRM: GPU 0000:ab:00.0: GPU has fallen off the bus.", 79, "0000:ab:00.0", "GPU has fallen off the bus"),
])
def test_xid_wordings(msg, xid, bus, detail):
    e = parse_xid_message(msg)
    assert (e.xid, e.bus_id) == (xid, bus) and e.detail.startswith(detail)


def test_xid_storm_is_counted_and_off_bus_line_not_double_counted():
    msgs = [f"NVRM: Xid (PCI:0000:18:00): 74, pid=1, name=x, NVLink: fatal error detected on link {i % 3}" for i in range(1000)]
    msgs += ["NVRM: Xid (PCI:0000:5d:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.",
             "NVRM: GPU 0000:5d:00.0: GPU has fallen off the bus.", "usb 1-1: new device", "NVRM: loading module"]
    events = [e for e in map(parse_xid_message, msgs) if e]
    for k, e in enumerate(events):
        e.seconds = float(k)
    groups = group_xids(events)
    assert [(g.xid, g.bus_id, g.count) for g in groups] == [(74, "0000:18:00.0", 1000), (79, "0000:5d:00.0", 1)]
    assert groups[0].first_seconds == 0.0 and groups[0].last_seconds == 999.0 and len(groups[0].details) == 3
    assert parse_xid_message("NVRM: loading NVIDIA UNIX x86_64 Kernel Module") is None


SDR = """PS1 Status       | C8h | ok  | 10.1 | Presence detected
PS2 Status       | C9h | ok  | 10.2 | Presence detected, Power Supply AC lost
PS3 Status       | CAh | cr  | 10.3 | Presence detected, Failure detected
PS4 Status       | CBh | ns  | 10.4 | No Reading
PSU Redundancy   | CCh | ok  | 21.1 | Redundancy Lost
"""


def test_sdr_ok_status_with_ac_lost_event_is_a_failure():
    assert sniff(SDR).name == "ipmitool-sdr-psu"
    rep = parse_sdr_psu(SDR)
    by = {p.name: p for p in rep.psus}
    assert not by["PS1 Status"].failed
    assert by["PS2 Status"].failed and by["PS2 Status"].status == "ok"
    assert by["PS2 Status"].problems == ["Power Supply AC lost"]
    assert by["PS3 Status"].failed and not by["PS4 Status"].failed
    assert rep.redundancy == [("PSU Redundancy", "Redundancy Lost")]
    with pytest.raises(ParseError):
        parse_sdr_psu("no table here\n")


def test_sel_open_and_cleared_psu_events():
    text = ("   1 | 11/20/2026 | 08:14:02 | Power Supply PS1 Status | Power Supply AC lost | Asserted\n"
            "   2 | 11/20/2026 | 08:20:11 | Power Supply PS1 Status | Power Supply AC lost | Deasserted\n"
            "   3 | 11/23/2026 | 13:52:17 | Power Supply #0xc9 | Failure detected | Asserted\n"
            "   4 | 11/23/2026 | 13:52:20 | Temperature CPU1 | Upper Critical going high | Asserted\n")
    assert sniff(text).name == "ipmitool-sel"
    events = parse_sel(text)
    assert len(events) == 4
    states = psu_event_states(events)
    assert [k for k, st in states.items() if st.opened] == ["Power Supply #0xc9"]
    assert [(a.record, d.record) for a, d in states["Power Supply PS1 Status"].history] == [("1", "2")]
    assert parse_sel("SEL has no entries\n") == []


DCGMI = """+---------------------------+------------------------------------------------+
| Diagnostic                | Result                                         |
+===========================+================================================+
|-----  Metadata  ----------+------------------------------------------------|
| DCGM Version              | 3.3.5                                          |
| GPU Device IDs Detected   | 20b2,20b2                                      |
|-----  Deployment  --------+------------------------------------------------|
| Denylist                  | Pass                                           |
+-----  Hardware  ----------+------------------------------------------------+
| GPU Memory                | Pass - All                                     |
| Diagnostic                | Fail - GPU: 1                                  |
| Warning                   | GPU 1 Thermal violations totaling 12.5 second  |
|                           | s started at 3.1 seconds into the test for GP  |
|                           | U 1                                            |
+-----  Stress  ------------+------------------------------------------------+
| Targeted Power            | Warn - All                                     |
+---------------------------+------------------------------------------------+
"""


def test_dcgmi_wrapped_warning_is_rejoined_mid_word():
    assert sniff(DCGMI).name == "dcgmi-diag"
    d = parse_dcgmi_diag(DCGMI)
    assert d.device_ids == ["20b2", "20b2"] and d.metadata["DCGM Version"] == "3.3.5"
    fail = d.failed[0]
    assert (fail.section, fail.name, fail.scope) == ("Hardware", "Diagnostic", "GPU: 1")
    assert fail.warnings == ["GPU 1 Thermal violations totaling 12.5 seconds started at 3.1 seconds into the test for GPU 1"]
    assert [t.result for t in d.tests] == ["pass", "pass", "fail", "warn"]


def test_small_parsers():
    bios = parse_dmidecode_bios("# dmidecode 3.4\n\nHandle 0x0000, DMI type 0, 26 bytes\nBIOS Information\n"
                                "\tVendor: Dell Inc.\n\tVersion: 2.19.1\n\tRelease Date: 03/07/2024\n")
    assert (bios.vendor, bios.version, bios.release_date) == ("Dell Inc.", "2.19.1", "03/07/2024")
    fm = parse_fabricmanager("inactive\nFabric Manager version is : 535.129.03\n")
    assert (fm.state, fm.version) == ("inactive", "535.129.03")
    assert norm_bus_id("00000000:8B:00.0") == "0000:8b:00.0" and norm_device_id("0x233010DE") == "10de:2330"
    for bad, parser in (("Version: 1\n", parse_dmidecode_bios), ("", parse_fabricmanager), ("[1,2]", parse_nvml_json),
                        ("{not json", parse_nvml_json), ("t_s,gpu\n", parse_power_trace)):
        with pytest.raises(ParseError):
            parser(bad)


def test_nvml_json_tolerates_wrong_types_and_reports_no_gpu():
    inv = parse_nvml_json('{"schema":1,"backend":"pynvml","error":null,"gpus":[{"index":0,"power_draw_w":"lots",'
                          '"remap_pending":true,"nvlinks":[{"link":0,"active":false},"x"],"extra":1}, 5]}')
    g = inv.gpus[0]
    assert g.power_draw_w is None and g.remap_pending is True and [lk.active for lk in g.nvlinks] == [False]
    assert inv.warnings and "gpus[1]" in inv.warnings[0]
    none = parse_nvml_json('{"schema":1,"backend":"pynvml","gpus":[],"error":{"kind":"library_not_found","message":"x"}}')
    assert none.no_gpu and none.error == "x" and none.count == 0


def test_power_trace_header_and_bad_rows():
    text = ("# clusterkit power-trace v1\n# power_source: average\n# gpu: 0,00000000:18:00.0,123,NVIDIA H100 80GB HBM3,700.0\n"
            "# pcie_under_load: 0,5,5,16,16\n"
            "t_s,gpu,phase,power_w,sm_clock_mhz,clock_event_reasons,temp_c,error\n"
            "0.00,0,idle,70.1,345,0x1,33,\n0.05,0,load,nan,1980,0x4,60,\ngarbage\n0.10,x,load,1,1,0x4,1,\n0.15,0,load,,,,,GPU_LOST\n")
    assert sniff(text).name == "power-trace"
    tr = parse_power_trace(text)
    assert tr.power_source == "average" and tr.gpus[0].bus_id == "0000:18:00.0" and tr.gpus[0].power_limit_w == 700.0
    assert tr.gpus[0].pcie_under_load == (5, 5, 16, 16)
    assert [s.power_w for s in tr.samples] == [70.1, None, None] and tr.samples[-1].error == "GPU_LOST"
    assert tr.skipped_rows == 2


# DCGM 4 prints one `GPUn: Result` row per GPU under each test (dcgmi diag -r 2, 4.x layout).
DCGM4 = """+---------------------------+------------------------------------------------+
| Diagnostic                | Result                                         |
+===========================+================================================+
+-----  Hardware  ----------+------------------------------------------------+
| memory                    | Fail                                           |
| Warning                   | GPU 1 had uncorrectable memory errors          |
|                           | GPU0: Pass                                     |
|                           | GPU1: Fail                                     |
+-----  Integration  -------+------------------------------------------------+
| pcie                      | Fail                                           |
| Warning                   | There was an internal error during the test:   |
|                           | 'A child process (152) exited with non-zero s  |
|                           | tatus 1'                                       |
|                           | GPU0: Pass                                     |
|                           | GPU1: Pass                                     |
+---------------------------+------------------------------------------------+
"""


def test_dcgm4_per_gpu_rows_name_the_failing_gpu_and_an_internal_error_is_not_a_gpu_fault(tmp_path):
    from clusterkit.pipeline import analyze_paths

    d = parse_dcgmi_diag(DCGM4)
    mem, pcie = d.tests
    assert mem.gpu_results == {0: "pass", 1: "fail"} and not mem.internal_error_only
    assert pcie.gpu_results == {0: "pass", 1: "pass"} and pcie.internal_error_only
    assert "GPU0" not in " ".join(pcie.warnings)          # GPU rows are results, not warning text
    p = tmp_path / "diag.txt"
    p.write_text(DCGM4)
    findings = [f for n in analyze_paths([p]).nodes for c in n.checks for f in c.findings]
    by_code = {f.code: f for f in findings}
    assert by_code["GPU_DCGM_DIAG_FAIL"].component == "GPU 1" and by_code["GPU_DCGM_DIAG_FAIL"].severity == "fail"
    assert by_code["GPU_DCGM_DIAG_INTERNAL_ERROR"].severity == "warn"
