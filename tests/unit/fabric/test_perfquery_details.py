"""`perfquery -E` (PortRcvErrorDetails) and `perfquery -D` (PortXmitDiscardDetails): PortRcvErrors and
PortXmitDiscards broken down by cause, judged like their totals. Fixtures written from perfquery(8) and
infiniband-diags' perfquery.c (`# <Attribute> counters: Lid N port N`, `Name:....value`)."""

from __future__ import annotations

from pathlib import Path

from clusterkit.evidence.kinds import sniff
from clusterkit.parsers.ibcounters import parse_perfquery
from clusterkit.pipeline import analyze_paths

RCV = """# PortRcvErrorDetails counters: Lid 77 port 1
PortSelect:......................1
CounterSelect:...................0x0000
PortLocalPhysicalErrors:.........{phys}
PortMalformedPktErrors:..........{malformed}
PortBufferOverrunErrors:.........0
PortDLIDMappingErrors:...........0
PortVLMappingErrors:.............0
PortLoopingErrors:...............{looping}
"""
XMIT = """# PortXmitDiscardDetails counters: Lid 77 port 1
PortSelect:......................1
CounterSelect:...................0x0000
PortInactiveDiscards:............0
PortNeighborMTUDiscards:.........{mtu}
PortSwLifetimeLimitDiscards:.....0
PortSwHOQLifetimeLimitDiscards:..0
"""


def _analyze(tmp_path: Path, text: str):
    p = tmp_path / "paste.txt"
    p.write_text(text)
    (node,) = analyze_paths([p]).nodes
    return node.status, {(f.code, f.severity, f.message.split()[0]): f for c in node.checks for f in c.findings}


def test_rcv_error_and_xmit_discard_details_are_read_per_port():
    text = RCV.format(phys=3, malformed=0, looping=0) + XMIT.format(mtu=12)
    assert sniff(text).name == "perfquery"
    counters = parse_perfquery(text).ports["lid77/1"].counters
    assert counters == {"port_local_physical_errors": 3, "port_malformed_pkt_errors": 0, "port_buffer_overrun_errors": 0,
                        "port_dlid_mapping_errors": 0, "port_vl_mapping_errors": 0, "port_looping_errors": 0,
                        "port_inactive_discards": 0, "port_neighbor_mtu_discards": 12,
                        "port_sw_lifetime_limit_discards": 0, "port_sw_hoq_lifetime_limit_discards": 0}
    # a grep of the detail lines alone (no header, no PortSelect) is still perfquery
    assert sniff("PortLocalPhysicalErrors:.........0\nPortMalformedPktErrors:..........0\n").name == "perfquery"


def test_all_zero_details_pass(tmp_path):
    status, found = _analyze(tmp_path, RCV.format(phys=0, malformed=0, looping=0) + XMIT.format(mtu=0))
    assert (status, found) == ("pass", {})


def test_non_zero_details_are_judged_like_port_rcv_errors(tmp_path):
    # a printout has no window: above the window's limit it warns as a lifetime total, as PortRcvErrors does
    status, found = _analyze(tmp_path, RCV.format(phys=250, malformed=40, looping=0))
    assert status == "warn"
    assert "port_local_physical_errors 250" in found[("FABRIC_COUNTER_LIFETIME", "warn", "port_local_physical_errors")].message
    assert ("FABRIC_COUNTER_LIFETIME", "warn", "port_malformed_pkt_errors") in found
    total = _analyze(tmp_path, "# Port counters: Lid 77 port 1\nPortSelect:......................1\n"
                               "PortRcvErrors:...................250\n")
    assert ("FABRIC_COUNTER_LIFETIME", "warn", "port_rcv_errors") in total[1]
    # a saturated 16-bit detail counter on a printout fails, naming the receiver path
    status, found = _analyze(tmp_path, RCV.format(phys=65535, malformed=0, looping=0))
    f = found[("IB_COUNTER_SATURATED", "fail", "port_local_physical_errors")]
    assert status == "fail" and "port_local_physical_errors at least 65535" in f.message and "fiber" in f.action
    # a routing cause points at the subnet manager, within the limit it is only noted
    status, found = _analyze(tmp_path, RCV.format(phys=0, malformed=0, looping=65535))
    assert status == "fail" and "subnet manager" in found[("IB_COUNTER_SATURATED", "fail", "port_looping_errors")].action
    status, _ = _analyze(tmp_path, RCV.format(phys=2, malformed=1, looping=0))
    assert status == "pass"


def test_xmit_discard_details_use_the_discard_limit(tmp_path):
    assert _analyze(tmp_path, XMIT.format(mtu=80))[0] == "pass"        # under the 100 a window allows
    status, found = _analyze(tmp_path, XMIT.format(mtu=5000))
    f = found[("FABRIC_COUNTER_LIFETIME", "warn", "port_neighbor_mtu_discards")]
    assert status == "warn" and "port_neighbor_mtu_discards 5000" in f.message and f.limit == 100.0
