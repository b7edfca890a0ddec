"""gpu.xid beyond plain Xids: causes named by secondary Xids, NVSwitch SXids, and driver messages
without an Xid. Fixtures follow the NVIDIA driver's message formats (open-gpu-kernel-modules
os-interface/nvswitch sources, the Xid catalogue's examples)."""

from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.evidence.bundle import Bundle
from clusterkit.parsers.kernel_log import parse_kernel_log
from clusterkit.parsers.xid import XID_CATALOGUE, group_xids, sxid_groups, xid_events
from clusterkit.suites import Suite


def _xid(dmesg: str):
    b = Bundle.virtual("n1", {"host/dmesg.txt": dmesg}, {"host": "n1", "declared": {"gpu_count": 8}})
    run = analyze_bundles([b], Suite("t", ["gpu.xid"]), profiles=ProfileResolver())
    return run.nodes[0].checks[0]


def test_application_xids_alone_never_fail_a_node():
    log = "".join(f"[{i}.0] NVRM: Xid (PCI:0000:38:00): {x}, pid=7, name=pt_main_thread, detail\n"
                  for i, x in enumerate((13, 31, 43, 13)))
    r = _xid(log)
    assert r.status == "pass" and {f.severity for f in r.findings} == {"info"}


def test_secondary_xid_is_reported_under_the_cause_it_names():
    log = ("kernel: NVRM: Xid (PCI:0000:dc:00): 45, pid=1, name=python3, Ch 00000001 caused by previous Xid 149\n"
           "kernel: NVRM: Xid (PCI:0000:dc:00): 45, pid=1, name=python3, Ch 00000002 caused by previous Xid 149\n"
           "kernel: NVRM: Xid (PCI:0000:97:00): 45, pid=2, name=python3, Ch 00000003\n")
    r = _xid(log)
    by = {(f.code, f.component): f for f in r.findings}
    cause = by[("GPU_XID_149", "GPU at PCI 0000:dc:00.0")]
    assert cause.severity == "fail" and cause.observed == 2 and "named as the cause by 2 Xid 45" in cause.message
    assert ("GPU_XID_45", "GPU at PCI 0000:dc:00.0") not in by                 # folded into its cause
    assert by[("GPU_XID_45", "GPU at PCI 0000:97:00.0")].severity == "info"   # no cause named: stays itself
    # the cause's own line and its secondary: one finding, counting the line
    g = group_xids(xid_events(parse_kernel_log(
        "NVRM: Xid (PCI:0000:dc:00): 149, NETIR_LINK_EVT Fatal XC0 i0 Link 3\n" + log.split("\n")[0])))
    assert [(x.xid, x.count, x.secondary) for x in g] == [(149, 1, {45: 1})]


def test_blackwell_nvlink_xids_fail_and_137_is_the_application():
    assert all(XID_CATALOGUE[x].severity == "fail" for x in range(144, 151))
    assert XID_CATALOGUE[137].severity == "info"


def test_fallen_off_the_bus_without_an_xid_line():
    log = ("[ 1843.308145] NVRM: The NVIDIA GPU 0000:b3:00.0\n"
           "               NVRM: (PCI ID: 10de:26b5) installed in this system has\n"
           "               NVRM: fallen off the bus and is not responding to commands.\n")
    r = _xid(log)
    assert [(f.code, f.component) for f in r.findings] == [("GPU_XID_79", "GPU at PCI 0000:b3:00.0")]


