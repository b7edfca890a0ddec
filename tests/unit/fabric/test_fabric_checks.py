"""Fabric checks on bundles built in memory, with the shipped profile values."""

from __future__ import annotations

import json

from clusterkit.checks._fabric_common import counter_delta
from clusterkit.evidence.bundle import Bundle
from tests.fabric_helpers import analyze, node_check

SCHEMA = "clusterkit.fabric.counters/1"


def snap(t: float, counters: dict[str, int], net: dict | None = None, uptime: float | None = None) -> str:
    return json.dumps({"schema": SCHEMA, "taken_at": t, "uptime_s": uptime if uptime is not None else t,
                       "ib": {"mlx5_3/1": {"device": "mlx5_3", "port": 1, "state": "4: ACTIVE",
                                           "phys_state": "5: LinkUp", "rate": "400 Gb/sec (4X NDR)",
                                           "link_layer": "InfiniBand", "netdevs": ["ibp3s0"], "counters": counters}},
                       "net": net or {}})


def bundle(files: dict[str, str], **declared) -> Bundle:
    return Bundle.virtual("n1", files, {"host": "n1", "declared": declared})


def test_delta_semantics_saturation_and_reset():
    assert counter_delta("symbol_error", 10, 25).value == 15
    d = counter_delta("symbol_error", 65000, 65535)
    assert d.at_least and d.value == 535 and "saturated" in d.note
    d = counter_delta("symbol_error", 65535, 65535)
    assert d.at_least and "already saturated" in d.note
    d = counter_delta("link_downed", 5, 1)
    assert d.at_least and "reset" in d.note


def test_symbol_errors_over_window_fail_with_rate_and_action():
    run = analyze([bundle({"fabric/counters-before.json": snap(1000, {"symbol_error": 2}),
                           "fabric/counters-after.json": snap(1600, {"symbol_error": 402})})], "fabric.counters")
    c = node_check(run, "n1", "fabric.counters")
    assert c.status == "fail"
    f = c.findings[0]
    assert f.code == "IB_SYMBOL_ERROR_INCREASED" and f.observed == 400 and f.limit == 10.0
    assert "2.4e+03/h" in f.message and "mlx5_3 port 1" in f.component and "clean" in f.action
    assert c.metrics["symbol_error_delta_max"] == 400 and c.metrics["window_s"] == 600


def test_small_delta_passes_and_saturated_counter_is_at_least_never_zero():
    ok = analyze([bundle({"fabric/counters-before.json": snap(0, {"symbol_error": 1}),
                          "fabric/counters-after.json": snap(600, {"symbol_error": 4})})], "fabric.counters")
    assert node_check(ok, "n1", "fabric.counters").status == "pass"
    stuck = analyze([bundle({"fabric/counters-before.json": snap(0, {"symbol_error": 65535}),
                             "fabric/counters-after.json": snap(600, {"symbol_error": 65535})})], "fabric.counters")
    c = node_check(stuck, "n1", "fabric.counters")
    assert c.status == "warn"
    f = c.findings[0]
    assert f.code == "IB_COUNTER_SATURATED" and "at least" in f.message and "reset" in f.action
    assert "+0" not in f.message


def test_single_snapshot_judges_only_saturation():
    run = analyze([bundle({"fabric/counters-after.json": snap(600, {"symbol_error": 120, "link_downed": 255})})],
                  "fabric.counters")
    c = node_check(run, "n1", "fabric.counters")
    assert c.status == "pass"   # lifetime totals of limited counters are info; link_downed is not judged here
    run = analyze([bundle({"fabric/counters-after.json": snap(600, {"symbol_error": 65535})})], "fabric.counters")
    c = node_check(run, "n1", "fabric.counters")
    assert c.status == "warn" and "at least 65535" in c.findings[0].message


def test_link_downed_and_carrier_changes_are_flaps():
    net_b = {"ens1": {"carrier_changes": 2}, "veth9": {"carrier_changes": 2}}
    net_a = {"ens1": {"carrier_changes": 6}, "veth9": {"carrier_changes": 40}}
    run = analyze([bundle({"fabric/counters-before.json": snap(0, {"link_downed": 1}, net_b),
                           "fabric/counters-after.json": snap(600, {"link_downed": 2}, net_a)},
                          roce_interfaces=["ens1"])], "fabric.flaps")
    c = node_check(run, "n1", "fabric.flaps")
    codes = sorted(f.code for f in c.findings)
    assert codes == ["FABRIC_CARRIER_CHANGES", "IB_LINK_DOWNED_INCREASED"]   # the container veth is not watched
    assert c.metrics["link_flaps_total"] == 1 + 2


