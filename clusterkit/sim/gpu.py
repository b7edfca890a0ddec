"""Simulated GPU and power evidence in the real tools' formats, with injectable faults.

Healthy unless `node.faults` names one of the faults below. Fleet-wide facts
(driver, VBIOS, BIOS) live in `node.facts` with defaults, so another generator
or a test can change them.
"""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from clusterkit.evidence.bundle import BundleWriter
from clusterkit.evidence.kinds import Kind
from clusterkit.parsers.dcgmi import DCGMI_DIAG
from clusterkit.parsers.dmidecode_bios import DMIDECODE_BIOS
from clusterkit.parsers.fabricmanager import FABRICMANAGER
from clusterkit.parsers.ipmi import IPMI_SDR_PSU, IPMI_SEL
from clusterkit.parsers.lspci import LSPCI
from clusterkit.parsers.nvidia_smi import NVIDIA_SMI_Q, TOPO
from clusterkit.parsers.nvidia_smi_xml import NVIDIA_SMI_Q_XML
from clusterkit.parsers.nvml_json import NVML
from clusterkit.node_scripts.trace_columns import columns_json
from clusterkit.parsers.power_trace import POWER_TRACE, POWER_TRACE_COLUMNS
from clusterkit.node_scripts.gpu_node import TRACE_COLUMNS
from clusterkit.parsers.gpu_records import CLOCK_REASON_BITS
from clusterkit.probes.nvml_backend import FakeBackend, read_snapshot
from clusterkit.sim.registry import SimNode, fault, node_generator

fault("gpu.row_remap_pending", "a GPU with an uncorrectable ECC error and a pending row remap (reset the GPU)", order=20)
fault("power.node_brake_psu_lost",
      "a node whose GPUs all hit HW power brake in phase under the step load, with PSU 2 'AC lost' (node power, not GPUs)",
      order=21)
fault("gpu.fallen_off_bus", "a GPU that falls off the bus (Xid 79) during the power step", order=22)
fault("gpu.pcie_x8", "a GPU whose PCIe link trained at x8 of x16 (riser/seating): named by NVML and lspci with its "
      "bus id; reseat the GPU / riser", order=23)


def driver_version(node: SimNode) -> str:
    """The node's NVIDIA driver, as every simulated probe reports it (nvml, nvidia-smi, dpkg)."""
    return node.facts.setdefault("driver", "550.90.07")


def fabric_manager_version(node: SimNode) -> str:
    """The installed fabric manager: the driver's version, or a release behind it with the
    stack.fabric_manager_mismatch fault (declared in clusterkit/sim/cluster.py)."""
    return "550.54.15" if "stack.fabric_manager_mismatch" in node.faults else driver_version(node)

# model -> (product name, PCI device id, power limit W, max SM MHz, PCIe gen, NVLinks, NVLink label in topo)
MODELS: dict[str, tuple[str, str, float, int, int, int, str]] = {
    "h100-sxm5-80gb": ("NVIDIA H100 80GB HBM3", "0x233010DE", 700.0, 1980, 5, 18, "NV18"),
    "h100-pcie-80gb": ("NVIDIA H100 PCIe", "0x233110DE", 350.0, 1755, 5, 0, "PHB"),
    "a100-sxm4-80gb": ("NVIDIA A100-SXM4-80GB", "0x20B210DE", 400.0, 1410, 4, 12, "NV12"),
    "a100-sxm4-40gb": ("NVIDIA A100-SXM4-40GB", "0x20B010DE", 400.0, 1410, 4, 12, "NV12"),
}
# HGX baseboard PCI buses of the 8 GPUs (as on common H100/A100 8-GPU servers).
HGX_BUSES = (0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB)
STEP_PERIOD_S, STEP_DURATION_S, SAMPLE_HZ = 4.0, 40.0, 20.0


def _victim(node: SimNode, n: int) -> int:
    return node.facts.setdefault("gpu_victim", node.rng.randrange(max(n, 1)))


def _bus(i: int) -> str:
    b = HGX_BUSES[i] if i < len(HGX_BUSES) else 0x10 + i
    return f"00000000:{b:02X}:00.0"


