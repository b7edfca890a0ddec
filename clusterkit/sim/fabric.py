"""Simulated fabric evidence: ibstat, iblinkinfo, counter snapshots, mlxlink, kernel log lines.

Healthy by default (8x ConnectX-7 NDR 400 on an H100 node); faults change one port.
"""

from __future__ import annotations

import json

from clusterkit.node_scripts.fabric_counters import SCHEMA
from clusterkit.parsers.ethtool import ETHTOOL_M, ETHTOOL_S, ETHTOOL_S_BEFORE
from clusterkit.parsers.ibcounters import COUNTERS_AFTER, COUNTERS_BEFORE
from clusterkit.parsers.iblinkinfo import IBLINKINFO
from clusterkit.parsers.ibstat import IBSTAT
from clusterkit.parsers.mlxlink import MLXLINK
from clusterkit.sim.registry import SimNode, fault, node_generator

fault("fabric.dirty_fiber", "one lane's Rx power low and symbol errors rising on one HCA port: reported as that link "
      "with the clean/re-terminate action", order=60)
fault("fabric.flapping_link", "one HCA port goes down and up during the test window: link_downed rises, kernel log "
      "shows mlx5 Link down/up", order=61)
fault("fabric.half_rate", "one HCA port trained at half its rate (HDR instead of NDR): reseat/replace cable", order=62)
fault("fabric.saturated_counters", "one port's legacy symbol_error counter saturated at 65535: reported as 'at least "
      "N, counter saturated, reset it'", order=63)

_LANE = {400: (106.25, "NDR"), 200: (53.125, "HDR"), 100: (25.78125, "EDR")}
WINDOW_S = 600.0


def _guid(node: SimNode, i: int) -> str:
    return f"0x946dae0300{(node.index * 16 + i) & 0xffffff:06x}"


def _ibstat(node: SimNode, devs: list[str], rates: dict[str, int]) -> str:
    out = []
    for i, d in enumerate(devs):
        g = _guid(node, i)
        out.append(f"CA '{d}'\n\tCA type: MT4129\n\tNumber of ports: 1\n\tFirmware version: 28.39.1002\n"
                   f"\tHardware version: 0\n\tNode GUID: {g}\n\tSystem image GUID: {g}\n\tPort 1:\n"
                   f"\t\tState: Active\n\tPhysical state: LinkUp\n\t\tRate: {rates[d]}\n\t\tBase lid: {100 + node.index * 8 + i}\n"
                   f"\t\tLMC: 0\n\t\tSM lid: 1\n\t\tCapability mask: 0xa751e848\n\t\tPort GUID: {g}\n"
                   f"\t\tLink layer: InfiniBand\n")
    return "".join(out).replace("\n\tPhysical", "\n\t\tPhysical")


