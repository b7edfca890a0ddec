"""The default `nvidia-smi` screen: the boxed GPU table, the MIG devices table and the processes table.

Read across driver versions: the pre-525 narrow layout ('Persistence-M|', 'Pwr:Usage/Cap' in one
31-character cell), the 530+ wide layout, and 590's '+----' rule under the version line. A row
is a GPU when its second cell holds a PCI bus id, so a paste of a few rows without the header
(from a ticket) is read too. `ERR!` in a cell means NVML could not read that value: in the name
or any value but the fan the GPU is unreadable (lost); in the fan cell alone it is a fan fault.
"""

from __future__ import annotations

import re

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import normalize
from clusterkit.parsers import ParseError
from clusterkit.parsers.gpu_records import GpuInventory, GpuProcess, GpuRecord, norm_bus_id
from clusterkit.parsers.nvidia_smi import integer, num, yes_no
from clusterkit.parsers.nvidia_smi_errors import apply_messages, scan_messages

ERR = "ERR!"
_BUS = r"[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]"
_VERSION = re.compile(r"NVIDIA-SMI\s+(\S+)\s+Driver Version:\s*(\S+)(?:\s+CUDA Version:\s*(\S+))?")
_ROW1_GPU = re.compile(r"^\s*(\d+)\s+(.*?)\s+(On|Off|N/A|ERR!|TCC|WDDM)\s*$")
_ROW1_BUS = re.compile(r"^\s*(" + _BUS + r")\s+(\S+)\s*$")
_GPU_ROW = re.compile(r"^\|\s*\d+\s+.*\|\s*" + _BUS + r"\s+\S+\s*\|")
_MIG_DEV = re.compile(r"^\s*(\d+)\s+(\d+|N/A)\s+(\d+|N/A)\s+(\d+)\s*$")
_PROC = [
    re.compile(r"^\s*(?P<gpu>\d+|N/A)\s+(?:\S+\s+\S+\s+)?(?P<pid>\d+|N/A)\s+(?P<type>[CGM+]+)\s+(?P<name>.+?)\s+"
               r"(?P<mem>\d+\s*MiB|N/A)\s*$"),
]
_RULE = re.compile(r"^[+|][-=+|]+\s*$")


NVIDIA_SMI = declare("nvidia-smi", "gpu/nvidia-smi.txt", command=("nvidia-smi",), priority=58,
                     description="the default nvidia-smi screen (GPU table, MIG devices, processes), any driver")


@NVIDIA_SMI.recognizer
def is_nvidia_smi_screen(text: str) -> bool:
    return any(_GPU_ROW.match(l.strip()) or (l.lstrip().startswith("|") and _VERSION.search(l))
               for l in text.split("\n"))


def _cells(line: str) -> list[str]:
    s = line.strip()
    return s[1:-1].split("|") if s.endswith("|") else s[1:].split("|")


def _value(cell: str) -> str:
    return cell.strip()


def _row2(g: GpuRecord, cells: list[str], errs: list[str]) -> None:
    """'| N/A   27C    P0    72W / 700W |   1MiB / 81559MiB |   0%   Default |'"""
    m = re.match(r"^(.*?)\s+/\s*(.*)$", cells[0])    # 'usage / cap' (the fan's 'N/A' has no space before its slash)
    left, cap = (m.group(1), m.group(2)) if m else (cells[0], "")
    toks = left.split()
    names = ("fan", "temperature", "performance state", "power draw")
    vals = dict(zip(names, toks[-4:] if len(toks) >= 4 else [None] * (4 - len(toks)) + toks))
    vals["power limit"] = cap.strip() or None
    util = cells[2].split() if len(cells) > 2 else []
    vals["utilization"] = util[0] if util else None
    vals["memory"] = _value(cells[1]) if len(cells) > 1 else None
    errs += [k for k, v in vals.items() if v is not None and ERR in v]
    g.fan_error = vals["fan"] == ERR if vals["fan"] is not None else g.fan_error
    g.temperature_c = num(vals["temperature"]) if vals["temperature"] != ERR else None
    g.power_draw_w = num(vals["power draw"]) if vals["power draw"] != ERR else None
    g.power_limit_w = num(vals["power limit"]) if vals["power limit"] != ERR else None
    g.utilization_pct = num(vals["utilization"]) if vals["utilization"] != ERR else None


_READINGS = ("temperature", "performance state", "power draw", "power limit", "utilization", "memory")