def test_init_failure_reset_required_and_peermem():
    init = ("[101.2] NVRM: GPU 0000:a1:00.0: RmInitAdapter failed! (0x62:0x40:2168)\n"
            "[101.3] NVRM: GPU 0000:a1:00.0: rm_init_adapter failed, device minor number 7\n"
            "[60.06] nvidia 0000:2c:00.0: probe with driver nvidia failed with error -1\n")
    r = _xid(init)
    assert {(f.code, f.component, f.observed) for f in r.findings} == {
        ("GPU_INIT_FAILED", "GPU at PCI 0000:a1:00.0", 2), ("GPU_INIT_FAILED", "GPU at PCI 0000:2c:00.0", 1)}
    reset = "kernel: NVRM: GPU0 nvCheckOkFailedNoLog: Check failed: Reset required [NV_ERR_RESET_REQUIRED] (0x00000062)\n"
    assert [(f.code, f.severity, f.component) for f in _xid(reset).findings] == [
        ("GPU_RESET_REQUIRED", "fail", "GPU0 (NVRM numbering)")]
    one = "[5.0] nvidia-peermem nv_get_p2p_free_callback:127 ERROR detected invalid context, skipping further processing\n"
    assert _xid(one).status == "pass"                    # once is noise
    assert [(f.code, f.severity) for f in _xid(one * 5).findings] == [("GPU_PEERMEM_INVALID_CONTEXT", "warn")]


def test_gsp_timeout_without_an_xid_and_not_twice_with_one():
    hb = ("[24.30] NVRM: GPU6 _kgspIsHeartbeatTimedOut: Heartbeat timed out, currentTimeMs 812751949 diff 6070 timeout 5200\n"
          "[84.30] NVRM: GPU6 _kgspLogRpcTimeout: ********************************* GSP Timeout ******\n")
    r = _xid(hb)
    assert [(f.code, f.component, f.observed) for f in r.findings] == [("GPU_GSP_TIMEOUT", "GPU6 (NVRM numbering)", 2)]
    xid = ("[90.0] NVRM: Xid (PCI:0000:9b:00): 119, pid=2, name=nvidia-smi, Timeout after 6s of waiting for RPC "
           "response from GPU6 GSP! Expected function 103 (GSP_RM_ALLOC) (0x2081 0x4).\n")
    assert [f.code for f in _xid(hb + xid).findings] == ["GPU_XID_119"]   # the same GPU: the Xid says it
    other = hb.replace("GPU6", "GPU2")
    assert {f.code for f in _xid(other + xid).findings} == {"GPU_XID_119", "GPU_GSP_TIMEOUT"}


def test_nvswitch_sxid_fatal_and_non_fatal():
    # nvswitch driver: 'nvidia-nvswitch%d: SXid (PCI:%s): %05d, <Fatal|Non-fatal>, Link %02d <text>' then
    # 'Severity %d Engine instance ...' (NVSWITCH_ERROR_SEVERITY_FATAL = 1) and 'Data {...}'
    log = ("[38.17] nvidia-nvswitch3: SXid (PCI:0000:04:00.0): 22013, Data {0x0000002b, 0x0000002b}\n"
           "[38.18] nvidia-nvswitch3: SXid (PCI:0000:04:00.0): 22013, Non-fatal, Link 44 Minion Link DLREQ interrupt\n"
           "[38.19] nvidia-nvswitch3: SXid (PCI:0000:04:00.0): 22013, Non-fatal, Link 45 Minion Link DLREQ interrupt\n"
           "[90.00] nvidia-nvswitch1: SXid (PCI:0000:aa:00.0): 24007, Severity 1 Engine instance 12 Sub-engine instance 00\n"
           "[90.01] nvidia-nvswitch1: SXid (PCI:0000:aa:00.0): 24007, Data {0x10000000, 0x10008100}\n")
    groups = {g.sxid: g for g in sxid_groups(parse_kernel_log(log))}
    assert groups[22013].fatal is False and groups[22013].links == [44, 45] and groups[22013].count == 3
    assert groups[22013].sample.startswith("Non-fatal, Link 44")
    assert groups[24007].fatal is True
    r = _xid(log)
    assert {(f.code, f.severity) for f in r.findings} == {("NVSWITCH_SXID_NONFATAL", "warn"), ("NVSWITCH_SXID_FATAL", "fail")}
    assert any(f.component == "NVSwitch nvidia-nvswitch3 (0000:04:00.0), links 44, 45" for f in r.findings)