def test_kernel_log_flaps_in_24h_and_window():
    log = "".join(f"[{t:12.6f}] mlx5_core 0000:18:00.0 ibp0s0: Link {e}\n"
                  for t, e in ((10.0, "up"), (5000.0, "down"), (5004.0, "up"), (5100.0, "down"), (5104.0, "up"),
                               (5200.0, "down"), (5204.0, "up")))
    run = analyze([bundle({"host/dmesg.txt": log,
                           "fabric/counters-before.json": snap(4900, {}, uptime=4900),
                           "fabric/counters-after.json": snap(5500, {}, uptime=5500)})], "fabric.flaps")
    c = node_check(run, "n1", "fabric.flaps")
    f = next(f for f in c.findings if f.code == "FABRIC_LINK_FLAPS_KERNEL_LOG")
    assert c.status == "fail" and f.observed == 3 and "during the test window" in f.message
    quiet = analyze([bundle({"host/dmesg.txt": "[   10.0] mlx5_core 0000:18:00.0 ibp0s0: Link up\n"})], "fabric.flaps")
    assert node_check(quiet, "n1", "fabric.flaps").status == "pass"


def test_weak_single_lane_points_at_the_fiber():
    mlx = ("State : Active\nRx Power Current [dBm] : -1.0,-0.8,-12.6,-1.1 [-10.4..5.4]\n"
           "Tx Power Current [dBm] : 1.0,1.1,1.0,0.9 [-8.4..5]\nVendor Serial Number : MT99\n"
           "Effective Physical BER : 15E-255\nRaw Physical BER : 1E-8\n")
    run = analyze([bundle({"fabric/mlxlink-mlx5_3.txt": mlx})], "fabric.optics", "fabric.ber")
    c = node_check(run, "n1", "fabric.optics")
    f = c.findings[0]
    assert c.status == "fail" and f.code == "FABRIC_RX_LANE_WEAK_FIBER"
    assert "lane 3" in f.message and "re-terminate" in f.action and f.limit == -10.4 and "MT99" in f.component
    assert c.metrics["rx_power_dbm_min"] == -12.6
    assert node_check(run, "n1", "fabric.ber").status == "pass"


def test_all_lanes_weak_is_not_blamed_on_one_fiber_and_fallback_limits_apply():
    eth_m = ("\tIdentifier : 0x11 (QSFP28)\n\tVendor name : X\n" + "".join(
        f"\tRcvr signal avg optical power(Channel {i}) : 0.0600 mW / -12.20 dBm\n" for i in range(1, 5)))
    run = analyze([bundle({"fabric/ethtool-m-ens1.txt": eth_m})], "fabric.optics")
    c = node_check(run, "n1", "fabric.optics")
    assert {f.code for f in c.findings} == {"FABRIC_RX_POWER_LOW"} and c.status == "fail"
    assert c.findings[0].limit == -11.0   # the profile's generic alarm, the module gave none


def test_ber_limits():
    bad = "State : Active\nEffective Physical BER : 3E-11\nRaw Physical BER : 5E-4\n"
    run = analyze([bundle({"fabric/mlxlink-mlx5_0.txt": bad})], "fabric.ber")
    c = node_check(run, "n1", "fabric.ber")
    assert {f.code for f in c.findings} == {"FABRIC_EFFECTIVE_BER_HIGH", "FABRIC_RAW_BER_HIGH"} and c.status == "fail"
    assert c.metrics["effective_ber_max"] == 3e-11


