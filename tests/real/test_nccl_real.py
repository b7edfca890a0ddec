"""Every nccl output in ../shared/real-outputs: the right peak, gate value and an SRE's verdict.

Each file is analyzed as a user would: pasted as a loose file with no inventory and the
default profile, so the profile comes from the GPU names in the output.
"""

from __future__ import annotations


import pytest

from clusterkit.analysis import analyze_bundles, open_paths
from clusterkit.parsers.nccl_tests import parse
from clusterkit.suites import Suite


from tests.conftest import real_output  # noqa: E402

# name -> (peak busbw, gate busbw, ranks, nodes, status, finding codes, judged by)
CASES = {
    "nccl_allreduce_8xa100_sxm4_40gb_single_node_oci.txt":
        (235.21, 232.82, 8, 1, "pass", [], "a100-sxm4-40gb"),
    "nccl_allreduce_2x8xh100_ib_ring_lowbw_90.txt":
        (102.27, 89.41, 16, 2, "fail", ["NCCL_VALIDATION_OFF", "NCCL_BUSBW_LOW"], "h100-sxm5-80gb"),
    "nccl_allreduce_2x8xh100_roce_oci_465.txt":
        (464.79, 461.72, 16, 2, "pass", [], "h100-sxm5-80gb"),
    "nccl_allreduce_4x8xh100_ib_vm_366.txt":
        (365.84, 363.67, 32, 4, "pass", [], "h100-sxm5-80gb"),
    "nccl_allreduce_2x8xa100_roce_oci_dip_72.txt":
        (71.56, 71.20, 16, 2, "fail", ["NCCL_BUSBW_CURVE_DIP", "NCCL_BUSBW_LOW"], "a100-sxm4-40gb"),
    # 1 GPU per node over one HDR NIC: 6.44 GB/s where even a 100G NIC gives ~12
    "nccl_allreduce_2x1xa100pcie_hdr_ib_lowbw_debuginfo.txt":
        (6.44, 6.435, 2, 2, "fail", ["NCCL_BUSBW_LOW"], "base"),
    "nccl_allreduce_8xh100_fail_cuda_not_initialized.txt":
        (None, None, None, None, "fail", ["NCCL_TEST_FAILED"], None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_real_nccl_output(name, tmp_path):
    peak, gate, ranks, nodes, status, codes, judged_by = CASES[name]
    text = real_output(name)
    r = parse(text)
    assert r.busbw_peak_gbps == (pytest.approx(peak, abs=0.01) if peak is not None else None)
    assert r.busbw_large_gbps() == (pytest.approx(gate, abs=0.01) if gate is not None else None)
    assert r.ranks == ranks and r.nodes == nodes
    f = tmp_path / name
    f.write_text(text)
    bundles, cluster, errors, loose = open_paths([f])
    assert not errors and bundles and loose
    run = analyze_bundles(bundles, Suite("t", ["nccl.single_node", "nccl.multi_node", "nccl.fleet", "nccl.localize"]),
                          cluster_bundle=cluster, loose=loose)
    (node,) = run.nodes
    (c,) = [c for c in node.checks if c.id == "nccl.single_node"]
    assert c.status == status, c.summary
    assert [x.code for x in c.findings] == codes
    if judged_by:
        assert c.metrics["judged_by"] == judged_by
        assert c.metrics["busbw_avg_gbps"] == pytest.approx(r.avg_busbw_gbps, abs=0.001)  # reported, never gated


def test_cuda_init_failure_names_the_fabric_manager(tmp_path):
    f = tmp_path / "fail.txt"
    f.write_text(real_output("nccl_allreduce_8xh100_fail_cuda_not_initialized.txt"))
    bundles, cluster, _e, loose = open_paths([f])
    run = analyze_bundles(bundles, Suite("t", ["nccl.single_node"]), loose=loose)
    finding = run.nodes[0].checks[0].findings[0]
    assert "fabric" in finding.message and "nvidia-fabricmanager" in finding.action
    assert "system not yet initialized" in finding.evidence


def test_low_2node_h100_run_names_the_expected_figure(tmp_path):
    f = tmp_path / "ring.txt"
    f.write_text(real_output("nccl_allreduce_2x8xh100_ib_ring_lowbw_90.txt"))
    bundles, _c, _e, loose = open_paths([f])
    c = analyze_bundles(bundles, Suite("t", ["nccl.single_node"]), loose=loose).nodes[0].checks[0]
    low = c.findings[-1]
    assert low.severity == "fail" and low.observed == pytest.approx(89.41, abs=0.01)
    assert "8 x 400 Gb/s" in low.message and c.metrics["expected_busbw_gbps"] == pytest.approx(376.0)


def test_mid_sweep_dip_is_pointed_out(tmp_path):
    f = tmp_path / "dip.txt"
    f.write_text(real_output("nccl_allreduce_2x8xa100_roce_oci_dip_72.txt"))
    bundles, _c, _e, loose = open_paths([f])
    c = analyze_bundles(bundles, Suite("t", ["nccl.single_node"]), loose=loose).nodes[0].checks[0]
    dip = c.findings[0]
    assert dip.code == "NCCL_BUSBW_CURVE_DIP" and "64 MiB" in dip.message  # 27.3 after 43.9 at 8 MiB
    assert dip.observed == pytest.approx((20.77 + 33.92) / 2, abs=0.01)