def _nvml_doc(node: SimNode, model: str, n: int) -> dict[str, Any]:
    name, dev, limit, max_sm, gen, links, _ = MODELS.get(model, MODELS["h100-sxm5-80gb"])
    doc = read_snapshot(FakeBackend(n, model=name, device_id=dev, limit_w=limit))
    f = node.facts
    doc["driver_version"] = driver_version(node)
    doc["cuda_version"] = "12.4"
    node_serial = node.rng.randrange(10**9, 10**10)
    for g in doc["gpus"]:
        i = g["index"]
        g.update(pci_bus_id=_bus(i), serial=f"{node_serial + i * 7919}", uuid=f"GPU-{node.rng.getrandbits(128):032x}",
                 vbios_version=f.setdefault("gpu_vbios", "96.00.99.00.01" if model.startswith("h100") else "92.00.45.00.08"),
                 max_sm_clock_mhz=max_sm, pcie_gen_max=gen, pcie_gen=1 if gen else None,  # idle GPUs downshift
                 power_draw_w=round(node.rng.uniform(62, 78), 2), temperature_c=node.rng.randrange(29, 37),
                 nvlinks=g["nvlinks"][:links])
        if not links:
            g.pop("fabric_state", None)
            g.pop("fabric_status", None)
    v = _victim(node, n)
    if "gpu.row_remap_pending" in node.faults:
        doc["gpus"][v].update(remap_pending=True, remap_uncorrectable=1, ecc_volatile_uncorrected=1,
                              ecc_aggregate_uncorrected=1)
    if "gpu.fallen_off_bus" in node.faults:
        doc["gpus"][v] = {"index": v, "pci_bus_id": _bus(v), "error": "GPU is lost (NVML_ERROR_GPU_IS_LOST)"}
    if "gpu.pcie_x8" in node.faults:
        doc["gpus"][v]["pcie_width"] = 8
    return doc