def test_declared_ports_missing_down_and_slow():
    ibstat = ("CA 'mlx5_0'\n\tCA type: MT4129\n\tFirmware version: 28.39.1002\n\tPort 1:\n\t\tState: Active\n"
              "\t\tPhysical state: LinkUp\n\t\tRate: 200\n\t\tLink layer: InfiniBand\n"
              "CA 'mlx5_1'\n\tCA type: MT4129\n\tFirmware version: 28.39.1002\n\tPort 1:\n\t\tState: Down\n"
              "\t\tPhysical state: Polling\n\t\tRate: 10\n\t\tLink layer: InfiniBand\n")
    run = analyze([bundle({"fabric/ibstat.txt": ibstat}, ib_devices=["mlx5_0", "mlx5_1", "mlx5_2"], ib_rate_gbps=400)],
                  "fabric.ports")
    c = node_check(run, "n1", "fabric.ports")
    codes = sorted((f.code, f.severity) for f in c.findings)
    assert codes == [("FABRIC_HCA_MISSING", "fail"), ("FABRIC_PORT_DOWN", "fail"), ("FABRIC_PORT_RATE_LOW", "fail")]
    down = next(f for f in c.findings if f.code == "FABRIC_PORT_DOWN")
    assert "cable" in down.action


def test_unusable_file_is_an_error_result_not_a_crash():
    run = analyze([bundle({"fabric/ibstat.txt": "ibpanic: [1] main: stat of IB device 'mlx5_0' failed\n"})],
                  "fabric.ports")
    c = node_check(run, "n1", "fabric.ports")
    assert c.status == "error" and "ibpanic" in c.findings[0].message


def test_kernel_log_flaps_older_than_24h_do_not_count():
    old = "".join(f"Mar 20 10:00:{s:02d} n1 kernel: mlx5_core 0000:18:00.0 ens1: Link {e}\n"
                  for s, e in ((1, "down"), (5, "up"), (9, "down"), (13, "up")))
    new = "Mar 27 15:37:34 n1 kernel: mlx5_core 0000:18:00.0 ens1: Link up\n"
    run = analyze([bundle({"host/dmesg.txt": old + new})], "fabric.flaps")
    c = node_check(run, "n1", "fabric.flaps")
    assert c.status == "pass" and c.metrics["kernel_link_flaps_24h"] == 0
    run = analyze([bundle({"host/dmesg.txt": new.replace("37:34", "30:00") + new.replace("up", "down") + new})],
                  "fabric.flaps")
    c = node_check(run, "n1", "fabric.flaps")
    assert c.status == "warn" and c.findings[0].observed == 1


def test_roce_retransmit_counters_warn_with_transport_action():
    def s(t, oos):
        return json.dumps({"schema": SCHEMA, "taken_at": t, "ib": {"mlx5_0/1": {
            "device": "mlx5_0", "port": 1, "link_layer": "Ethernet", "counters": {},
            "hw_counters": {"out_of_sequence": oos, "local_ack_timeout_err": 0}}}, "net": {}})
    run = analyze([bundle({"fabric/counters-before.json": s(0, 10), "fabric/counters-after.json": s(600, 5010)})],
                  "fabric.counters")
    c = node_check(run, "n1", "fabric.counters")
    f = c.findings[0]
    assert c.status == "warn" and f.code == "ROCE_OUT_OF_SEQUENCE_INCREASED" and "PFC" in f.action
    assert c.metrics["out_of_sequence_delta_max"] == 5000


def test_declared_rate_makes_a_slower_host_behind_a_faster_switch_intended():
    text = ('CA: gpu-0 HCA-1:\n      0xb88303ffff9f4f6c      1    1[  ] ==( 4X      25.78125 Gbps Active/  LinkUp)==>'
            '       3    1[  ] "sw" ( )\nCA: agg:\n      0x0c42a10300b95c02      4    1[  ] ==( 4X        53.125 Gbps '
            'Active/  LinkUp)==>       3   41[  ] "sw" ( )\n')
    assert node_check(analyze([bundle({"fabric/iblinkinfo.txt": text})], "fabric.ports"), "n1",
                      "fabric.ports").status == "fail"
    run = analyze([bundle({"fabric/iblinkinfo.txt": text}, ib_rate_gbps=100)], "fabric.ports")
    assert node_check(run, "n1", "fabric.ports").status == "pass"


