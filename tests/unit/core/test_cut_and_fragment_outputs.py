"""Cut pastes and fragments are judged on what they show, and say so; fixtures written from each tool's format."""

from __future__ import annotations

from pathlib import Path

from clusterkit.pipeline import analyze_paths


def _analyze(tmp_path: Path, text: str):
    p = tmp_path / "paste.txt"
    p.write_text(text)
    run = analyze_paths([p])
    (node,) = run.nodes
    return node, {f.code: f for c in node.checks for f in c.findings}


TOPO_CUT = """\
        GPU0    GPU1    GPU2    GPU3    NIC0    CPU Affinity    NUMA Affinity
GPU0     X      NV12    NV12    NV12    PXB     0-31            0
GPU1    NV12     X      NV12    NV12    PXB     0-31            0
GPU2    NV12    NV12     X      NV
"""


def test_a_topology_matrix_cut_mid_row_is_judged_on_its_whole_rows(tmp_path):
    node, codes = _analyze(tmp_path, TOPO_CUT)
    assert node.status == "pass"
    assert "GPU2, GPU3" in codes["GPU_EVIDENCE_PARTIAL"].message


def test_a_fabric_block_of_nvidia_smi_q_in_progress_fails_the_gpu(tmp_path):
    node, codes = _analyze(tmp_path, "    Fabric\n        State                             : In Progress\n"
                                     "        Status                            : N/A\n"
                                     "        CliqueId                          : N/A\n")
    assert node.status == "fail" and "GPU_FABRIC_NOT_READY" in codes


def test_one_field_answering_unknown_error_is_a_warning_not_unusable_evidence(tmp_path):
    node, codes = _analyze(tmp_path, "name, temperature.gpu, power.draw [W], power.default_limit [W]\n"
                                     "NVIDIA A100-SXM4-80GB, 41, 88.10 W, [Unknown Error]\n")
    assert node.status == "warn" and "power.default_limit" in codes["NVSMI_FIELD_UNKNOWN_ERROR"].message


def test_a_transceiver_the_driver_refuses_fails_its_port(tmp_path):
    node, codes = _analyze(tmp_path, "[  312.100000] i40e 0000:17:00.1: Rx/Tx is disabled on this device because an "
                                     "unsupported SFP module type was detected.\n")
    assert node.status == "fail" and codes["NIC_MODULE_UNSUPPORTED"].component == "i40e 0000:17:00.1"


DCGM_CUT = """\
+---------------------------+------------------------------------------------+
| Diagnostic                | Result                                         |
+===========================+================================================+
|-----  Deployment  --------+------------------------------------------------|
| Denylist                  | Pass                                           |
| NVML Library              | Pass                                           |
+-----  Integration  -------+------------------------------------------------+
"""


def test_a_dcgmi_table_that_stops_at_a_section_header_cannot_pass(tmp_path):
    node, codes = _analyze(tmp_path, DCGM_CUT)
    assert node.status == "error" and "Integration" in codes["GPU_EVIDENCE_PARTIAL"].message
    # the same table whole (closing border, no later section) passes
    node, _ = _analyze(tmp_path, DCGM_CUT.rsplit("+-----  Integration", 1)[0]
                       + "+---------------------------+------------------------------------------------+\n")
    assert node.status == "pass"


ETHTOOL_M_ID_ONLY = """\
	Identifier                                : 0x11 (QSFP28)
	Connector                                 : 0x0c (MPO Parallel Optic)
	Transceiver type                          : 100G Ethernet: 100G Base-SR4 or 25GBase-SR
	Vendor name                               : EXAMPLE
"""


def test_an_optic_without_its_readings_cannot_be_judged_but_a_copper_cable_passes(tmp_path):
    node, codes = _analyze(tmp_path, ETHTOOL_M_ID_ONLY)
    assert node.status == "error" and "no light levels" in codes["INPUT_UNUSABLE"].message
    copper = ETHTOOL_M_ID_ONLY.replace("0x0c (MPO Parallel Optic)", "0x23 (No separable connector)").replace(
        "100G Ethernet: 100G Base-SR4 or 25GBase-SR", "Copper cable unequalized")
    node, _ = _analyze(tmp_path, copper)
    assert node.status == "pass"