def render_nvidia_smi_q(doc: dict[str, Any], timestamp: str = "Mon Nov 23 14:00:00 2026") -> str:
    """nvidia-smi -q text (driver 535+ names) for the GPUs of an nvml.json document."""
    out = ["", "==============NVSMI LOG==============", ""]

    def kv(level: int, key: str, value: Any = None) -> None:
        pad = "    " * level
        if value is None:
            out.append(pad + key)
        else:
            out.append(f"{pad}{key:<{42 - len(pad)}}: {value}")

    kv(0, "Timestamp", timestamp)
    kv(0, "Driver Version", doc.get("driver_version"))
    kv(0, "CUDA Version", doc.get("cuda_version"))
    out.append("")
    kv(0, "Attached GPUs", len(doc["gpus"]))
    yn = lambda b: "Yes" if b else "No"  # noqa: E731
    for g in doc["gpus"]:
        if g.get("error"):
            out.insert(1, f"Unable to determine the device handle for GPU {g['pci_bus_id']}: Unknown Error")
            continue
        out.append(f"GPU {g['pci_bus_id']}")
        kv(1, "Product Name", g["name"])
        kv(1, "Persistence Mode", "Enabled" if g["persistence_mode"] else "Disabled")
        kv(1, "Serial Number", g["serial"])
        kv(1, "GPU UUID", g["uuid"])
        kv(1, "VBIOS Version", g["vbios_version"])
        kv(1, "PCI")
        kv(2, "Device Id", g["pci_device_id"])
        kv(2, "Bus Id", g["pci_bus_id"])
        kv(2, "GPU Link Info")
        kv(3, "PCIe Generation")
        kv(4, "Max", g["pcie_gen_max"])
        kv(4, "Current", g["pcie_gen"])
        kv(3, "Link Width")
        kv(4, "Max", f"{g['pcie_width_max']}x")
        kv(4, "Current", f"{g['pcie_width']}x")
        kv(1, "Performance State", "P0")
        kv(1, "Clocks Event Reasons")
        r = g["clock_event_reasons"]
        for label, bit in (("Idle", "gpu_idle"), ("Applications Clocks Setting", "applications_clocks"),
                           ("SW Power Cap", "sw_power_cap"), ("HW Slowdown", "hw_slowdown")):
            kv(2, label, "Active" if r & CLOCK_REASON_BITS[bit] else "Not Active")
        kv(3, "HW Thermal Slowdown", "Active" if r & CLOCK_REASON_BITS["hw_thermal"] else "Not Active")
        kv(3, "HW Power Brake Slowdown", "Active" if r & CLOCK_REASON_BITS["hw_power_brake"] else "Not Active")
        kv(2, "Sync Boost", "Not Active")
        kv(2, "SW Thermal Slowdown", "Active" if r & CLOCK_REASON_BITS["sw_thermal"] else "Not Active")
        kv(1, "ECC Errors")
        for scope, c, u in (("Volatile", g["ecc_volatile_corrected"], g["ecc_volatile_uncorrected"]),
                            ("Aggregate", g["ecc_aggregate_corrected"], g["ecc_aggregate_uncorrected"])):
            kv(2, scope)
            kv(3, "SRAM Correctable", 0)
            kv(3, "SRAM Uncorrectable", 0)
            kv(3, "DRAM Correctable", c)
            kv(3, "DRAM Uncorrectable", u)
        kv(1, "Retired Pages")
        kv(2, "Single Bit ECC", "N/A")
        kv(2, "Double Bit ECC", "N/A")
        kv(2, "Pending Page Blacklist", "N/A")
        kv(1, "Remapped Rows")
        kv(2, "Correctable Error", g["remap_correctable"])
        kv(2, "Uncorrectable Error", g["remap_uncorrectable"])
        kv(2, "Pending", yn(g["remap_pending"]))
        kv(2, "Remapping Failure Occurred", yn(g["remap_failure"]))
        kv(1, "Temperature")
        kv(2, "GPU Current Temp", f"{g['temperature_c']} C")
        kv(1, "GPU Power Readings")
        kv(2, "Power Draw", f"{g['power_draw_w']:.2f} W")
        kv(2, "Current Power Limit", f"{g['power_limit_w']:.2f} W")
        kv(2, "Default Power Limit", f"{g['power_default_limit_w']:.2f} W")
        kv(2, "Max Power Limit", f"{g['power_max_limit_w']:.2f} W")
        kv(1, "Clocks")
        kv(2, "SM", f"{g['sm_clock_mhz']} MHz")
        kv(2, "Memory", f"{g['mem_clock_mhz']} MHz")
        kv(1, "Max Clocks")
        kv(2, "SM", f"{g['max_sm_clock_mhz']} MHz")
        kv(1, "Fabric")
        kv(2, "State", {"completed": "Completed"}.get(g.get("fabric_state", ""), "N/A"))
        kv(2, "Status", g.get("fabric_status", "N/A"))
        out.append("")
    return "\n".join(out) + "\n"


def _xml(tag: str, value: Any, level: int, attrs: str = "") -> list[str]:
    """Elements the way nvidia-smi writes them: one per line, tab-indented; a dict value holds children."""
    pad = "\t" * level
    if not isinstance(value, dict):
        return [f"{pad}<{tag}{attrs}>{xml_escape(str(value))}</{tag}>"]
    return [f"{pad}<{tag}{attrs}>", *(x for k, v in value.items() for x in _xml(k, v, level + 1)), f"{pad}</{tag}>"]


_XML_REASONS = (("gpu_idle", "gpu_idle"), ("applications_clocks_setting", "applications_clocks"),
                ("sw_power_cap", "sw_power_cap"), ("hw_slowdown", "hw_slowdown"), ("hw_thermal_slowdown", "hw_thermal"),
                ("hw_power_brake_slowdown", "hw_power_brake"), ("sync_boost", "sync_boost"),
                ("sw_thermal_slowdown", "sw_thermal"), ("display_clocks_setting", "display_clock"))


