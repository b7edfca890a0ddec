"""The fabric kinds added for issues #12/#13, on fixtures written from the tools' documented formats:
ibv_devinfo -v, ibqueryerrors, ibdiagnet (1.x and 2.x summaries), mlxcables, and the fragments users
paste (a bare `Port 1:` block, ibstat without indentation, `ethtool -S | grep`, `ethtool -m | grep dBm`).
Then the rules that judge ports without an inventory (fleet shape, card siblings, HCA model), and fuzzing.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from clusterkit.analysis import open_paths
from clusterkit.evidence.bundle import Bundle
from clusterkit.evidence.kinds import sniff
from clusterkit.parsers import ParseError
from clusterkit.parsers.ethtool import parse_ethtool_module, parse_ethtool_stats
from clusterkit.parsers.ibdiagnet import parse_ibdiagnet
from clusterkit.parsers.ibqueryerrors import parse_ibqueryerrors
from clusterkit.parsers.ibstat import parse_ibstat
from clusterkit.parsers.ibv_devinfo import parse_ibv_devinfo
from clusterkit.parsers.mlxcables import parse_mlxcables
from clusterkit.parsers.mlxlink import parse_mlxlink
from clusterkit.plugins import load_all
from tests.fabric_helpers import analyze, node_check

load_all()

# ---- fixtures, written from the formats ----------------------------------------------------

# rdma-core ibv_devinfo -v: tab-indented `key: value`, `port:` sub-blocks, enums printed `NAME (n)`.
IBV_DEVINFO_V = """hca_id:\tmlx5_0
\ttransport:\t\t\tInfiniBand (0)
\tfw_ver:\t\t\t\t28.39.1002
\tnode_guid:\t\t\t946d:ae03:00cd:e72c
\tsys_image_guid:\t\t\t946d:ae03:00cd:e72c
\tvendor_id:\t\t\t0x02c9
\tvendor_part_id:\t\t\t4129
\thw_ver:\t\t\t\t0x0
\tboard_id:\t\t\tMT_0000000838
\tphys_port_cnt:\t\t\t1
\tmax_mr_size:\t\t\t0xffffffffffffffff
\t\tport:\t1
\t\t\tstate:\t\t\tPORT_ACTIVE (4)
\t\t\tmax_mtu:\t\t4096 (5)
\t\t\tactive_mtu:\t\t4096 (5)
\t\t\tsm_lid:\t\t\t1
\t\t\tport_lid:\t\t75
\t\t\tport_lmc:\t\t0x00
\t\t\tlink_layer:\t\tInfiniBand
\t\t\tmax_msg_sz:\t\t0x40000000
\t\t\tactive_width:\t\t4X (2)
\t\t\tactive_speed:\t\t100.0 Gbps (128)
\t\t\tphys_state:\t\tLINK_UP (5)
\t\t\tGID[  0]:\t\tfe80:0000:0000:0000:946d:ae03:00cd:e72c

hca_id:\tmlx5_1
\ttransport:\t\t\tInfiniBand (0)
\tfw_ver:\t\t\t\t22.39.1002
\tnode_guid:\t\t\t946d:ae03:00c2:b690
\tsys_image_guid:\t\t\t946d:ae03:00c2:b690
\tvendor_part_id:\t\t\t4125
\tphys_port_cnt:\t\t\t1
\t\tport:\t1
\t\t\tstate:\t\t\tPORT_DOWN (1)
\t\t\tsm_lid:\t\t\t0
\t\t\tport_lid:\t\t0
\t\t\tlink_layer:\t\tEthernet
\t\t\tactive_width:\t\t4X (2)
\t\t\tactive_speed:\t\t25.0 Gbps (32)
\t\t\tphys_state:\t\tDISABLED (3)
"""


def _ibv_block(i: int, state: str, phys: str, speed: str) -> str:
    return (f"hca_id:\tmlx5_{i}\n\tfw_ver:\t\t\t\t28.39.1002\n\tnode_guid:\t\t\t946d:ae03:00cd:e7{i:02x}\n"
            f"\tsys_image_guid:\t\t\t946d:ae03:00cd:e7{i:02x}\n\tvendor_part_id:\t\t\t4129\n\t\tport:\t1\n"
            f"\t\t\tstate:\t\t\t{state}\n\t\t\tlink_layer:\t\tInfiniBand\n\t\t\tactive_width:\t\t4X (2)\n"
            f"\t\t\tactive_speed:\t\t{speed}\n\t\t\tphys_state:\t\t{phys}\n\n")


# infiniband-diags ibqueryerrors: `Errors for` a node, then one line per port with `[Counter == value]`.
IBQUERYERRORS = """Errors for 0xf452140300a1b2c0 "leaf07 MQM8790/U1"
   GUID 0xf452140300a1b2c0 port ALL: [SymbolErrorCounter == 65535] [PortXmitDiscards == 130]
   GUID 0xf452140300a1b2c0 port 12: [SymbolErrorCounter == 65535] [LinkErrorRecoveryCounter == 3]
   GUID 0xf452140300a1b2c0 port 30: [PortXmitDiscards == 130] [PortXmitWait == 4294967295]
