"""Simulated /var/log/fabricmanager.log on NVSwitch nodes, in fabric manager's own format.

Healthy: the start-up banner, the topology it found, all NVSwitches configured. With
stack.fabric_manager_mismatch (declared in sim/cluster.py) it aborts on the version
check, as the real one does; with gpu.nvswitch_nonfatal one switch port logs
non-fatal SXid 12028, in the fabric manager log and as the driver's kernel lines.
"""

from __future__ import annotations

import datetime as dt

from clusterkit.evidence.bundle import BundleWriter
from clusterkit.parsers.fabricmanager_log import FABRICMANAGER_LOG
from clusterkit.sim.gpu import MODELS, driver_version, fabric_manager_version
from clusterkit.sim.registry import SimNode, fault, node_generator

fault("gpu.nvswitch_nonfatal", "an NVSwitch port that logs non-fatal SXid 12028 (fabric manager and kernel log): "
      "a warning to watch that NVLink, not a drain", order=23)

# model prefix -> (topology as fabric manager names it, its file, NVSwitches, first NVSwitch PCI bus)
_TOPOLOGY = {"h100": ("DGX/HGX H100", "dgxh100_hgxh100_topology", 4, 0x83),
             "a100": ("DGX/HGX A100", "dgxa100_hgxa100_topology", 6, 0xc4)}


def render_fabricmanager_log(node: SimNode, started: dt.datetime) -> str:
    model = str(node.spec.get("gpu_model") or "")
    topo, topo_file, switches, bus0 = _TOPOLOGY.get(model[:4], _TOPOLOGY["h100"])
    fm, driver = fabric_manager_version(node), driver_version(node)
    lines: list[tuple[dt.datetime, str, str]] = []

    def log(seconds: float, level: str, msg: str) -> None:
        lines.append((started + dt.timedelta(seconds=seconds), level, msg))

    head = f"Fabric Manager Log initializing at: {started:%m/%d/%Y %H:%M:%S}.{started.microsecond // 1000:03d}\n"
    log(0, "INFO", f"Fabric Manager version {fm} is running with the following configuration options")
    for opt in ("Logging level = 4", "Logging file name/path = /var/log/fabricmanager.log", "Append to log file = 1",
                "Fabric Mode = 0", "Fabric Mode Restart = 0", "Continue to run when facing failures = 0",
                "Abort CUDA jobs when FM exits = 1"):
        log(0, "INFO", opt)
    if fm != driver:
        log(0.2, "ERROR", f"fabric manager NVIDIA GPU driver interface version {fm} don't match with driver version "
                          f"{driver}. Please update with matching NVIDIA driver package.")
    else:
        log(1, "INFO", "Connected to 1 node.")
        log(1, "INFO", "getting NVSwitch device information")
        log(1, "INFO", f"detected system topology is based on {topo}")
        log(1, "INFO", f"parsed fabric topology file /usr/share/nvidia/nvswitch/{topo_file} successfully.")
        log(1, "INFO", f"number of devices specified in topology file NVSwitches: {switches}, GPUs: 8")
        for i in range(switches):
            log(1, "INFO", f"start NVSwitch 0/{i} routing configuration")
            log(1, "INFO", f"completed NVSwitch 0/{i} routing configuration")
        log(1, "INFO", "Successfully configured all the available NVSwitches to route GPU NVLink traffic. NVLink "
                       "Peer-to-Peer support will be enabled once the GPUs are successfully registered with the "
                       "NVLink fabric.")
        if "gpu.nvswitch_nonfatal" in node.faults:
            bus = bus0 + switches - 1
            for _ in range(2):
                log(7200, "ERROR", f"detected NVSwitch non-fatal error 12028 on fid 0 on NVSwitch pci bus id "
                                   f"00000000:{bus:02x}:00.0 physical id {switches - 1} port 33")
    return head + "".join(f"[{t:%b %d %Y %H:%M:%S}] [{lvl}] [tid 1570] {msg}\n" for t, lvl, msg in lines)


def _kernel_sxid(node: SimNode, uptime_s: float) -> None:
    model = str(node.spec.get("gpu_model") or "")
    _, _, switches, bus0 = _TOPOLOGY.get(model[:4], _TOPOLOGY["h100"])
    sw, pci = switches - 1, f"0000:{bus0 + switches - 1:02x}:00.0"
    at = uptime_s - 3 * 86400 + 7200 + 60.0 if uptime_s > 3 * 86400 else uptime_s / 2
    log = node.facts.setdefault("kernel_log", [])
    log += [(at, f"nvidia-nvswitch{sw}: SXid (PCI:{pci}): 12028, Non-fatal, Link 33 egress non-posted PRIV error (First)"),
            (at, f"nvidia-nvswitch{sw}: SXid (PCI:{pci}): 12028, Severity 0 Engine instance 33 Sub-engine instance 00"),
            (at, f"nvidia-nvswitch{sw}: SXid (PCI:{pci}): 12028, Data {{0x00000000, 0x00000000, 0x00000000, 0x00000000, "
                 "0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000}")]


@node_generator("fabric_manager")
def generate_fabric_manager(node: SimNode, w: BundleWriter) -> None:
    model = str(node.spec.get("gpu_model") or "")
    if not int(node.spec.get("gpu_count") or 0) or model not in MODELS or not MODELS[model][5]:
        return   # no NVSwitch baseboard: no fabric manager
    uptime = float(node.facts.setdefault("uptime_s", 86400.0 * 3))
    booted = dt.datetime(2026, 11, 30, 9, 0, 0) - dt.timedelta(seconds=uptime)
    w.put(FABRICMANAGER_LOG, render_fabricmanager_log(node, booted + dt.timedelta(seconds=31)), duration_s=0.04)
    if "gpu.nvswitch_nonfatal" in node.faults and fabric_manager_version(node) == driver_version(node):
        _kernel_sxid(node, uptime)