def _xml_gpu(g: dict[str, Any]) -> dict[str, Any]:
    bus, r = g["pci_bus_id"], g["clock_event_reasons"]
    yn = lambda b: "Yes" if b else "No"  # noqa: E731
    w = lambda v: f"{v:.2f} W"  # noqa: E731
    ecc = lambda c, u: {"sram_correctable": 0, "sram_uncorrectable_parity": 0, "sram_uncorrectable_secded": 0,  # noqa: E731
                        "dram_correctable": c, "dram_uncorrectable": u}
    return {
        "product_name": g["name"], "product_brand": "NVIDIA",
        "persistence_mode": "Enabled" if g["persistence_mode"] else "Disabled",
        "mig_mode": {"current_mig": "Disabled", "pending_mig": "Disabled"},
        "serial": g["serial"], "uuid": g["uuid"], "vbios_version": g["vbios_version"],
        "gpu_reset_status": {"reset_required": "No", "drain_and_reset_recommended": "No"},
        "pci": {"pci_bus": bus[9:11], "pci_device": bus[12:14], "pci_domain": bus[4:8],
                "pci_device_id": str(g["pci_device_id"]).upper().replace("0X", ""), "pci_bus_id": bus,
                "pci_gpu_link_info": {
                    "pcie_gen": {"max_link_gen": g["pcie_gen_max"], "current_link_gen": g["pcie_gen"]},
                    "link_widths": {"max_link_width": f"{g['pcie_width_max']}x",
                                    "current_link_width": f"{g['pcie_width']}x"}},
                "replay_counter": 0},
        "fan_speed": "N/A", "performance_state": "P0",
        "clocks_event_reasons": {f"clocks_event_reason_{t}": "Active" if r & CLOCK_REASON_BITS[b] else "Not Active"
                                 for t, b in _XML_REASONS},
        "utilization": {"gpu_util": f"{g.get('utilization_pct') or 0:.0f} %"},
        "ecc_mode": {"current_ecc": "Enabled"},
        "ecc_errors": {"volatile": ecc(g["ecc_volatile_corrected"], g["ecc_volatile_uncorrected"]),
                       "aggregate": ecc(g["ecc_aggregate_corrected"], g["ecc_aggregate_uncorrected"])},
        "retired_pages": {"multiple_single_bit_retirement": {"retired_count": "N/A"},
                          "double_bit_retirement": {"retired_count": "N/A"},
                          "pending_blacklist": "N/A", "pending_retirement": "N/A"},
        "remapped_rows": {"remapped_row_corr": g["remap_correctable"], "remapped_row_unc": g["remap_uncorrectable"],
                          "remapped_row_pending": yn(g["remap_pending"]), "remapped_row_failure": yn(g["remap_failure"])},
        "temperature": {"gpu_temp": f"{g['temperature_c']} C"},
        "gpu_power_readings": {"power_state": "P0", "instant_power_draw": w(g["power_draw_w"]),
                               "average_power_draw": w(g["power_draw_w"]), "current_power_limit": w(g["power_limit_w"]),
                               "default_power_limit": w(g["power_default_limit_w"]),
                               "max_power_limit": w(g["power_max_limit_w"])},
        "clocks": {"sm_clock": f"{g['sm_clock_mhz']} MHz", "mem_clock": f"{g['mem_clock_mhz']} MHz"},
        "max_clocks": {"sm_clock": f"{g['max_sm_clock_mhz']} MHz"},
        "fabric": {"state": {"completed": "Completed"}.get(g.get("fabric_state", ""), "N/A"),
                   "status": g.get("fabric_status", "N/A")},
        "processes": "",
    }


def render_nvidia_smi_xml(doc: dict[str, Any], timestamp: str = "Mon Nov 23 14:00:00 2026") -> str:
    """`nvidia-smi -q -x` (DTD nvsmi_device_v12, driver 535+ names) for the GPUs of an nvml.json document.
    A lost GPU is left out of the log and named on a line before it, as nvidia-smi does."""
    out = [f"Unable to determine the device handle for GPU {g['pci_bus_id']}: Unknown Error"
           for g in doc["gpus"] if g.get("error")]
    out += ['<?xml version="1.0" ?>', '<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">', "<nvidia_smi_log>"]
    for tag, v in (("timestamp", timestamp), ("driver_version", doc.get("driver_version")),
                   ("cuda_version", doc.get("cuda_version")), ("attached_gpus", len(doc["gpus"]))):
        out += _xml(tag, v, 1)
    for g in doc["gpus"]:
        if not g.get("error"):
            out += _xml("gpu", _xml_gpu(g), 1, f' id="{g["pci_bus_id"]}"')
    out.append("</nvidia_smi_log>")
    return "\n".join(out) + "\n"