Errors for "node014 HCA-1"
   GUID 0x0c42a10300dd1e40 port ALL: [PortRcvErrors == 42 (42.000)]

## Summary: 2 nodes checked, 2 bad nodes found
##          3 ports checked, 3 ports have errors beyond threshold
"""

# ibdiagnet 2.x: stage sections after rule lines, then the Summary table (Warnings before Errors).
IBDIAGNET2 = """Load Plugins from:
/usr/share/ibdiagnet2.1.1/plugins/
---------------------------------------------
Discovery
-I- Discovering ... 3 nodes (1 Switches & 2 CA-s) discovered.
-I- Discovery finished successfully

---------------------------------------------
Port Counters
-E- lid=0x0004 dev=54000 leaf01/U1 Port=7 Performance Monitor counter     : Value
        symbol_error_counter                                              : 4210 (threshold=1)
-I- Port Counters finished with errors

---------------------------------------------
Speed / Width checks
-W- Link: S7cfe900300a1b2c0/N7cfe900300a1b2c0/P7<-->node014 HCA-1/P1 - Unexpected actual link speed 25 (enable_speed1="2.5 or 5 or 10 or 14 or 25", enable_speed2="2.5 or 5 or 10 or 14 or 25" therefore final speed should be 25)

---------------------------------------------
Summary
-I- Stage                     Warnings   Errors     Comment
-I- Discovery                 0          0
-I- Lids Check                0          0
-I- Links Check               0          0
-I- Subnet Manager            0          0
-I- Port Counters             0          1
-I- Speed / Width checks      1          0

-I- You can find detailed errors/warnings in: /var/tmp/ibdiagnet2/ibdiagnet2.log
"""

# mlxcables query (MFT documentation's layout): a block per cable, EEPROM fields as `Key : value`.
MLXCABLES_HOT = """Querying Cables ....

