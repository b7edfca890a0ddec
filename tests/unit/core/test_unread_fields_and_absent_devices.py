"""One unreadable field is not a lost GPU; a tool finding no device is evidence; states that say what they mean.

Fixtures written from each tool's format (nvidia-smi, ibstatus, ibv_devinfo, ipmitool sel info, the NVIDIA
driver's and the Kubernetes device plugin's log lines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterkit.parsers.nvidia_smi import yes_no
from clusterkit.pipeline import analyze_paths


def _analyze(tmp_path: Path, text: str):
    p = tmp_path / "paste.txt"
    p.write_text(text)
    (node,) = analyze_paths([p]).nodes
    return node, {f.code: f for c in node.checks for f in c.findings}


ROW = """\
+-------------------------------+----------------------+----------------------+
|   1  Tesla V100-PCIE...  On   | 00000000:3B:00.0 Off |                    0 |
| N/A   29C    P0  {power} / 250W |    593MiB / 16160MiB |      {util}      Default |
+-------------------------------+----------------------+----------------------+
"""


def test_one_err_cell_is_an_unreadable_field_several_are_a_lost_gpu(tmp_path):
    node, codes = _analyze(tmp_path, ROW.format(power="ERR!", util="0%"))
    assert node.status == "warn" and "power draw" in codes["NVSMI_FIELD_UNKNOWN_ERROR"].message
    node, codes = _analyze(tmp_path, ROW.format(power="ERR!", util="ERR!"))
    assert node.status == "fail" and "GPU_UNREADABLE" in codes


@pytest.mark.parametrize("value,want", [("Yes", True), ("Yes                      <===", True), ("No", False),
                                        ("Not Active", False), ("Unknown Error", None)])
def test_a_marked_value_reads_like_the_plain_one(value, want):
    assert yes_no(value) is want


Q = """==============NVSMI LOG==============
Driver Version                            : 525.105.17
Attached GPUs                             : 1
GPU 00000000:18:00.0
    Product Name                          : {name}
    Persistence Mode                      : {persistence}
    Ecc Mode
        Current                           : {ecc}
        Pending                           : {ecc}
"""


def test_ecc_off_is_a_warning_on_a_data_center_gpu_only(tmp_path):
    node, codes = _analyze(tmp_path, Q.format(name="NVIDIA H800", persistence="Enabled", ecc="Disabled"))
    assert node.status == "warn" and "GPU_ECC_DISABLED" in codes
    node, codes = _analyze(tmp_path, Q.format(name="NVIDIA RTX 6000 Ada Generation", persistence="Disabled",
                                              ecc="Disabled"))
    assert "GPU_ECC_DISABLED" not in codes and "GPU_PERSISTENCE_OFF" not in codes   # a workstation board's defaults


def test_fields_nvidia_smi_answers_unknown_error_for_are_named(tmp_path):
    node, codes = _analyze(tmp_path, Q.format(name="NVIDIA A100-SXM4-80GB", persistence="Enabled", ecc="Unknown Error"))
    assert node.status == "warn" and "Ecc Mode > Current" in codes["NVSMI_FIELD_UNKNOWN_ERROR"].message


def test_a_tool_that_finds_no_infiniband_device_fails_a_pasted_node(tmp_path):
    node, codes = _analyze(tmp_path, "Fatal error:  device '*': sys files not found (/sys/class/infiniband/*/ports)\n")
    assert node.status == "fail" and "no InfiniBand device" in codes["FABRIC_HCA_MISSING"].message


IBV = """hca_id:\tmlx5_7
\ttransport:\t\t\tInfiniBand (0)
\tfw_ver:\t\t\t\t28.39.3004
\tvendor_part_id:\t\t\t4126
\tphys_port_cnt:\t\t\t1
\t\tport:\t1
\t\t\tstate:\t\t\t{state}
\t\t\tsm_lid:\t\t\t4
\t\t\tport_lid:\t\t65535
\t\t\tlink_layer:\t\tInfiniBand
"""


def test_a_port_stuck_in_init_has_a_link_but_no_subnet_manager_activation(tmp_path):
    node, codes = _analyze(tmp_path, IBV.format(state="PORT_INIT (2)"))
    assert node.status == "fail" and "FABRIC_PORT_DOWN" in codes
    node, _ = _analyze(tmp_path, IBV.format(state="PORT_ACTIVE (4)").replace("65535", "12"))
    assert node.status == "pass"


def test_a_full_bmc_event_log_is_a_warning(tmp_path):
    info = ("SEL Information\nVersion          : 1.5 (v1.5, v2 compliant)\nEntries          : {n}\n"
            "Free Space       : {free} bytes\nPercent Used     : {pct}%\nOverflow         : {ovf}\n")
    node, codes = _analyze(tmp_path, info.format(n=3008, free=0, pct=100, ovf="true"))
    assert node.status == "warn" and "new hardware events are being dropped" in codes["IPMI_SEL_FULL"].message
    node, _ = _analyze(tmp_path, info.format(n=120, free=14000, pct=12, ovf="false"))
    assert node.status == "pass"


def test_nvlink_discovery_failure_and_a_device_plugin_xid_are_read(tmp_path):
    node, codes = _analyze(tmp_path, "Jul 09 10:42:47 gpu07 kernel: NVRM: knvlinkDiscoverPostRxDetLinks_GH100: "
                                     "Getting peer0's postRxDetLinkMask failed!\n")
    assert node.status == "fail" and "GPU_NVLINK_DOWN" in codes
    node, codes = _analyze(tmp_path, "2020/08/10 19:09:42 XidCriticalError: Xid=48 on Device=GPU-7540a9b3-eeb9-1214-"
                                     "1526-f93c9ea826a8, the device will go unhealthy.\n")
    assert node.status == "fail" and "GPU-7540a9b3" in codes["GPU_XID_48"].message + str(codes["GPU_XID_48"].evidence)
