"""Fabric parsers on fixtures written from the formats, and fuzzed."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from clusterkit.evidence.kinds import sniff
from clusterkit.parsers import ParseError
from clusterkit.parsers.ethtool import parse_ethtool_module, parse_ethtool_stats
from clusterkit.parsers.ibcounters import parse_counters_dump, parse_counters_snapshot, parse_perfquery
from clusterkit.parsers.iblinkinfo import parse_iblinkinfo
from clusterkit.parsers.ibstat import parse_ibstat, parse_ibstatus
from clusterkit.parsers.link_events import flap_count, link_event
from clusterkit.parsers.mlxlink import parse_ber, parse_mlxlink
from clusterkit.parsers.topo_nics import nic_gpus
from clusterkit.plugins import load_all

load_all()

IBSTAT_SPACES = """CA 'mlx5_4'
        CA type: MT4123
        Number of ports: 1
        Firmware version: 20.31.1014
        Node GUID: 0x0c42a10300dd1e40
        Port 1:
                State: Initializing
                Physical state: LinkUp
                Rate: 200
                Base lid: 65535
                Port GUID: 0x0c42a10300dd1e40
                Link layer: InfiniBand
"""

IBLINK = """CA: node07 mlx5_0:
      0x0c42a10300dd1e40     12    1[  ] ==( 4X        53.125 Gbps Active/  LinkUp)==>      20    7[  ] "MF0;leaf3:MQM9700/U1" ( Could be 4X 106.25 Gbps)
Switch: 0x0c42a10300aa0001 MF0;leaf3:MQM9700/U1:
          20    9[  ] ==(                Down/ Polling)==>             [  ] "" ( )
"""

ETHTOOL_S_NEW = """NIC statistics:
     rx_packets: 10
     rx_crc_errors_phy: 4
     rx_symbol_err_phy: 7
     link_down_events_phy: 2
     rx_bits_phy: 100000000000
     rx_corrected_bits_phy: 5000
     rx_prio0_bytes: 77