def _iblinkinfo(node: SimNode, devs: list[str], rates: dict[str, int], full: int) -> str:
    out = []
    leaf = f"MF0;leaf{node.index // 4 + 1:02d}:MQM9700/U1"
    for i, d in enumerate(devs):
        lane = _LANE.get(rates[d] // 4 * 4 if rates[d] in _LANE else full, (106.25, "NDR"))[0]
        lane = _LANE.get(rates[d], _LANE.get(full))[0]
        out.append(f"CA: {node.host} {d}:\n      {_guid(node, i)}    {100 + node.index * 8 + i:4d}    1[  ] ==( 4X "
                   f"{lane:>13} Gbps Active/  LinkUp)==>       2 {(node.index % 4) * 8 + i + 1:4d}[  ] \"{leaf}\" ( )\n")
    # The leaf's uplink shows what the switch can do.
    out.append(f"Switch: 0x0c42a10300aa{node.index // 4:04x} {leaf}:\n           2   64[  ] ==( 4X {_LANE[full][0]:>13} "
               f"Gbps Active/  LinkUp)==>       9    1[  ] \"MF0;spine01:MQM9700/U1\" ( )\n")
    return "".join(out)


def _counters(rng, bytes_seen: int) -> dict[str, int]:
    return {"symbol_error": 0, "link_error_recovery": 0, "link_downed": 0, "port_rcv_errors": 0,
            "port_rcv_remote_physical_errors": 0, "port_rcv_switch_relay_errors": 0, "port_xmit_discards": rng.randint(0, 3),
            "port_xmit_constraint_errors": 0, "port_rcv_constraint_errors": 0, "local_link_integrity_errors": 0,
            "excessive_buffer_overrun_errors": 0, "VL15_dropped": 0, "port_xmit_wait": rng.randint(0, 5000),
            "port_xmit_data": bytes_seen, "port_rcv_data": bytes_seen}


def _mlxlink(d: str, rx: list[float], raw_ber: str, eff_ber: str, serial: str) -> str:
    lanes = ",".join(f"{v:.3f}" for v in rx)
    return (f"\nOperational Info\n----------------\nState                              : Active\n"
            f"Physical state                     : LinkUp\nSpeed                              : IB-NDR\n"
            f"Width                              : 4x\nFEC                                : Interleaved_Standard_RS-FEC - (544,514)\n\n"
            f"Troubleshooting Info\n--------------------\nStatus Opcode                      : 0\n"
            f"Recommendation                     : No issue was observed\n\n"
            f"Module Info\n-----------\nTemperature [C]                    : 48 [-5..75]\n"
            f"Bias Current [mA]                  : 8.250,8.250,8.250,8.250 [3..13]\n"
            f"Rx Power Current [dBm]             : {lanes} [-10.4..5.4]\n"
            f"Tx Power Current [dBm]             : 1.100,1.200,1.050,1.150 [-8.4..5]\n"
            f"Identifier                         : OSFP\nCable Technology                   : Optical Module (separated)\n"
            f"Vendor Name                        : Mellanox\nVendor Part Number                 : MMA4Z00-NS\n"
            f"Vendor Serial Number               : {serial}\n\n"
            f"Physical Counters and BER Info\n------------------------------\nTime Since Last Clear [Min]        : 4320.0\n"
            f"Effective Physical Errors          : 0\nEffective Physical BER             : {eff_ber}\n"
            f"Raw Physical Errors Per Lane       : 0,0,0,0\nLink Down Counter                  : 0\n"
            f"Link Error Recovery Counter        : 0\nRaw Physical BER                   : {raw_ber}\n")


@node_generator("fabric")
def generate(node: SimNode, w) -> None:
    rng = node.rng
    roce = list(node.spec.get("roce_interfaces") or [])
    devs = list(node.spec.get("ib_devices") or ([] if roce else [f"mlx5_{i}" for i in range(8)]))
    full = int(node.spec.get("ib_rate_gbps") or 400)
    rates = {d: full for d in devs}
    # Which port a fault lands on: chosen once, so every file agrees (RoCE when there is no IB).
    bad = devs[rng.randrange(len(devs))] if devs else None
    bad_if = roce[rng.randrange(len(roce))] if roce and not devs else None
    if "fabric.half_rate" in node.faults and bad:
        rates[bad] = full // 2
    w.write(IBSTAT.path, _ibstat(node, devs, rates) + _ibstat_roce(node, roce, len(devs), bad_if))
    if devs:
        w.write(IBLINKINFO.path, _iblinkinfo(node, devs, rates, full))
    uptime = node.facts.setdefault("uptime_s", float(rng.randint(2, 30) * 86400))
    t0 = 1_795_000_000.0 + node.index
    before = {"schema": SCHEMA, "phase": "before", "taken_at": t0, "uptime_s": uptime - WINDOW_S - 60, "ib": {}, "net": {}}
    after = {"schema": SCHEMA, "phase": "after", "taken_at": t0 + WINDOW_S, "uptime_s": uptime - 60, "ib": {}, "net": {}}
    for i, d in enumerate(devs):
        moved = rng.randint(40, 60) * 2**30
        cb, ca = _counters(rng, rng.randint(1, 9) * 2**40), {}
        ca = dict(cb, port_xmit_data=cb["port_xmit_data"] + moved, port_rcv_data=cb["port_rcv_data"] + moved)
        if d == bad and "fabric.dirty_fiber" in node.faults:
            ca["symbol_error"] = cb["symbol_error"] + rng.randint(300, 900)
            ca["port_rcv_errors"] = cb["port_rcv_errors"] + rng.randint(20, 60)
        if d == bad and "fabric.flapping_link" in node.faults:
            ca["link_downed"] = cb["link_downed"] + 2
            ca["link_error_recovery"] = cb["link_error_recovery"] + 2
        if d == bad and "fabric.saturated_counters" in node.faults:
            cb["symbol_error"] = 65_000
            ca["symbol_error"] = 65_535
        for snap, c in ((before, cb), (after, ca)):
            snap["ib"][f"{d}/1"] = {"device": d, "port": 1, "state": "4: ACTIVE", "phys_state": "5: LinkUp",
                                    "rate": f"{rates[d]} Gb/sec (4X {_LANE.get(rates[d], (0, 'NDR'))[1]})",
                                    "link_layer": "InfiniBand", "fw_ver": "28.39.1002", "node_guid": _guid(node, i),
                                    "hca_type": "MT4129", "board_id": "MT_0000000838", "netdevs": [f"ibp{i}s0"],
                                    "counters": c, "hw_counters": {}}
        rx = [round(rng.uniform(-1.5, 0.5), 3) for _ in range(4)]
        raw, eff = f"{rng.randint(1, 9)}E-9", "15E-255"
        if d == bad and "fabric.dirty_fiber" in node.faults:
            rx[rng.randrange(4)] = round(rng.uniform(-13.5, -11.5), 3)
            raw = "4E-5"
        w.write(MLXLINK.at(device=d), _mlxlink(d, rx, raw, eff, f"MT23{node.index:03d}{i:02d}FT"))
    if roce:
        _roce(node, w, roce, len(devs), bad_if, before, after, uptime)
    w.write(COUNTERS_BEFORE.path, json.dumps(before, indent=1, sort_keys=True) + "\n")
    w.write(COUNTERS_AFTER.path, json.dumps(after, indent=1, sort_keys=True) + "\n")
    if bad and "fabric.flapping_link" in node.faults:
        i = devs.index(bad)
        pci = f"0000:{0x18 + i * 0x10:02x}:00.0"
        log = node.facts.setdefault("kernel_log", [])
        for k in range(2):
            t = uptime - WINDOW_S + 100 + k * 150
            log.append((t, f"mlx5_core {pci} ibp{i}s0: Link down"))
            log.append((t + 4.2, f"mlx5_core {pci} ibp{i}s0: Link up"))


def _roce_rate(node: SimNode, ifname: str, bad_if: str | None) -> int:
    full = int(node.spec.get("roce_rate_gbps") or 200)
    return full // 2 if ifname == bad_if and "fabric.half_rate" in node.faults else full


def _ibstat_roce(node: SimNode, roce: list[str], first: int, bad_if: str | None) -> str:
    out = []
    for k, ifname in enumerate(roce):
        i = first + k
        g = _guid(node, i)
        out.append(f"CA 'mlx5_{i}'\n\tCA type: MT4129\n\tNumber of ports: 1\n\tFirmware version: 28.39.1002\n"
                   f"\tNode GUID: {g}\n\tPort 1:\n\t\tState: Active\n\t\tPhysical state: LinkUp\n"
                   f"\t\tRate: {_roce_rate(node, ifname, bad_if)}\n\t\tBase lid: 0\n\t\tSM lid: 0\n"
                   f"\t\tPort GUID: 0x{g[2:6]}fffe{g[10:]}\n\t\tLink layer: Ethernet\n")
    return "".join(out)


def _ethtool_s(c: dict[str, int]) -> str:
    return "NIC statistics:\n" + "".join(f"     {k}: {v}\n" for k, v in c.items())


def _ethtool_m(rx: list[float], serial: str) -> str:
    def mw(dbm: float) -> str:
        return f"{10 ** (dbm / 10):.4f} mW / {dbm:.2f} dBm"
    lines = ["\tIdentifier                                : 0x11 (QSFP28)",
             "\tTransceiver type                          : 100G Ethernet: 100G Base-SR4 or 25GBase-SR",
             "\tVendor name                               : NVIDIA", "\tVendor PN                                 : MMA1B00-C100D",
             f"\tVendor SN                                 : {serial}",
             "\tModule temperature                        : 44.10 degrees C / 111.38 degrees F"]
    lines += [f"\tLaser tx bias current (Channel {i})         : 6.750 mA" for i in range(1, 5)]
    lines += [f"\tTransmit avg optical power (Channel {i})    : {mw(-0.6)}" for i in range(1, 5)]
    lines += [f"\tRcvr signal avg optical power(Channel {i})  : {mw(v)}" for i, v in enumerate(rx, 1)]
    lines += ["\tModule temperature high alarm threshold   : 80.00 degrees C / 176.00 degrees F",
              "\tModule temperature high warning threshold : 75.00 degrees C / 167.00 degrees F",
              f"\tLaser rx power high alarm threshold       : {mw(5.4)}", f"\tLaser rx power low alarm threshold        : {mw(-13.3)}",
              f"\tLaser rx power high warning threshold     : {mw(2.4)}", f"\tLaser rx power low warning threshold      : {mw(-10.3)}",
              f"\tLaser output power low alarm threshold    : {mw(-11.4)}", f"\tLaser output power low warning threshold  : {mw(-8.4)}"]
    return "\n".join(lines) + "\n"


def _roce(node: SimNode, w, roce: list[str], first: int, bad_if: str | None, before: dict, after: dict,
          uptime: float) -> None:
    """RoCE ports: ethtool -S before/after, ethtool -m, carrier counts and HCA entries in the snapshots."""
    rng = node.rng
    for k, ifname in enumerate(roce):
        i, d = first + k, f"mlx5_{first + k}"
        bad = ifname == bad_if
        rate = _roce_rate(node, ifname, bad_if)
        bits = rate * 10**9 * int(WINDOW_S) // 3
        cb = {"rx_packets": rng.randint(10**9, 10**10), "rx_bits_phy": rng.randint(10**15, 10**16),
              "rx_corrected_bits_phy": rng.randint(0, 10**6), "rx_pcs_symbol_err_phy": 0, "rx_crc_errors_phy": 0,
              "rx_symbol_err_phy": 0, "link_down_events_phy": 1}
        ca = dict(cb, rx_packets=cb["rx_packets"] + bits // 8000, rx_bits_phy=cb["rx_bits_phy"] + bits,
                  rx_corrected_bits_phy=cb["rx_corrected_bits_phy"] + int(bits * 1e-9))
        carrier_b = carrier_a = 2
        rx = [round(rng.uniform(-1.8, 0.2), 2) for _ in range(4)]
        if bad and "fabric.dirty_fiber" in node.faults:
            rx[rng.randrange(4)] = round(rng.uniform(-13.0, -11.0), 2)
            ca["rx_symbol_err_phy"] += rng.randint(200, 600)
            ca["rx_crc_errors_phy"] += rng.randint(20, 80)
            ca["rx_corrected_bits_phy"] += int(bits * 5e-5)
        if bad and "fabric.flapping_link" in node.faults:
            ca["link_down_events_phy"] += 2
            carrier_a += 4
            log = node.facts.setdefault("kernel_log", [])
            for j in range(2):
                t = uptime - WINDOW_S + 120 + j * 200
                log += [(t, f"mlx5_core 0000:{0x18 + i * 0x10:02x}:00.0 {ifname}: Link down"),
                        (t + 3.1, f"mlx5_core 0000:{0x18 + i * 0x10:02x}:00.0 {ifname}: Link up")]
        w.write(ETHTOOL_S_BEFORE.at(ifname=ifname), _ethtool_s(cb))
        w.write(ETHTOOL_S.at(ifname=ifname), _ethtool_s(ca))
        w.write(ETHTOOL_M.at(ifname=ifname), _ethtool_m(rx, f"MT24{node.index:03d}{k:02d}RC"))
        for snap, carrier in ((before, carrier_b), (after, carrier_a)):
            snap["ib"][f"{d}/1"] = {"device": d, "port": 1, "state": "4: ACTIVE", "phys_state": "5: LinkUp",
                                    "rate": f"{rate} Gb/sec (4X)", "link_layer": "Ethernet", "fw_ver": "28.39.1002",
                                    "node_guid": _guid(node, i), "hca_type": "MT4129", "netdevs": [ifname],
                                    "counters": {}, "hw_counters": {"out_of_buffer": 0}}
            snap["net"][ifname] = {"carrier_changes": carrier, "operstate": "up", "speed": rate * 1000, "carrier": 1}
