"""The fabric outputs of ../shared/real-outputs: parsed, and given an SRE's verdict."""

from __future__ import annotations

from pathlib import Path

from clusterkit.analysis import open_paths
from clusterkit.evidence.bundle import Bundle
from clusterkit.parsers.ethtool import parse_ethtool_stats
from clusterkit.parsers.iblinkinfo import parse_iblinkinfo
from clusterkit.parsers.ibstat import parse_ibstat, parse_ibstatus
from clusterkit.parsers.mlxlink import parse_mlxlink
from clusterkit.parsers.topo_nics import nic_gpus
from tests.conftest import real_output
from tests.fabric_helpers import analyze, node_check


def loose(tmp_path: Path, name: str):
    p = tmp_path / name
    p.write_text(real_output(name))
    bundles, _, errors, is_loose = open_paths([p])
    assert not errors and is_loose
    return analyze(bundles, loose=True), bundles[0].host


def test_ibstat_h100_down_ethernet_ports_found(tmp_path):
    ports = parse_ibstat(real_output("ibstat_h100_8xcx7_ndr_some_eth_down.txt"))
    assert len(ports) == 12
    ib = [p for p in ports if p.link_layer == "InfiniBand"]
    assert len(ib) == 8 and all(p.active and p.rate_gbps == 400 and p.firmware == "28.39.1002" for p in ib)
    down = sorted(p.device for p in ports if not p.active)
    assert down == ["mlx5_2", "mlx5_7", "mlx5_8"]
    run, host = loose(tmp_path, "ibstat_h100_8xcx7_ndr_some_eth_down.txt")
    c = node_check(run, host, "fabric.ports")
    assert c.status == "warn"
    found = sorted(f.component.split()[0] for f in c.findings if f.code == "FABRIC_PORT_DOWN")
    assert found == ["mlx5_2", "mlx5_7", "mlx5_8"]
    assert c.metrics["ports_active"] == 9 and c.metrics["ib_port_rate_min_gbps"] == 400


def test_ibstat_h100_declared_eth_port_down_fails(tmp_path):
    text = real_output("ibstat_h100_8xcx7_ndr_some_eth_down.txt")
    b = Bundle.virtual("h", {"fabric/ibstat.txt": text},
                       {"host": "h", "declared": {"ib_devices": ["mlx5_0", "mlx5_3"], "ib_rate_gbps": 400,
                                                  "roce_interfaces": ["mlx5_2"], "roce_rate_gbps": 100}})
    c = node_check(analyze([b], "fabric.ports"), "h", "fabric.ports")
    assert c.status == "fail"
    fails = [f for f in c.findings if f.severity == "fail"]
    assert [f.component.split()[0] for f in fails] == ["mlx5_2"]


def test_ibstatus_roce_100g_all_up(tmp_path):
    ports = parse_ibstatus(real_output("ibstatus_8xmlx5_roce_100g_a100.txt"))
    assert len(ports) == 8 and all(p.active and p.rate_gbps == 100 and p.link_layer == "Ethernet" for p in ports)
    assert ports[0].speed_name == "4X EDR"
    run, host = loose(tmp_path, "ibstatus_8xmlx5_roce_100g_a100.txt")
    assert node_check(run, host, "fabric.ports").status == "pass"


def test_iblinkinfo_hosts_at_edr_behind_hdr_switch_fail(tmp_path):
    links = parse_iblinkinfo(real_output("iblinkinfo_hdr_switch_cas_at_edr_speed.txt"))
    assert sum(l.section == "CA" for l in links) == 4 and sum(l.section == "Switch" for l in links) == 4
    run, host = loose(tmp_path, "iblinkinfo_hdr_switch_cas_at_edr_speed.txt")
    c = node_check(run, host, "fabric.ports")
    assert c.status == "fail"
    slow = [f for f in c.findings if f.code == "IB_LINK_SPEED_BELOW_SWITCH"]
    # gpu-v100-2 is only in the Switch section: found too. The Aggregation Node (HDR) is not a finding.
    assert sorted(f.component.split()[0] for f in slow) == ["gpu-v100-0", "gpu-v100-1", "gpu-v100-2", "gpu-v100-3"]
    assert all(f.observed == 100 and f.limit == 200 and "reseat" in f.action and "replace the cable" in f.action
               for f in slow)
    assert "MQM8700/U1 port 3" in next(f.component for f in slow if f.component.startswith("gpu-v100-3"))