Cable #1:
---------
Cable name    : mt4123_pciconf0_cable_0
FW version    : 2.0.208
-------- Cable EEPROM --------
Identifier    : QSFP+ (0dh)
Technology    : 850 nm VCSEL (00h)
Wavelength    : 850 nm
OUI           : 0x0002c9
Vendor        : Mellanox
Serial number : MT1707FT01544
Part number   : MFA1A00-E001
Revision      : A1
Temperature   : 86 C
Length        : 1 m
"""


def bundle(files: dict[str, str], **declared) -> Bundle:
    return Bundle.virtual("n1", files, {"host": "n1", "declared": declared})


def loose(tmp_path, text: str, name: str = "paste.txt"):
    p = tmp_path / name
    p.write_text(text)
    bundles, _, errors, _ = open_paths([p])
    assert not errors, errors[0].checks[0].findings[0].message
    return analyze(bundles, loose=True), bundles[0]


def codes(check) -> set[tuple[str, str]]:
    return {(f.code, f.severity) for f in check.findings}


# ---- parsers ----------------------------------------------------------------------------------

def test_ibv_devinfo_v_ports_rates_and_states():
    p0, p1 = parse_ibv_devinfo(IBV_DEVINFO_V)
    assert (p0.device, p0.state, p0.phys_state, p0.rate_gbps, p0.ca_type) == ("mlx5_0", "Active", "LinkUp", 400.0, "MT4129")
    assert p0.node_guid == "0x946dae0300cde72c" and p0.lid == 75 and p0.sm_lid == 1 and p0.active
    assert (p1.state, p1.phys_state, p1.link_layer, p1.rate_gbps) == ("Down", "Disabled", "Ethernet", 100.0)
    with pytest.raises(ParseError, match="No IB devices found"):
        parse_ibv_devinfo("No IB devices found\n")


def test_ibv_devinfo_without_v_is_judged_by_state_alone():
    text = "hca_id: mlx5_3\n\tfw_ver: 20.31.1014\n\tvendor_part_id: 4123\n\t\tport: 1\n\t\t\tstate: PORT_ACTIVE (4)\n"
    [p] = parse_ibv_devinfo(text)
    assert p.active and p.phys_state is None and p.rate_gbps is None


def test_ibqueryerrors_ports_labels_and_all_ports_line():
    snap = parse_ibqueryerrors(IBQUERYERRORS)
    assert snap.source == "ibqueryerrors" and snap.pasted
    assert set(snap.ports) == {"0xf452140300a1b2c0/12", "0xf452140300a1b2c0/30", "0x0c42a10300dd1e40/ALL"}
    sw = snap.ports["0xf452140300a1b2c0/12"]
    assert sw.counters == {"symbol_error": 65535, "link_error_recovery": 3}
    assert sw.label == '"leaf07 MQM8790/U1" (GUID 0xf452140300a1b2c0) port 12'
    assert snap.ports["0x0c42a10300dd1e40/ALL"].label.endswith("all ports")   # kept: no per-port line for it
    with pytest.raises(ParseError):
        parse_ibqueryerrors("## Summary: 0 nodes checked, 0 bad nodes found\n")


def test_ibdiagnet_2x_and_1x_column_orders():
    rep = parse_ibdiagnet(IBDIAGNET2)
    st = {s.name: s for s in rep.stages}
    assert (st["Port Counters"].errors, st["Port Counters"].warnings) == (1, 0)
    assert (st["Speed / Width checks"].errors, st["Speed / Width checks"].warnings) == (0, 1)
    assert st["Port Counters"].messages[0].startswith("-E- lid=0x0004") and rep.log == "/var/tmp/ibdiagnet2/ibdiagnet2.log"
    v1 = ("-I- Stages Status Report:\n    STAGE                 Errors Warnings\n    Bad GUIDs/LIDs Check  2      0\n"
          "    Link State Active Check  0  3\n\nPlease see /tmp/ibdiagnet.log for complete log\n")
    s1 = {s.name: (s.errors, s.warnings) for s in parse_ibdiagnet(v1).stages}
    assert s1 == {"Bad GUIDs/LIDs Check": (2, 0), "Link State Active Check": (0, 3)}
    with pytest.raises(ParseError, match="cut before it ended"):
        parse_ibdiagnet("Discovery\n-I- Discovering ... 3 nodes\n-E- something\n")


def test_mlxcables_fields_and_temperature():
    [c] = parse_mlxcables(MLXCABLES_HOT)
    assert (c.interface, c.vendor, c.part_number, c.serial) == ("mt4123_pciconf0_cable_0", "Mellanox", "MFA1A00-E001",
                                                                "MT1707FT01544")
    assert c.temperature_c == 86.0 and c.media.startswith("850 nm VCSEL")
    with pytest.raises(ParseError, match="-E- Failed"):
        parse_mlxcables("Querying Cables ....\n-E- Failed to query cable\n")


def test_fragments_are_recognized_and_parsed():
    bare = "Port 1:\n\tState: Active\n\tPhysical state: LinkUp\n\tRate: 100\n"
    assert sniff(bare).name == "ibstat" and parse_ibstat(bare)[0].rate_gbps == 100.0
    flat = "CA 'mlx5_0'\nCA type: MT4123\nFirmware version: 20.31.1014\nPort 1:\nState: Active\nPhysical state: LinkUp\nRate: 200\n"
    assert sniff(flat).name == "ibstat" and parse_ibstat(flat)[0].ca_type == "MT4123"
    grep_s = "$ ethtool -S ens1np0 | grep -E 'err|buffer'\n     rx_crc_errors_phy: 3\n     ..\n     rx_out_of_buffer: 9\n"
    assert sniff(grep_s).name == "ethtool-S"
    s = parse_ethtool_stats(grep_s)
    assert s.interface == "ens1np0" and s.counters == {"rx_crc_errors_phy": 3, "rx_out_of_buffer": 9}
    grep_m = ("# ethtool -m ens1np0 | grep dBm\n"
              "\tTransmit avg optical power (Channel 1)    : 0.8000 mW / -0.97 dBm\n"
              "\tRcvr signal avg optical power (Channel 1) : 0.0100 mW / -20.00 dBm\n"
              "\tLaser rx power low alarm threshold        : 0.0500 mW / -13.01 dBm\n")
    assert sniff(grep_m).name == "ethtool-m"
    m = parse_ethtool_module(grep_m)
    assert m.rx_power_dbm == [-20.0] and m.rx_power_limits.low_alarm == -13.01 and m.interface == "ens1np0"
    # a name: number paste that is no NIC counter is not claimed as ethtool
    assert getattr(sniff("alpha: 1\nbeta: 2\n"), "name", None) != "ethtool-S"


def test_mlxlink_speed_lists():
    r = parse_mlxlink("State : Active\nSpeed : IB-EDR\nWidth : 4x\n"
                      "Enabled Link Speed : 0x0000003f (EDR,FDR,FDR10,QDR,DDR,SDR)\n"
                      "Supported Cable Speed : 0x0000002f (EDR,FDR,QDR,DDR,SDR)\nFirmware Version : 20.31.1014\n")
    assert r.rate_gbps == 100.0 and r.link_layer == "InfiniBand" and r.cable_top_gbps == 100.0
    assert r.enabled_speeds[0] == "EDR"


# ---- checks -------------------------------------------------------------------------------------

def _ibstat(ports: list[tuple[str, str, str, int, str, str]]) -> str:
    """(device, CA type, state, rate, phys, sys image GUID) -> ibstat text."""
    return "".join(
        f"CA '{d}'\n\tCA type: {ca}\n\tNumber of ports: 1\n\tFirmware version: 28.39.1002\n\tNode GUID: 0x{i:016x}\n"
        f"\tSystem image GUID: {sysg}\n\tPort 1:\n\t\tState: {s}\n\t\tPhysical state: {ph}\n\t\tRate: {r}\n"
        f"\t\tLink layer: InfiniBand\n" for i, (d, ca, s, r, ph, sysg) in enumerate(ports))


def test_fleet_shape_fails_the_odd_port_of_a_model_and_spares_other_models():
    ports = [(f"mlx5_{i}", "MT4129", "Active", 400, "LinkUp", f"0x{100 + i:x}") for i in range(6)]
    ports += [("mlx5_6", "MT4129", "Down", 10, "Polling", "0x106"), ("mlx5_7", "MT4129", "Active", 200, "LinkUp", "0x107"),
              ("mlx5_bond_0", "MT41692", "Active", 200, "LinkUp", "0x200")]
    c = node_check(analyze([bundle({"fabric/ibstat.txt": _ibstat(ports)})], "fabric.ports"), "n1", "fabric.ports")
    by_dev = {f.component.split()[0]: f for f in c.findings}
    assert c.status == "fail" and set(by_dev) == {"mlx5_6", "mlx5_7"}     # the BlueField-3 at 200 is another model
    assert by_dev["mlx5_6"].code == "FABRIC_PORT_DOWN" and by_dev["mlx5_6"].severity == "fail"
    assert "6 of the 8 ConnectX-7" in by_dev["mlx5_6"].message and "cable" in by_dev["mlx5_6"].action
    assert by_dev["mlx5_7"].code == "FABRIC_PORT_RATE_LOW" and by_dev["mlx5_7"].limit == 400


def test_no_majority_warns_and_unused_second_port_is_quiet():
    half = [("mlx5_0", "MT4123", "Active", 200, "LinkUp", "0xa0"), ("mlx5_1", "MT4123", "Down", 10, "Disabled", "0xb0")]
    c = node_check(analyze([bundle({"fabric/ibstat.txt": _ibstat(half)})], "fabric.ports"), "n1", "fabric.ports")
    assert codes(c) == {("FABRIC_PORT_DOWN", "warn")}
    dual = [("mlx5_0", "MT4123", "Active", 200, "LinkUp", "0xa0"), ("mlx5_1", "MT4123", "Down", 10, "Disabled", "0xa0")]
    c = node_check(analyze([bundle({"fabric/ibstat.txt": _ibstat(dual)})], "fabric.ports"), "n1", "fabric.ports")
    assert c.status == "pass" and codes(c) == {("FABRIC_PORT_DOWN", "info")} and "second port" in c.findings[0].message


def test_linkup_but_never_active_fails_unless_its_card_is_active():
    alone = [("mlx5_0", "MT4123", "Initializing", 200, "LinkUp", "0xa0")]
    c = node_check(analyze([bundle({"fabric/ibstat.txt": _ibstat(alone)})], "fabric.ports"), "n1", "fabric.ports")
    assert codes(c) == {("FABRIC_PORT_DOWN", "fail")} and "subnet manager" in c.findings[0].action
    sd = [("ibp2s0f0", "MT4123", "Active", 100, "LinkUp", "0xa0"), ("ibp3s0f0", "MT4123", "Down", 100, "LinkUp", "0xa0")]
    c = node_check(analyze([bundle({"fabric/ibstat.txt": _ibstat(sd)})], "fabric.ports"), "n1", "fabric.ports")
    assert codes(c) == {("FABRIC_PORT_DOWN", "warn")} and "same card" in c.findings[0].message


def test_an_inventory_keeps_undeclared_ports_quiet():
    ports = [(f"mlx5_{i}", "MT4129", "Active", 400, "LinkUp", f"0x{i:x}") for i in range(3)]
    ports.append(("mlx5_3", "MT4129", "Down", 10, "Polling", "0x3"))
    b = bundle({"fabric/ibstat.txt": _ibstat(ports)}, ib_devices=["mlx5_0", "mlx5_1", "mlx5_2"], ib_rate_gbps=400)
    c = node_check(analyze([b], "fabric.ports"), "n1", "fabric.ports")
    assert c.status == "pass" and codes(c) == {("FABRIC_PORT_DOWN", "info")}


@pytest.mark.parametrize("ca, rate, want", [
    ("MT4119", 40, {("FABRIC_PORT_RATE_LOW", "warn")}),    # ConnectX-5 (EDR only) at QDR: below every SKU
    ("MT4119", 10, {("FABRIC_PORT_RATE_LOW", "fail")}),    # at SDR: a tenth of the card
    ("MT4123", 100, set()),                                # ConnectX-6 at 100: an HDR100 SKU
    ("MT4131", 10, set()),                                 # a model the table does not know: not judged
])
def test_rate_against_the_hca_model(ca, rate, want):
    text = _ibstat([("mlx5_0", ca, "Active", rate, "LinkUp", "0xa0")])
    c = node_check(analyze([bundle({"fabric/ibstat.txt": text})], "fabric.ports"), "n1", "fabric.ports")
    assert codes(c) == want


def test_firmware_mismatch_only_within_one_silicon():
    def vf(i: int, fw: str) -> str:
        return (f"CA 'mlx5_{i}'\n\tCA type: MT4126\n\tFirmware version: {fw}\n\tPort 1:\n\t\tState: Active\n"
                f"\t\tPhysical state: LinkUp\n\t\tRate: 200\n\t\tLink layer: InfiniBand\n")
    two_nics = vf(0, "22.35.2302") + vf(1, "28.37.1014") + vf(2, "28.37.1014")
    c = node_check(analyze([bundle({"fabric/ibstat.txt": two_nics})], "fabric.ports"), "n1", "fabric.ports")
    assert c.status == "pass"
    stale = vf(0, "28.35.1012") + vf(1, "28.37.1014")
    c = node_check(analyze([bundle({"fabric/ibstat.txt": stale})], "fabric.ports"), "n1", "fabric.ports")
    assert codes(c) == {("FABRIC_FIRMWARE_MISMATCH", "warn")}


def test_ibpanic_is_reported_and_the_printed_ports_still_judged(tmp_path):
    text = _ibstat([("mlx5_0", "MT4129", "Active", 400, "LinkUp", "0x1"), ("mlx5_1", "MT4129", "Active", 400, "LinkUp", "0x2"),
                    ("mlx5_2", "MT4129", "Active", 400, "LinkUp", "0x3"), ("mlx5_3", "MT4129", "Down", 10, "Disabled", "0x4")])
    run, _ = loose(tmp_path, text + "ibpanic: [77] main: stat of IB device 'mlx5_4' failed: No such file or directory\n")
    c = node_check(run, run.nodes[0].host, "fabric.ports")
    assert codes(c) == {("FABRIC_TOOL_ABORTED", "warn"), ("FABRIC_PORT_DOWN", "fail")}
    aborted = next(f for f in c.findings if f.code == "FABRIC_TOOL_ABORTED")
    assert aborted.component == "mlx5_4" and "dmesg" in aborted.action


def test_ibv_devinfo_ports_go_through_the_same_rules():
    text = "".join(_ibv_block(i, "PORT_ACTIVE (4)", "LINK_UP (5)", "100.0 Gbps (128)") for i in range(3))
    text += _ibv_block(3, "PORT_DOWN (1)", "POLLING (2)", "2.5 Gbps (1)")
    c = node_check(analyze([bundle({"fabric/ibv_devinfo.txt": text})], "fabric.ports"), "n1", "fabric.ports")
    assert codes(c) == {("FABRIC_PORT_DOWN", "fail")} and c.findings[0].component.startswith("mlx5_3 port 1")
    assert "far end" in c.findings[0].action or "cable" in c.findings[0].action


def test_pasted_lifetime_counters_warn_and_saturated_ones_fail(tmp_path):
    run, b = loose(tmp_path, IBQUERYERRORS)
    c = node_check(run, b.host, "fabric.counters")
    found = {(f.code, f.severity, f.component) for f in c.findings if f.severity != "info"}
    assert ("IB_COUNTER_SATURATED", "fail", '"leaf07 MQM8790/U1" (GUID 0xf452140300a1b2c0) port 12') in found
    assert ("FABRIC_COUNTER_LIFETIME", "warn", '"leaf07 MQM8790/U1" (GUID 0xf452140300a1b2c0) port 30') in found
    assert ("FABRIC_COUNTER_LIFETIME", "warn", '"node014 HCA-1" (GUID 0x0c42a10300dd1e40) all ports') in found
    sat = next(f for f in c.findings if f.code == "IB_COUNTER_SATURATED")
    assert "at least 65535" in sat.message and "re-measure" in sat.action


def test_rx_out_of_buffer_is_a_host_side_warning_over_the_window():
    before = "NIC statistics:\n     rx_out_of_buffer: 100\n     rx_crc_errors_phy: 0\n"
    after = "NIC statistics:\n     rx_out_of_buffer: 160\n     rx_crc_errors_phy: 0\n"
    files = {"fabric/before/ethtool-S-ens1np0.txt": before, "fabric/ethtool-S-ens1np0.txt": after}
    c = node_check(analyze([bundle(files, roce_interfaces=["ens1np0"])], "fabric.counters"), "n1", "fabric.counters")
    [f] = c.findings
    assert (f.code, f.severity, f.observed) == ("ETH_RX_OUT_OF_BUFFER", "warn", 60)
    assert "not a cable" in f.action.lower()
    same = {"fabric/before/ethtool-S-ens1np0.txt": after, "fabric/ethtool-S-ens1np0.txt": after}
    assert node_check(analyze([bundle(same, roce_interfaces=["ens1np0"])], "fabric.counters"), "n1",
                      "fabric.counters").status == "pass"


def test_ibdiagnet_errors_fail_and_warnings_warn(tmp_path):
    run, b = loose(tmp_path, IBDIAGNET2)
    c = node_check(run, b.host, "fabric.ibdiagnet")
    assert codes(c) == {("IBDIAGNET_ERRORS", "fail"), ("IBDIAGNET_WARNINGS", "warn")}
    err = next(f for f in c.findings if f.code == "IBDIAGNET_ERRORS")
    assert err.component == "ibdiagnet stage 'Port Counters'" and "symbol" not in err.component
    assert "-E- lid=0x0004" in err.message and "/var/tmp/ibdiagnet2/ibdiagnet2.log" in err.action
    cut = node_check(analyze([bundle({"fabric/ibdiagnet.txt": "Summary\n-I- Stage  Warnings  Errors  Comment\n"})],
                             "fabric.ibdiagnet"), "n1", "fabric.ibdiagnet")
    assert cut.status == "error" and cut.findings[0].code == "INPUT_UNUSABLE"


def test_mlxcables_hot_cable_and_silent_copper():
    c = node_check(analyze([bundle({"fabric/mlxcables.txt": MLXCABLES_HOT})], "fabric.optics"), "n1", "fabric.optics")
    assert codes(c) == {("FABRIC_MODULE_HOT", "fail")} and c.findings[0].component.startswith("mt4123_pciconf0_cable_0")


def test_mlxlink_cable_limits_an_ib_link_but_not_an_ethernet_dac():
    def mlx(speed: str, cable: str, fw: str) -> str:
        return (f"Operational Info\n----------------\nState : Active\nPhysical state : LinkUp\nSpeed : {speed}\n"
                f"Width : 4x\n\nSupported Info\n--------------\nSupported Cable Speed : 0x0 ({cable})\n"
                f"\nTool Information\n----------------\nFirmware Version : {fw}\n")
    held = mlx("IB-EDR", "EDR,FDR,QDR,DDR,SDR", "20.31.1014")     # ConnectX-6 on an EDR cable
    c = node_check(analyze([bundle({"fabric/mlxlink-mlx5_0.txt": held})], "fabric.ports"), "n1", "fabric.ports")
    assert codes(c) == {("FABRIC_PORT_RATE_LOW", "warn")} and "cable limits" in c.findings[0].message
    assert "4X HDR" in c.findings[0].action
    full = mlx("IB-HDR", "HDR,EDR,FDR,QDR,DDR,SDR", "20.31.1014")
    assert node_check(analyze([bundle({"fabric/mlxlink-mlx5_0.txt": full})], "fabric.ports"), "n1",
                      "fabric.ports").status == "pass"
    dac = mlx("100G", "100G_4X,50G_2X,25G,10G", "32.43.2402")     # BlueField-3 on a 100G DAC
    assert node_check(analyze([bundle({"fabric/mlxlink-mlx5_0.txt": dac})], "fabric.ports"), "n1",
                      "fabric.ports").status == "pass"


def test_no_light_is_loss_of_signal():
    sfp = ("\tIdentifier : 0x03 (SFP)\n\tVendor name : X\n\tReceiver signal average optical power : 0.0000 mW / -inf dBm\n"
           "\tLaser output power : 0.5000 mW / -3.01 dBm\n")
    c = node_check(analyze([bundle({"fabric/ethtool-m-eth0.txt": sfp})], "fabric.optics"), "n1", "fabric.optics")
    assert ("FABRIC_RX_LOS", "fail") in codes(c)
    los = next(f for f in c.findings if f.code == "FABRIC_RX_LOS")
    assert "no light" in los.message and "plugged" in los.action


# ---- fuzz: no input makes a new parser raise anything but ParseError ------------------------------

NEW_PARSERS = [parse_ibv_devinfo, parse_ibqueryerrors, parse_ibdiagnet, parse_mlxcables, parse_ibstat,
               parse_ethtool_stats, parse_ethtool_module, parse_mlxlink]
SEEDS = [IBV_DEVINFO_V, IBQUERYERRORS, IBDIAGNET2, MLXCABLES_HOT, "Port 1:\n\tState: Down\n\tPhysical state: Polling\n",
         "ethtool -S eth0 | grep err\n     rx_errors: 1\n     ..\n",
         "\tLaser output power : 0.6770 mW / -1.69 dBm\n\tReceiver signal average optical power : 0.5806 mW / -2.36 dBm\n"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), cut=st.integers(0, 3000), junk=st.text(max_size=60), pos=st.integers(0, 3000))
def test_damaged_input_is_a_parse_error_never_a_crash(seed, cut, junk, pos):
    text = seed[:cut] + junk + seed[cut:][pos % (len(seed) + 1):]
    for parser in NEW_PARSERS:
        try:
            parser(text)
        except ParseError:
            pass


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), cut=st.integers(0, 3000), junk=st.text(max_size=40))
def test_damaged_paste_never_crashes_a_check(seed, cut, junk):
    from clusterkit.evidence.kinds import KINDS

    text = seed[:cut] + junk + seed[cut + len(junk):]
    for kind in ("ibv_devinfo", "ibqueryerrors", "ibdiagnet", "mlxcables", "ibstat"):
        run = analyze([bundle({KINDS[kind].path: text})])
        for c in run.nodes[0].checks + run.cluster_checks:
            assert not any(f.code == "CHECK_CRASHED" for f in c.findings), c.findings[0].message