_GEN_GTS = {1: "2.5", 2: "5", 3: "8", 4: "16", 5: "32"}
_AER = ("\tCapabilities: [100 v2] Advanced Error Reporting\n"
        "\t\tUESta:\tDLP- SDES- TLP- FCP- CmpltTO- CmpltAbrt- UnxCmplt- RxOF- MalfTLP- ECRC- UnsupReq- ACSViol-\n"
        "\t\tUEMsk:\tDLP- SDES- TLP- FCP- CmpltTO- CmpltAbrt- UnxCmplt+ RxOF- MalfTLP- ECRC- UnsupReq- ACSViol-\n"
        "\t\tUESvrt:\tDLP+ SDES+ TLP+ FCP+ CmpltTO+ CmpltAbrt+ UnxCmplt- RxOF+ MalfTLP+ ECRC+ UnsupReq- ACSViol-\n"
        "\t\tCESta:\tRxErr- BadTLP- BadDLLP- Rollover- Timeout- AdvNonFatalErr-\n"
        "\t\tCEMsk:\tRxErr- BadTLP- BadDLLP- Rollover- Timeout- AdvNonFatalErr+\n")


def _lspci_block(bus: str, head: str, gts: str, width: int, cap_width: int, tail: str) -> str:
    note = "ok" if width == cap_width else "downgraded"
    return (f"{bus} {head}\n\tControl: I/O- Mem+ BusMaster+ SpecCycle- MemWINV- VGASnoop- ParErr- Stepping- SERR- "
            f"FastB2B- DisINTx+\n\tCapabilities: [60] Express (v2) Endpoint, MSI 00\n"
            f"\t\tDevSta:\tCorrErr- NonFatalErr- FatalErr- UnsupReq- AuxPwr- TransPend-\n"
            f"\t\tLnkCap:\tPort #0, Speed {gts}GT/s, Width x{cap_width}, ASPM not supported\n"
            f"\t\tLnkSta:\tSpeed {gts}GT/s (ok), Width x{width} ({note})\n\t\t\tTrErr- Train- SlotClk+ DLActive- "
            f"BWMgmt- ABWMgmt-\n{_AER}{tail}\n")


def render_lspci(doc: dict[str, Any], nics: list[str]) -> str:
    """`lspci -vvv -nn -D -d 10de:` then `-d 15b3:`: the GPUs (at the speed NVML saw under load: the trace's,
    not the idle downshift) and one ConnectX-7 per declared HCA, each on the PCIe switch beside its GPU."""
    out = []
    for g in doc["gpus"]:
        if g.get("error"):   # off the bus: its config space reads all ones
            out.append(f"{g['pci_bus_id'][4:].lower()} 3D controller [0302]: NVIDIA Corporation Device [10de:2330] "
                       f"(rev ff) (prog-if ff)\n\t!!! Unknown header type 7f\n")
            continue
        dev = str(g["pci_device_id"])[2:6].lower()
        gts = _GEN_GTS.get(int(g["pcie_gen_max"] or 5), "32")
        dsn = "-".join(f"{int(g['serial']) >> (8 * k) & 0xff:02x}" for k in range(8))
        out.append(_lspci_block(
            g["pci_bus_id"][4:].lower(), f"3D controller [0302]: NVIDIA Corporation Device [10de:{dev}] (rev a1)",
            gts, g["pcie_width"], g["pcie_width_max"],
            f"\tCapabilities: [2f0 v1] Device Serial Number {dsn}\n\tKernel driver in use: nvidia"))
    for i, _name in enumerate(nics):
        bus = f"0000:{(HGX_BUSES[i] if i < len(HGX_BUSES) else 0x10 + i) + 1:02x}:00.0"
        out.append(_lspci_block(
            bus, "Infiniband controller [0207]: Mellanox Technologies MT2910 Family [ConnectX-7] [15b3:1021]",
            "32", 16, 16, f"\tCapabilities: [48] Vital Product Data\n\t\tRead-only fields:\n"
                          f"\t\t\t[PN] Part number: MCX75310AAS-NEAT\n\t\t\t[SN] Serial number: MT2410X{i:05d}\n"
                          f"\t\tEnd\n\tKernel driver in use: mlx5_core"))
    return "\n".join(out)