def test_findings_name_the_gpu_the_nic_serves_and_the_switch_port():
    topo = ("\tGPU0\tGPU1\tNIC0\tCPU Affinity\nGPU0\t X \tNV12\tPIX\t0-31\nGPU1\tNV12\t X \tSYS\t0-31\n"
            "NIC0\tPIX\tSYS\t X\n\nNIC Legend:\n\n  NIC0: mlx5_3\n")
    ibstat = ("CA 'mlx5_3'\n\tCA type: MT4129\n\tNode GUID: 0x946dae0300cde728\n\tPort 1:\n\t\tState: Active\n"
              "\t\tPhysical state: LinkUp\n\t\tRate: 400\n\t\tPort GUID: 0x946dae0300cde728\n\t\tLink layer: InfiniBand\n")
    iblink = ('CA: n1 mlx5_3:\n      0x946dae0300cde728     12    1[  ] ==( 4X        106.25 Gbps Active/  LinkUp)==>'
              '      20    7[  ] "MF0;leaf3:MQM9700/U1" ( )\n')
    run = analyze([bundle({"gpu/topo.txt": topo, "fabric/ibstat.txt": ibstat, "fabric/iblinkinfo.txt": iblink,
                           "fabric/counters-before.json": snap(0, {"symbol_error": 0}),
                           "fabric/counters-after.json": snap(600, {"symbol_error": 50})})], "fabric.counters")
    comp = node_check(run, "n1", "fabric.counters").findings[0].component
    assert comp == ("mlx5_3 port 1 (GUID 0x946dae0300cde728, ibp3s0, serves GPU0) -> MF0;leaf3:MQM9700/U1 port 7")


def test_failed_ibstat_command_is_reported_with_its_stderr():
    b = Bundle.virtual("n1", {"fabric/ibstat.txt": "\n", "fabric/ibstatus.txt": (
        "Infiniband device 'mlx5_0' port 1 status:\n\tstate:\t 4: ACTIVE\n\tphys state:\t 5: LinkUp\n"
        "\trate:\t 400 Gb/sec (4X NDR)\n\tlink_layer:\t InfiniBand\n")},
        {"host": "n1", "declared": {}, "commands": [{"path": "fabric/ibstat.txt", "command": "ibstat", "exit_code": 255,
                                                      "stderr": "ibpanic: [42] main: stat of IB device 'mlx5_0' failed"}]})
    c = node_check(analyze([b], "fabric.ports"), "n1", "fabric.ports")
    err = next(f for f in c.findings if f.code == "INPUT_UNUSABLE")
    assert "ibstat exited 255" in err.message and "ibpanic" in err.message
    assert c.metrics["ports_active"] == 1     # ibstatus still read


def _polling_port(lid: int, sm_lid: int, second_port_active: bool = False) -> str:
    """One ConnectX-7 InfiniBand port Down/Polling holding the given LIDs (ibstat layout, no inventory)."""
    text = ("CA 'mlx5_3'\n\tCA type: MT4129\n\tNumber of ports: 2\n\tFirmware version: 28.39.1002\n"
            "\tSystem image GUID: 0xb83fd20300da1130\n\tPort 1:\n\t\tState: Down\n\t\tPhysical state: Polling\n"
            f"\t\tRate: 10\n\t\tBase lid: {lid}\n\t\tLMC: 0\n\t\tSM lid: {sm_lid}\n\t\tLink layer: InfiniBand\n")
    if second_port_active:
        text += ("\tPort 2:\n\t\tState: Active\n\t\tPhysical state: LinkUp\n\t\tRate: 400\n\t\tBase lid: 12\n"
                 "\t\tLMC: 0\n\t\tSM lid: 1\n\t\tLink layer: InfiniBand\n")
    return text


def test_polling_port_that_still_holds_its_subnet_lid_lost_its_link_and_fails():
    # A port the subnet manager configured (unicast LID and SM LID) that now polls for a partner was in the
    # fabric and lost its link, even with no inventory and even when the card's other port is Active.
    for second in (False, True):
        run = analyze([bundle({"fabric/ibstat.txt": _polling_port(868, 334, second)})], "fabric.ports")
        down = [f for f in node_check(run, "n1", "fabric.ports").findings if f.code == "FABRIC_PORT_DOWN"]
        assert [(f.severity, f.component) for f in down] == [("fail", "mlx5_3 port 1")], down
        assert "LID 868" in down[0].message and "cable" in down[0].action


def test_polling_port_without_a_subnet_lid_is_still_only_a_possibly_unused_port():
    # LID 0 (never configured) and the permissive LID 0xffff say nothing about past use.
    for lid, sm in ((0, 0), (65535, 0), (868, 0)):
        run = analyze([bundle({"fabric/ibstat.txt": _polling_port(lid, sm)})], "fabric.ports")
        down = [f for f in node_check(run, "n1", "fabric.ports").findings if f.code == "FABRIC_PORT_DOWN"]
        assert [f.severity for f in down] == ["warn"], (lid, sm, down)