"""

ETHTOOL_M_CMIS = """\tIdentifier                                : 0x18 (QSFP-DD Double Density 8X Pluggable Transceiver)
\tVendor name                               : NVIDIA
\tVendor PN                                 : MMS4X00-NM
\tVendor SN                                 : MT2230FT00001
\tModule temperature                        : 52.50 degrees C / 126.50 degrees F
\tLaser tx bias current (Channel 1)         : 9.000 mA
\tLaser tx bias current (Channel 2)         : 9.100 mA
\tTransmit avg optical power (Channel 1)    : 1.2589 mW / 1.00 dBm
\tTransmit avg optical power (Channel 2)    : 1.2589 mW / 1.00 dBm
\tRcvr signal avg optical power (Channel 1) : 1.0000 mW / 0.00 dBm
\tRcvr signal avg optical power (Channel 2) : 0.0000 mW / -inf dBm
\tModule temperature high alarm threshold   : 80.00 degrees C / 176.00 degrees F
\tModule temperature high warning threshold : 75.00 degrees C / 167.00 degrees F
\tLaser rx power low alarm threshold        : 0.0891 mW / -10.50 dBm
\tLaser rx power low warning threshold      : 0.1778 mW / -7.50 dBm
"""

ETHTOOL_M_SFP = """\tIdentifier                                : 0x03 (SFP)
\tVendor name                               : FINISAR CORP.
\tVendor PN                                 : FTLX8571D3BCL
\tLaser bias current                        : 6.240 mA
\tLaser output power                        : 0.5840 mW / -2.34 dBm
\tReceiver signal average optical power     : 0.1200 mW / -9.21 dBm
"""

MLXLINK_ANSI = ("\x1b[1mOperational Info\x1b[0m\n----------------\nState                              : \x1b[32mActive\x1b[0m\n"
                "Rx Power Current [dBm]             : \x1b[33m-1.0,-1.1,-12.4,-0.9\x1b[0m [-10.4..5.4]\n"
                "Tx Power Current [dBm]             : 1.0,1.0,1.0,1.0 [-8.4..5]\n"
                "Effective Physical BER             : 2E-11\nRaw Physical BER                   : 3E-4\n"
                "Link Down Counter                  : 5\n")


def test_ibstat_space_indented_and_lid_and_state():
    [p] = parse_ibstat(IBSTAT_SPACES)
    assert (p.device, p.port, p.state, p.phys_state, p.rate_gbps) == ("mlx5_4", 1, "Initializing", "LinkUp", 200.0)
    assert p.firmware == "20.31.1014" and p.lid == 65535 and not p.active


def test_ibstat_failure_is_a_clear_error():
    with pytest.raises(ParseError, match="ibpanic"):
        parse_ibstat("ibpanic: [1234] main: stat of IB device 'mlx5_9' failed: No such file or directory\n")
    with pytest.raises(ParseError):
        parse_ibstatus("nothing here\n")


def test_iblinkinfo_could_be_and_down_ports():
    links = parse_iblinkinfo(IBLINK)
    ca = links[0]
    assert ca.node_name == "node07 mlx5_0" and ca.peer_port == 7 and ca.rate_gbps == 200.0
    assert ca.could_be_lane_gbps == 106.25 and ca.speed_name == "4X HDR"
    assert links[1].state == "Down" and links[1].lane_gbps is None and links[1].peer_port is None


def test_ethtool_stats_new_names_and_interface_from_prompt():
    s = parse_ethtool_stats("root@n1:~# ethtool -S ens1np0\n" + ETHTOOL_S_NEW)
    assert s.interface == "ens1np0"
    assert s.counters["rx_symbol_err_phy"] == 7 and s.counters["rx_prio0_bytes"] == 77
    with pytest.raises(ParseError):
        parse_ethtool_stats("NIC statistics:\n")


def test_ethtool_module_cmis_lanes_thresholds_and_no_light():
    m = parse_ethtool_module(ETHTOOL_M_CMIS)
    assert m.rx_power_dbm == [0.0, -40.0]           # -inf dBm (0 mW) is no light, not a crash
    assert m.tx_power_dbm == [1.0, 1.0] and m.bias_ma == [9.0, 9.1]
    assert m.rx_power_limits.low_alarm == -10.5 and m.rx_power_limits.low_warn == -7.5
    assert m.temperature_c == 52.5 and m.temperature_limits.high_warn == 75.0
    assert m.serial == "MT2230FT00001"


def test_ethtool_module_sfp_single_lane():
    m = parse_ethtool_module(ETHTOOL_M_SFP)
    assert m.rx_power_dbm == [-9.21] and m.tx_power_dbm == [-2.34] and m.bias_ma == [6.24]


def test_mlxlink_ansi_ranges_and_ber():
    r = parse_mlxlink(MLXLINK_ANSI)
    assert r.state == "Active" and r.link_down_counter == 5
    assert r.module.rx_power_dbm == [-1.0, -1.1, -12.4, -0.9] and r.module.rx_power_limits.low_alarm == -10.4
    assert r.effective_ber == pytest.approx(2e-11) and r.raw_ber == pytest.approx(3e-4)
    assert parse_ber("15E-255") < 1e-250 and parse_ber("N/A") is None


def test_counter_snapshot_roundtrip_and_refusal():
    doc = {"schema": "clusterkit.fabric.counters/1", "taken_at": 10.0, "uptime_s": 5.0,
           "ib": {"mlx5_0/1": {"device": "mlx5_0", "port": 1, "counters": {"symbol_error": 3, "bogus": "x"},
                               "netdevs": ["ibp0"]}},
           "net": {"eth0": {"carrier_changes": 4}}}
    s = parse_counters_snapshot(json.dumps(doc))
    assert s.ports["mlx5_0/1"].counters == {"symbol_error": 3} and s.net["eth0"]["carrier_changes"] == 4
    with pytest.raises(ParseError):
        parse_counters_snapshot('{"schema": "other"}')
    with pytest.raises(ParseError):
        parse_counters_snapshot("not json")


def test_shell_dump_with_paths_and_noise():
    text = ("=== ./symbol_error ===\n65535\n=== ./link_downed ===\ncat: ./link_downed: Permission denied\n"
            "=== /sys/class/infiniband/mlx5_1/ports/1/hw_counters/out_of_buffer ===\n12\n")
    s = parse_counters_dump(text)
    assert s.ports["unknown/1"].counters == {"symbol_error": 65535}
    assert s.ports["mlx5_1/1"].hw_counters == {"out_of_buffer": 12}


def test_perfquery_names_map_to_sysfs_names():
    s = parse_perfquery("# Port counters: Lid 12 port 1 (CapMask: 0x5A00)\nPortSelect:......................1\n"
                        "SymbolErrorCounter:..............65535\nLinkDownedCounter:...............2\n")
    assert s.ports["lid12/1"].counters == {"symbol_error": 65535, "link_downed": 2}


def test_kinds_are_sniffed():
    assert sniff(IBSTAT_SPACES).name == "ibstat"
    assert sniff(IBLINK).name == "iblinkinfo"
    assert sniff(ETHTOOL_S_NEW).name == "ethtool-S"
    assert sniff(ETHTOOL_M_CMIS).name == "ethtool-m"
    assert sniff(MLXLINK_ANSI).name == "mlxlink"
    assert sniff("=== ./symbol_error ===\n1\n=== ./link_downed ===\n0\n").name == "ib-counters-dump"


def test_topo_nic_legend_closest_gpus():
    topo = ("\tGPU0\tGPU1\tNIC0\tNIC1\tCPU Affinity\nGPU0\t X \tNV12\tPXB\tSYS\t0-31\nGPU1\tNV12\t X \tSYS\tPIX\t0-31\n"
            "NIC0\tPXB\tSYS\t X \tSYS\nNIC1\tSYS\tPIX\tSYS\t X\n\nNIC Legend:\n\n  NIC0: mlx5_0\n  NIC1: mlx5_1\n")
    assert nic_gpus(topo) == {"mlx5_0": ["GPU0"], "mlx5_1": ["GPU1"]}


def test_link_events_and_flap_counting():
    assert link_event("mlx5_core 0000:01:00.1 eth1: Link up").interface == "eth1"
    assert link_event("ens1f0np0: lost carrier").event == "down"
    assert link_event("8021q: adding VLAN 0 to HW filter on device eth1") is None
    assert flap_count(["up"]) == 0                      # coming up once at boot is no flap
    assert flap_count(["up", "up", "up", "up"]) == 3    # repeated "Link up" is
    assert flap_count(["down", "up", "down", "up"]) == 2


from clusterkit.parsers.ibswinfo import parse_ibswinfo  # noqa: E402

PARSERS = [parse_ibswinfo, parse_ibstat, parse_ibstatus, parse_iblinkinfo, parse_ethtool_stats, parse_ethtool_module, parse_mlxlink,
           parse_counters_snapshot, parse_counters_dump, parse_perfquery, nic_gpus]
SEEDS = [IBSTAT_SPACES, IBLINK, ETHTOOL_S_NEW, ETHTOOL_M_CMIS, MLXLINK_ANSI,
         "=== ./symbol_error ===\n1\n", '{"schema": "clusterkit.fabric.counters/1", "ib": {"a/1": {"port": "x"}}}']


@settings(max_examples=150, deadline=None)
@given(seed=st.sampled_from(SEEDS), cut=st.integers(0, 2000), junk=st.text(max_size=40),
       pos=st.integers(0, 2000))
def test_damaged_input_is_a_parse_error_never_a_crash(seed, cut, junk, pos):
    text = seed[:cut] + junk + seed[cut:][pos % (len(seed) + 1):]
    for parser in PARSERS:
        try:
            parser(text)
        except ParseError:
            pass


def test_ibswinfo_psu_fault_and_stopped_fan():
    from clusterkit.parsers.ibswinfo import parse_ibswinfo

    text = ("GUID               | 0x1\nPSU0 status        | OK\n     S/N           | A\n     DC power      | OK\n"
            "PSU1 status        | ERROR\n     S/N           | B\n     DC power      | ERROR\n"
            "fan status         | ERROR\nfan#1 (rpm)        | 0\nfan#2 (rpm)        | 8000\n")
    sw = parse_ibswinfo(text)
    assert [p.status for p in sw.psus] == ["OK", "ERROR"] and sw.psus[1].serial == "B"
    assert sw.fans_rpm == {1: 0.0, 2: 8000.0}
    with pytest.raises(ParseError):
        parse_ibswinfo("nothing | here\n")


_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,30}", fullmatch=True)


@settings(max_examples=80, deadline=None)
@given(counters=st.dictionaries(_NAMES, st.integers(0, 2**64 - 1), min_size=1, max_size=40))
def test_no_counter_is_lost(counters):
    text = "NIC statistics:\n" + "".join(f"     {k}: {v}\n" for k, v in counters.items())
    assert parse_ethtool_stats(text).counters == counters
    dump = "".join(f"=== ./{k} ===\n{v}\n" for k, v in counters.items())
    assert parse_counters_dump(dump).ports["unknown/1"].counters == counters


@settings(max_examples=50, deadline=None)
@given(ports=st.lists(st.tuples(st.sampled_from(["Active", "Down", "Init", "Armed"]),
                                st.sampled_from(["LinkUp", "Polling", "Disabled"]),
                                st.sampled_from([10, 25, 40, 56, 100, 200, 400])), min_size=1, max_size=16))
def test_ibstat_every_port_kept(ports):
    text = "".join(f"CA 'mlx5_{i}'\n\tCA type: MT4129\n\tPort 1:\n\t\tState: {s}\n\t\tPhysical state: {p}\n"
                   f"\t\tRate: {r}\n\t\tLink layer: InfiniBand\n" for i, (s, p, r) in enumerate(ports))
    got = parse_ibstat(text)
    assert [(p.device, p.state, p.phys_state, p.rate_gbps) for p in got] == [
        (f"mlx5_{i}", s, p, float(r)) for i, (s, p, r) in enumerate(ports)]