def render_topo(n: int, nics: list[str], nvlink: str) -> str:
    """`nvidia-smi topo -m` of an HGX node: GPU i shares a PCIe switch with NIC i; NUMA 0 holds the first half."""
    devs = [f"GPU{i}" for i in range(n)] + [f"NIC{j}" for j in range(len(nics))]
    half = max(n, 1) // 2 or 1

    def numa(d: str) -> int:
        k = int(d[3:])
        return 0 if k < half else 1

    def link(a: str, b: str) -> str:
        if a == b:
            return " X "
        if a.startswith("GPU") and b.startswith("GPU"):
            return nvlink if nvlink.startswith("NV") else ("NODE" if numa(a) == numa(b) else "SYS")
        if a[3:] == b[3:]:
            return "PIX"
        return "NODE" if numa(a) == numa(b) else "SYS"

    lines = ["\t" + "\t".join(devs) + "\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID"]
    for a in devs:
        row = [link(a, b) for b in devs]
        tail = ["0-55,112-167" if numa(a) == 0 else "56-111,168-223", str(numa(a)), "N/A"] if a.startswith("GPU") else []
        lines.append(a + "\t" + "\t".join(row + tail))
    lines += ["", "Legend:", "", "  X    = Self", "  SYS  = Connection traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI)",
              "  NODE = Connection traversing PCIe as well as the interconnect between PCIe Host Bridges within a NUMA node",
              "  PHB  = Connection traversing PCIe as well as a PCIe Host Bridge (typically the CPU)",
              "  PXB  = Connection traversing multiple PCIe bridges (without traversing the PCIe Host Bridge)",
              "  PIX  = Connection traversing at most a single PCIe bridge",
              "  NV#  = Connection traversing a bonded set of # NVLinks", "", "NIC Legend:", ""]
    lines += [f"  NIC{j}: {name}" for j, name in enumerate(nics)]
    return "\n".join(lines) + "\n"