def _finish(g: GpuRecord, errs: list[str]) -> None:
    """ERR! in several cells (or the name/bus/ECC cells): NVML cannot read this GPU (lost, GSP timeouts);
    the fan alone: a fan fault; one reading alone while the others read: that field is unreadable."""
    lost = [e for e in errs if e != "fan"]
    if len(lost) == 1 and lost[0] in _READINGS:
        g.unknown_error_fields.append(lost[0])
        return
    if lost:
        g.error = f"nvidia-smi shows ERR! for {', '.join(dict.fromkeys(errs))}: the driver cannot read this GPU"
        g.fan_error = None if "fan" in errs else g.fan_error


@NVIDIA_SMI.parser
def parse_nvidia_smi_screen(text: str) -> GpuInventory:
    """The default nvidia-smi screen (whole, or some GPU rows of it) -> GpuInventory with processes."""
    t = normalize(text)
    inv = GpuInventory("nvidia-smi")
    table = None            # "gpus" | "mig" | "processes"
    current: GpuRecord | None = None
    row = 0
    errs: list[str] = []
    header = False
    by_index: dict[int, GpuRecord] = {}
    mig_ecc: dict[int, int] = {}
    for raw in t.split("\n"):
        line = raw.strip()
        if not line.startswith(("|", "+")):
            continue
        v = _VERSION.search(line)
        if v:
            header = True
            inv.driver_version = v.group(2)
            inv.cuda_version = v.group(3) if v.group(3) and v.group(3) != "N/A" else None
            continue
        if _RULE.match(line):
            if current is not None:
                _finish(current, errs)
            current, row, errs = None, 0, []
            continue
        inner = line.strip("|").strip()
        if inner.startswith("Processes:"):
            table, inv.processes = "processes", []
            continue
        if inner.startswith("MIG devices:"):
            table = "mig"
            continue
        cells = _cells(line)
        if table == "processes":
            for p in _PROC:
                m = p.match(cells[0])
                if m:
                    inv.processes.append(GpuProcess(integer(m["gpu"]), integer(m["pid"]), m["type"], m["name"],
                                                    num(m["mem"])))
            continue
        if table == "mig":
            m = _MIG_DEV.match(cells[0]) if len(cells) >= 3 else None
            if m:
                toks = cells[2].split()
                ecc = integer(toks[-1]) if len(toks) >= 2 else None
                if ecc is not None:
                    mig_ecc[int(m.group(1))] = mig_ecc.get(int(m.group(1)), 0) + ecc
            continue
        if len(cells) < 3:
            continue
        g1, b1 = _ROW1_GPU.match(cells[0]), _ROW1_BUS.match(cells[1])
        if g1 and b1:
            if current is not None:
                _finish(current, errs)
            table = "gpus"
            name, pers = g1.group(2).strip(), g1.group(3)
            ecc = _value(cells[2])
            current, row = GpuRecord(index=int(g1.group(1)), pci_bus_id=norm_bus_id(b1.group(1))), 1
            errs = [k for k, val in (("name", name), ("persistence mode", pers), ("display", b1.group(2)),
                                     ("ECC", ecc)) if val == ERR]
            current.name = name if name and name != ERR else None
            current.persistence_mode = yes_no(pers) if pers in ("On", "Off") else None
            current.ecc_volatile_uncorrected = integer(ecc) if re.fullmatch(r"\d+", ecc) else None
            inv.gpus.append(current)
            by_index[current.index] = current
            continue
        if current is None:
            continue
        row += 1
        if row == 2:
            _row2(current, cells, errs)
        elif row == 3:
            mig = _value(cells[2])
            if mig == ERR:
                errs.append("MIG mode")
            current.mig_enabled = yes_no(mig)
    if current is not None:
        _finish(current, errs)
    for i, n in mig_ecc.items():   # in MIG mode the per-instance table holds the volatile uncorrectable counts
        g = by_index.get(i)
        if g is not None and g.ecc_volatile_uncorrected is None:
            g.ecc_volatile_uncorrected = n
    messages = scan_messages(t)
    if not inv.gpus and not messages:
        raise ParseError("no GPU row ('|   0  NVIDIA ... | 00000000:19:00.0 Off | ... |') in the nvidia-smi table")
    if inv.gpus and not header:
        inv.warnings.append(f"rows of {len(inv.gpus)} GPU(s) without the table header: the node's GPU count is not known")
    return apply_messages(inv, messages)