def test_mlxlink_bluefield3_clean_dac_passes(tmp_path):
    r = parse_mlxlink(real_output("mlxlink_m_c_bluefield3_100g_dac_clean.txt"))
    assert r.device == "/dev/mst/mt41692_pciconf0" and r.port == 1 and r.speed == "100G"
    assert r.effective_ber < 1e-250 and r.raw_ber < 1e-250 and r.link_down_counter == 0
    assert r.module.is_copper and r.module.rx_power_dbm == [] and r.module.serial == "S2202655321-1"
    run, host = loose(tmp_path, "mlxlink_m_c_bluefield3_100g_dac_clean.txt")
    statuses = {c.id: c.status for c in run.nodes[0].checks}
    assert statuses == {"fabric.ber": "pass", "fabric.optics": "pass", "fabric.flaps": "pass", "fabric.ports": "pass"}


def test_ethtool_old_mlx5_names_parse_and_pass(tmp_path):
    s = parse_ethtool_stats(real_output("ethtool_S_mlx5_cx4_old_driver_partial.txt"))
    assert s.interface == "p3p1" and s.counters["rx_packets"] == 5487361 and s.counters["symbol_err"] == 0
    assert len(s.counters) == 49
    run, host = loose(tmp_path, "ethtool_S_mlx5_cx4_old_driver_partial.txt")
    c = node_check(run, host, "fabric.counters")
    assert c.status == "pass" and c.metrics["rx_symbol_err_phy_delta_max"] == 0   # old name mapped


def test_kmsg_repeating_link_up_is_a_flap(tmp_path):
    run, host = loose(tmp_path, "kmsg_mlx5_core_eth_link_up_repeating.txt")   # the host family's kernel-log kind
    c = node_check(run, host, "fabric.flaps")
    f = c.findings[0]
    assert f.code == "FABRIC_LINK_FLAPS_KERNEL_LOG" and f.component.startswith("eth1")
    assert f.observed == 3 and c.status == "fail" and "Link up" in f.evidence


def test_topo_nic_legend_real():
    m = nic_gpus(real_output("nvidia_smi_topo_m_8xa100_8mlx5_roce.txt"))
    assert m["mlx5_0"] == ["GPU0", "GPU1"] and m["mlx5_7"] == ["GPU6", "GPU7"] and len(m) == 8


def test_cli_analyze_gives_the_sre_verdict_and_exit_code(tmp_path):
    import json
    import subprocess
    import sys

    verdicts = {}
    for name in ("iblinkinfo_hdr_switch_cas_at_edr_speed.txt", "mlxlink_m_c_bluefield3_100g_dac_clean.txt"):
        p = tmp_path / name
        p.write_text(real_output(name))
        r = subprocess.run([sys.executable, "-m", "clusterkit", "analyze", str(p), "--format", "json"],
                           capture_output=True, text=True, timeout=120)
        verdicts[name] = (r.returncode, json.loads(r.stdout)["status"])
    assert verdicts == {"iblinkinfo_hdr_switch_cas_at_edr_speed.txt": (1, "fail"),
                        "mlxlink_m_c_bluefield3_100g_dac_clean.txt": (0, "pass")}


def test_ibswinfo_fan_error_with_spinning_fans_is_a_fan_warning(tmp_path):
    from clusterkit.parsers.ibswinfo import parse_ibswinfo

    sw = parse_ibswinfo(real_output("ibswinfo_edr_switch_psu_ok_fan_error.txt"))
    assert sw.part_number == "MSB7790-ES2F" and sw.guid == "0x1c34da0300010540" and sw.temperature_c == 45
    assert [(p.name, p.status, p.power_w) for p in sw.psus] == [("PSU0", "OK", 72), ("PSU1", "OK", 71)]
    assert sw.fan_status == "ERROR" and len(sw.fans_rpm) == 8
    run, host = loose(tmp_path, "ibswinfo_edr_switch_psu_ok_fan_error.txt")
    c = node_check(run, host, "fabric.switches")
    assert c.status == "warn" and [f.code for f in c.findings] == ["SWITCH_FAN_FAULT"]
    assert "7156-8493 rpm" in c.findings[0].message and "S/N MT1943X00498" in c.findings[0].component