def _power_trace(node: SimNode, doc: dict[str, Any], uptime_start: float) -> tuple[str, float | None]:
    """A 20 Hz square-wave trace; returns (text, uptime of the fallen-off-bus event or None)."""
    rng = node.rng
    gpus = doc["gpus"]
    brake_all = "power.node_brake_psu_lost" in node.faults
    victim = _victim(node, len(gpus))
    lost_t = STEP_DURATION_S * 0.55 if "gpu.fallen_off_bus" in node.faults else None
    head = ["# clusterkit power-trace v1", f"# period_s: {STEP_PERIOD_S}", f"# duration_s: {STEP_DURATION_S}",
            f"# sample_hz_requested: {SAMPLE_HZ}"]
    limits = {}
    for g in gpus:
        i = g["index"]
        limit = g.get("power_limit_w") or MODELS["h100-sxm5-80gb"][2]
        limits[i] = limit
        head.append(f"# gpu: {i},{g['pci_bus_id']},{g.get('serial', '')},{g.get('name', '')},{limit}")
    head += ["# power_source: instant", "# load: torch-gemm", f"# uptime_start_s: {uptime_start:.2f}",
             f"# uptime_t0_s: {uptime_start:.3f}"]
    rows = []
    half = STEP_PERIOD_S / 2
    n_ticks = int(STEP_DURATION_S * SAMPLE_HZ)
    max_sm = {g["index"]: g.get("max_sm_clock_mhz") or 1980 for g in gpus}
    gone = False
    for k in range(n_ticks):
        t = k / SAMPLE_HZ + rng.uniform(0, 0.004)
        phase = "load" if int(t // half) % 2 == 1 else "idle"
        since_edge = t - (t // half) * half
        for g in gpus:
            i = g["index"]
            if lost_t is not None and i == victim:
                if gone:
                    continue
                if t >= lost_t:
                    rows.append(f"{t:.3f},{i},{phase},,,,,GPU_LOST")
                    gone = True
                    continue
            if phase == "idle":
                p, clk, r, temp = rng.uniform(65, 80), 345, 0x1, 34
            elif brake_all and since_edge < 0.45:
                # PSU cannot hold the step: every GPU brakes in the same instants
                p, clk, r, temp = limits[i] * rng.uniform(0.38, 0.46), 840, 0x80 | 0x8, 52
            else:
                p, clk, r, temp = limits[i] * rng.uniform(0.95, 0.99), max_sm[i] - rng.randrange(0, 60), 0x4, 61
            rows.append(f"{t:.3f},{i},{phase},{p:.2f},{clk},{hex(r)},{temp},")
    head.append(f"# uptime_end_s: {uptime_start + STEP_DURATION_S + 1:.2f}")
    for g in gpus:
        if not g.get("error"):
            head.append(f"# pcie_under_load: {g['index']},{g['pcie_gen_max']},{g['pcie_gen_max']},"
                        f"{g['pcie_width']},{g['pcie_width_max']}")
    return "\n".join(head + [TRACE_COLUMNS] + rows) + "\n", (uptime_start + lost_t if lost_t is not None else None)


def _dcgmi_diag(node: SimNode, doc: dict[str, Any]) -> str:
    """`dcgmi diag -r 1` as DCGM 3.3 prints it; the row-remap fault fails its deployment test."""
    ids = ",".join(str(g.get("pci_device_id", ""))[2:6].lower() for g in doc["gpus"])
    remap = "gpu.row_remap_pending" in node.faults
    v = _victim(node, len(doc["gpus"]))
    rows = [("-----  Metadata  ", None), ("DCGM Version", "3.3.8"), ("Driver Version Detected", doc["driver_version"]),
            ("GPU Device IDs Detected", ids), ("-----  Deployment  ", None)]
    rows += [(t, "Pass") for t in ("Denylist", "NVML Library", "CUDA Main Library", "Permissions and OS Blocks",
                                    "Persistence Mode", "Environment Variables")]
    rows.append(("Page Retirement/Row Remap", f"Fail - GPU: {v}" if remap else "Pass"))
    if remap:   # DCGM wraps its messages at the column width, mid-word
        text = f"GPU {v} had uncorrectable memory errors and row remapping is pending. Drain and reset the GPU."
        rows += [("Warning" if k == 0 else "", text[k:k + 46]) for k in range(0, len(text), 46)]
    rows += [(t, "Pass") for t in ("Graphics Processes", "Inforom")]
    w1, w2 = 27, 48
    out = ["Successfully ran diagnostic for group.", f"+{'-' * w1}+{'-' * w2}+",
           f"| {'Diagnostic':<{w1 - 1}}| {'Result':<{w2 - 1}}|", f"+{'=' * w1}+{'=' * w2}+"]
    for name, val in rows:
        if val is None:
            out.append(f"|{name:-<{w1}}+{'-' * w2}|")
        else:
            out.append(f"| {name:<{w1 - 1}}| {val:<{w2 - 1}}|")
    out.append(f"+{'-' * w1}+{'-' * w2}+")
    return "\n".join(out) + "\n"


def _ipmi(node: SimNode) -> tuple[str, str]:
    lost = "power.node_brake_psu_lost" in node.faults
    rows = [("PS1 Status", "C8h", "ok", "10.1", "Presence detected"),
            ("PS2 Status", "C9h", "ok", "10.2", "Presence detected, Power Supply AC lost" if lost else "Presence detected"),
            ("PS3 Status", "CAh", "ok", "10.3", "Presence detected"),
            ("PS4 Status", "CBh", "ok", "10.4", "Presence detected"),
            ("PSU Redundancy", "CCh", "ok", "21.1", "Redundancy Degraded" if lost else "Fully Redundant")]
    sdr = "".join(f"{a:<17}| {b} | {c:<5}| {d:<5}| {e}\n" for a, b, c, d, e in rows)
    sel = ["   1 | 11/20/2026 | 08:14:02 | Event Logging Disabled #0x07 | Log area reset/cleared | Asserted",
           "   2 | 11/20/2026 | 08:15:40 | System Event #0x83 | Timestamp Clock Sync | Asserted"]
    if lost:
        sel.append("   3 | 11/23/2026 | 13:52:17 | Power Supply PS2 Status | Power Supply AC lost | Asserted")
        sel.append("   4 | 11/23/2026 | 13:52:17 | Power Unit PSU Redundancy | Redundancy Degraded | Asserted")
    return sdr, "\n".join(sel) + "\n"


def _bios(node: SimNode) -> str:
    version = node.facts.setdefault("bios_version", "2.1.4")
    if "power.node_brake_psu_lost" in node.faults:
        version = node.facts.get("bios_version_faulty", "1.9.2")   # the rest of the fleet got the power fix
    return ("# dmidecode 3.3\nGetting SMBIOS data from sysfs.\nSMBIOS 3.3.0 present.\n\n"
            "Handle 0x0000, DMI type 0, 26 bytes\nBIOS Information\n\tVendor: American Megatrends International, LLC.\n"
            f"\tVersion: {version}\n\tRelease Date: 06/14/2024\n\tAddress: 0xF0000\n\tRuntime Size: 64 kB\n"
            "\tROM Size: 64 MB\n\tBIOS Revision: 5.27\n\n")


@node_generator("gpu")
def generate_gpu(node: SimNode, w: BundleWriter) -> None:
    model = str(node.spec.get("gpu_model") or "")
    n = int(node.spec.get("gpu_count") or 0)
    if not n or model not in MODELS:
        # No GPU: what a real node without the driver shows.
        w.put(NVML, json.dumps(read_snapshot(FakeBackend(missing="library_not_found")), indent=1) + "\n", duration_s=0.2)
        w.put(NVIDIA_SMI_Q, "sh: 1: nvidia-smi: not found\n", exit_code=127, duration_s=0.01,
              stderr="nvidia-smi: not found")
        w.put(LSPCI, "", duration_s=0.05)   # lspci -d 10de: / -d 15b3: match nothing
        return
    doc = _nvml_doc(node, model, n)
    links = MODELS[model][5]
    uptime = float(node.facts.setdefault("uptime_s", 86400.0 * 3))
    files: list[tuple[Kind, str]] = [
        (NVML, json.dumps(doc, indent=1, sort_keys=True) + "\n"),
        (NVIDIA_SMI_Q, render_nvidia_smi_q(doc)),
        (NVIDIA_SMI_Q_XML, render_nvidia_smi_xml(doc)),
        (LSPCI, render_lspci(doc, list(node.spec.get("ib_devices") or []))),
        (TOPO,
         render_topo(n, list(node.spec.get("ib_devices") or []), MODELS[model][6])),
    ]
    if links:
        fm = fabric_manager_version(node)   # a mismatched one refuses to start, as the real one does
        files.append((FABRICMANAGER,
                      f"{'active' if fm == doc['driver_version'] else 'failed'}\nFabric Manager version is : {fm}\n"))
    trace, lost_uptime = _power_trace(node, doc, uptime - 600.0)
    files.append((POWER_TRACE, trace))
    files.append((POWER_TRACE_COLUMNS, columns_json(trace)))     # as the node script writes it beside the CSV
    if "gpu.fallen_off_bus" not in node.faults:   # DCGM cannot run its diag with a GPU off the bus
        files.append((DCGMI_DIAG, _dcgmi_diag(node, doc)))
    sdr, sel = _ipmi(node)
    files += [(IPMI_SDR_PSU, sdr), (IPMI_SEL, sel), (DMIDECODE_BIOS, _bios(node))]
    for kind, text in files:
        w.put(kind, text, duration_s=0.3)
    log = node.facts.setdefault("kernel_log", [])
    log.append((14.2, f"nvidia-nvlink: Nvlink Core is being initialized, major device number 234"))
    log.append((14.9, f"NVRM: loading NVIDIA UNIX x86_64 Kernel Module  {doc['driver_version']}"))
    v = _victim(node, n)
    xbus = _bus(v)[4:].lower()[:-2]   # '0000:5d:00' as the driver prints it
    if "gpu.row_remap_pending" in node.faults:
        log.append((uptime - 7200.0, f"NVRM: Xid (PCI:{xbus}): 94, pid=48211, name=python3, Contained: CE User Channel (0x9). "
                                     "RST: No, D-RST: No"))
        log.append((uptime - 7200.0, f"NVRM: Xid (PCI:{xbus}): 63, pid=48211, name=python3, Row Remapper: New row "
                                     "(0x00000000000e1a20) marked for remapping, reset gpu to activate."))
    if lost_uptime is not None:
        log.append((lost_uptime, f"NVRM: Xid (PCI:{xbus}): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus."))
        log.append((lost_uptime + 0.01, f"NVRM: GPU {xbus}.0: GPU has fallen off the bus."))
