"""nvidia-smi outputs: full or partial `-q`, `--query-gpu ... --format=csv`, `topo -m`.

Old and new field names are both read ("Clocks Throttle Reasons" before driver
535, "Clocks Event Reasons" after; "Power Readings" vs "GPU Power Readings";
"Enforced Power Limit" vs "Current Power Limit").
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any

from clusterkit.evidence.kinds import kind
from clusterkit.evidence.text import clean
from clusterkit.parsers import ParseError
from clusterkit.parsers.gpu_records import (
    CLOCK_REASON_BITS, GpuInventory, GpuRecord, norm_bus_id, norm_device_id,
)

# ---------------------------------------------------------------- value helpers

_NA = {"n/a", "[n/a]", "not supported", "[not supported]", "unknown error", "[unknown error]",
       "not available", "", "[requested functionality has been deprecated]", "insufficient permissions"}
_NUM = re.compile(r"[-+]?\d+(?:[.,]\d+)?")


def num(v: Any) -> float | None:
    """'445.38 W' -> 445.38; '59,77 W' (comma locale) -> 59.77; N/A -> None."""
    if v is None or isinstance(v, dict):
        return None
    s = str(v).strip()
    if s.lower() in _NA:
        return None
    m = _NUM.search(s)
    if not m:
        return None
    try:
        return float(m.group(0).replace(",", "."))
    except ValueError:
        return None


def integer(v: Any) -> int | None:
    f = num(v)
    return int(f) if f is not None else None


def yes_no(v: Any) -> bool | None:
    if v is None or isinstance(v, dict):
        return None
    s = str(v).strip().lower()
    if s in ("yes", "enabled", "active", "on", "true"):
        return True
    if s in ("no", "disabled", "not active", "off", "false"):
        return False
    return None


# ---------------------------------------------------------------- nvidia-smi -q

_GPU_HEADER = re.compile(r"^GPU\s+([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])\s*$")
_NO_HANDLE = re.compile(r"Unable to determine the device handle for GPU\s*([0-9A-Fa-f:.]+):\s*(.*)")
# the key ends in a non-blank (`\S(?:.*?\S)?`): each blank run is read once, not once per
# candidate end of the key
_KV = re.compile(r"^(\s*)(\S(?:.*?\S)?)\s*:(?:\s(.*))?$")


@kind("nvidia-smi-q", path="gpu/nvidia-smi-q.txt", priority=60,
      description="nvidia-smi -q / -a (full or partial, one or many GPUs)")
def is_nvidia_smi_q(text: str) -> bool:
    return bool(re.search(r"^=+NVSMI LOG=+[ \t]*$", text, re.M)) or (
        bool(re.search(r"^GPU [0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7][ \t]*$", text, re.M))
        and bool(re.search(r"^[ \t]+(Product Name|Serial Number|GPU UUID|Bus Id)[ \t]*:", text, re.M)))


def _tree(lines: list[str]) -> dict[str, Any]:
    """Indented 'Key : Value' lines -> nested dicts (a header line opens a section)."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
    for line in lines:
        if not line.strip() or line.lstrip().startswith(("|", "+")):
            continue
        indent = len(line) - len(line.lstrip(" \t"))
        m = _KV.match(line)
        while len(stack) > 1 and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if m and m.group(3) is not None and m.group(3).strip() != "":
            parent.setdefault(m.group(2).strip(), m.group(3).strip())
        else:
            key = (m.group(2) if m else line).strip().rstrip(":").strip()
            sec: dict[str, Any] = {}
            if isinstance(parent.get(key), dict):
                sec = parent[key]
            else:
                parent[key] = sec
            stack.append((indent, sec))
    return root


def _get(d: dict[str, Any], *path: str) -> Any:
    """First existing path wins; each path element may list alternatives with '|'."""
    cur: Any = d
    for p in path:
        if not isinstance(cur, dict):
            return None
        nxt = None
        for alt in p.split("|"):
            if alt in cur:
                nxt = cur[alt]
                break
        cur = nxt
        if cur is None:
            return None
    return cur


def _ecc_sum(sec: Any, uncorrectable: bool) -> int | None:
    """Sum one direction of an ECC 'Volatile'/'Aggregate' section, any driver's layout."""
    if not isinstance(sec, dict):
        return None
    total: int | None = None
    # Pre-A100 layout: 'Single Bit'/'Double Bit' sub-sections with a 'Total'.
    old = sec.get("Double Bit" if uncorrectable else "Single Bit")
    if isinstance(old, dict):
        return integer(old.get("Total"))
    for k, v in sec.items():
        if isinstance(v, dict):
            continue
        is_unc = "uncorrectable" in k.lower()
        is_cor = "correctable" in k.lower() and not is_unc
        if (uncorrectable and is_unc) or (not uncorrectable and is_cor):
            n = integer(v)
            if n is not None:
                total = (total or 0) + n
    return total


def _text(v: Any) -> str | None:
    return None if not isinstance(v, str) or v.strip().lower() in _NA else v.strip()


def _retired(sec: Any, key: str) -> int | None:
    v = _get(sec, key) if isinstance(sec, dict) else None
    if isinstance(v, dict):  # older: "Single Bit ECC" { "Count": n }
        return integer(v.get("Count"))
    return integer(v)


def _reasons(sec: Any) -> int | None:
    if not isinstance(sec, dict):
        return None
    names = {
        "idle": "gpu_idle", "applications clocks setting": "applications_clocks",
        "sw power cap": "sw_power_cap", "hw slowdown": "hw_slowdown", "sync boost": "sync_boost",
        "sw thermal slowdown": "sw_thermal", "hw thermal slowdown": "hw_thermal",
        "hw power brake slowdown": "hw_power_brake", "display clock setting": "display_clock",
    }
    mask, seen = 0, False

    def walk(d: dict[str, Any]) -> None:
        nonlocal mask, seen
        for k, v in d.items():
            if isinstance(v, dict):  # "HW Slowdown" may nest its detail reasons
                walk(v)
                continue
            bit = names.get(k.strip().lower())
            if bit is None:
                continue
            on = yes_no(v)
            if on is not None:
                seen = True
                if on:
                    mask |= CLOCK_REASON_BITS[bit]

    walk(sec)
    return mask if seen else None


def _gpu_from_q(bus: str, g: dict[str, Any], index: int) -> GpuRecord:
    power = _get(g, "GPU Power Readings|Power Readings") or {}
    pci = g.get("PCI") or {}
    link = _get(pci, "GPU Link Info") or {}
    r = GpuRecord(
        index=index,
        name=g.get("Product Name"),
        uuid=g.get("GPU UUID"),
        serial=_text(g.get("Serial Number")),
        pci_bus_id=norm_bus_id(_get(pci, "Bus Id") or bus),
        pci_device_id=norm_device_id(_get(pci, "Device Id")),
        vbios_version=g.get("VBIOS Version"),
        persistence_mode=yes_no(g.get("Persistence Mode")),
        power_draw_w=num(_get(power, "Power Draw|Average Power Draw|Instantaneous Power Draw")),
        power_limit_w=num(_get(power, "Current Power Limit|Enforced Power Limit|Power Limit")),
        power_default_limit_w=num(_get(power, "Default Power Limit")),
        power_max_limit_w=num(_get(power, "Max Power Limit")),
        sm_clock_mhz=num(_get(g, "Clocks", "SM")),
        mem_clock_mhz=num(_get(g, "Clocks", "Memory")),
        max_sm_clock_mhz=num(_get(g, "Max Clocks", "SM")),
        temperature_c=num(_get(g, "Temperature", "GPU Current Temp")),
        utilization_pct=num(_get(g, "Utilization", "Gpu|GPU")),
        clock_event_reasons=_reasons(_get(g, "Clocks Event Reasons|Clocks Throttle Reasons|Clocks Reasons")),
        ecc_volatile_corrected=_ecc_sum(_get(g, "ECC Errors", "Volatile"), False),
        ecc_volatile_uncorrected=_ecc_sum(_get(g, "ECC Errors", "Volatile"), True),
        ecc_aggregate_corrected=_ecc_sum(_get(g, "ECC Errors", "Aggregate"), False),
        ecc_aggregate_uncorrected=_ecc_sum(_get(g, "ECC Errors", "Aggregate"), True),
        retired_pages_sbe=_retired(g.get("Retired Pages"), "Single Bit ECC"),
        retired_pages_dbe=_retired(g.get("Retired Pages"), "Double Bit ECC"),
        retired_pages_pending=yes_no(_get(g, "Retired Pages", "Pending Page Blacklist|Pending Page Retirement|Pending")),
        remap_correctable=integer(_get(g, "Remapped Rows", "Correctable Error")),
        remap_uncorrectable=integer(_get(g, "Remapped Rows", "Uncorrectable Error")),
        remap_pending=yes_no(_get(g, "Remapped Rows", "Pending")),
        remap_failure=yes_no(_get(g, "Remapped Rows", "Remapping Failure Occurred")),
        pcie_gen=integer(_get(link, "PCIe Generation", "Current")),
        pcie_gen_max=integer(_get(link, "PCIe Generation", "Max")),
        pcie_width=integer(_get(link, "Link Width", "Current")),
        pcie_width_max=integer(_get(link, "Link Width", "Max")),
        reset_required=yes_no(_get(g, "GPU Reset Status", "Reset Required")),
    )
    state = _get(g, "Fabric", "State")
    if isinstance(state, str) and state.lower() not in _NA:
        r.fabric_state = state.lower().replace(" ", "_")
        st = _get(g, "Fabric", "Status")
        r.fabric_status = st if isinstance(st, str) else None
    return r


def parse_nvidia_smi_q(text: str) -> GpuInventory:
    """Full or partial `nvidia-smi -q` (any driver era) -> GpuInventory. ParseError if no GPU block."""
    t = clean(text)
    lines = t.split("\n")
    header_lines: list[str] = []
    blocks: list[tuple[str, list[str]]] = []
    for line in lines:
        m = _GPU_HEADER.match(line.rstrip())
        if m:
            blocks.append((m.group(1), []))
        elif blocks:
            if line.strip() and not line[:1].isspace() and not line.startswith(("|", "+")):
                # a non-indented line ends the GPU block (a shell prompt, the next log)
                if _KV.match(line):
                    header_lines.append(line)
                    continue
            blocks[-1][1].append(line)
        else:
            header_lines.append(line)
    top = _tree([ln for ln in header_lines if _KV.match(ln) and not ln.startswith(("|", "+"))])
    attached = integer(top.get("Attached GPUs"))
    if not blocks and not _NO_HANDLE.search(t):
        if "NVSMI LOG" in t and attached == 0:
            return GpuInventory("nvidia-smi-q", [], top.get("Driver Version"), top.get("CUDA Version"),
                                attached=0, no_gpu=True)
        raise ParseError("no 'GPU 0000xxxx:xx:xx.x' block found: not nvidia-smi -q output (or cut before the first GPU)")
    inv = GpuInventory("nvidia-smi-q", [], top.get("Driver Version"), top.get("CUDA Version"), attached=attached)
    for i, (bus, body) in enumerate(blocks):
        tree = _tree(body)
        if not tree:
            inv.warnings.append(f"GPU {bus}: empty block (output truncated?)")
        inv.gpus.append(_gpu_from_q(bus, tree, i))
    # nvidia-smi lists a GPU it cannot reach (fallen off the bus) on one line, without a block.
    for m in _NO_HANDLE.finditer(t):
        bus = norm_bus_id(m.group(1))
        if bus and all(g.pci_bus_id != bus for g in inv.gpus):
            inv.gpus.append(GpuRecord(index=None, pci_bus_id=bus, error=f"nvidia-smi: {m.group(2).strip()}"))
    if attached is not None and attached > len(blocks):
        inv.warnings.append(f"only {len(blocks)} of {attached} attached GPU blocks present (output trimmed?)")
    # Partial output with a trimmed block list: indices are positions in the output,
    # not NVML indices, unless every attached GPU is present (the usual case).
    return inv


# ---------------------------------------------------------------- --query-gpu CSV

_QUERY_FIELDS: dict[str, tuple[str, str]] = {
    # header name (as nvidia-smi prints it, without the unit) -> (GpuRecord field, type)
    "index": ("index", "int"),
    "name": ("name", "str"), "gpu_name": ("name", "str"),
    "uuid": ("uuid", "str"), "gpu_uuid": ("uuid", "str"),
    "serial": ("serial", "str"), "gpu_serial": ("serial", "str"),
    "pci.bus_id": ("pci_bus_id", "bus"), "gpu_bus_id": ("pci_bus_id", "bus"),
    "pci.device_id": ("pci_device_id", "dev"),
    "vbios_version": ("vbios_version", "str"),
    "persistence_mode": ("persistence_mode", "bool"),
    "power.draw": ("power_draw_w", "float"), "power.draw.average": ("power_draw_w", "float"),
    "power.limit": ("power_limit_w", "float"), "enforced.power.limit": ("power_limit_w", "float"),
    "power.default_limit": ("power_default_limit_w", "float"), "power.max_limit": ("power_max_limit_w", "float"),
    "clocks.sm": ("sm_clock_mhz", "float"), "clocks.current.sm": ("sm_clock_mhz", "float"),
    "clocks.mem": ("mem_clock_mhz", "float"), "clocks.current.memory": ("mem_clock_mhz", "float"),
    "clocks.max.sm": ("max_sm_clock_mhz", "float"), "clocks.max.graphics": ("max_sm_clock_mhz", "float"),
    "temperature.gpu": ("temperature_c", "float"),
    "utilization.gpu": ("utilization_pct", "float"),
    "clocks_event_reasons.active": ("clock_event_reasons", "hex"),
    "clocks_throttle_reasons.active": ("clock_event_reasons", "hex"),
    "ecc.errors.corrected.volatile.total": ("ecc_volatile_corrected", "int"),
    "ecc.errors.uncorrected.volatile.total": ("ecc_volatile_uncorrected", "int"),
    "ecc.errors.corrected.aggregate.total": ("ecc_aggregate_corrected", "int"),
    "ecc.errors.uncorrected.aggregate.total": ("ecc_aggregate_uncorrected", "int"),
    "retired_pages.single_bit_ecc.count": ("retired_pages_sbe", "int"), "retired_pages.sbe": ("retired_pages_sbe", "int"),
    "retired_pages.double_bit.count": ("retired_pages_dbe", "int"), "retired_pages.dbe": ("retired_pages_dbe", "int"),
    "retired_pages.pending": ("retired_pages_pending", "bool"),
    "remapped_rows.correctable": ("remap_correctable", "int"),
    "remapped_rows.uncorrectable": ("remap_uncorrectable", "int"),
    "remapped_rows.pending": ("remap_pending", "bool"),
    "remapped_rows.failure": ("remap_failure", "bool"),
    "pcie.link.gen.current": ("pcie_gen", "int"), "pcie.link.gen.gpucurrent": ("pcie_gen", "int"),
    "pcie.link.gen.max": ("pcie_gen_max", "int"), "pcie.link.gen.gpumax": ("pcie_gen_max", "int"),
    "pcie.link.width.current": ("pcie_width", "int"), "pcie.link.width.max": ("pcie_width_max", "int"),
}


@kind("nvidia-smi-query-gpu", path="gpu/query-gpu.csv", priority=55,
      description="nvidia-smi --query-gpu=... --format=csv (with header)")
def is_query_gpu_csv(text: str) -> bool:
    for line in text.split("\n"):
        if "," in line:
            cols = [c.strip().split(" [")[0].lower() for c in line.split(",")]
            return sum(c in _QUERY_FIELDS for c in cols) >= max(1, len(cols) // 2) and len(cols) >= 1
    return False


def _query_value(raw: str, typ: str) -> Any:
    s = raw.strip()
    if s.lower() in _NA:
        return None
    if typ == "str":
        return s
    if typ == "bus":
        return norm_bus_id(s)
    if typ == "dev":
        return norm_device_id(s)
    if typ == "bool":
        return yes_no(s)
    if typ == "hex":
        try:
            return int(s, 16)
        except ValueError:
            return None
    if typ == "int":
        return integer(s)
    return num(s)


def parse_query_gpu_csv(text: str) -> GpuInventory:
    """`nvidia-smi --query-gpu=... --format=csv` -> GpuInventory (needs the header line)."""
    t = clean(text)
    header: list[str] | None = None
    cols: list[tuple[str, str] | None] = []
    inv = GpuInventory("query-gpu")
    elided = False
    for line in t.split("\n"):
        s = line.strip()
        if s.startswith(("[...]", "...")):
            elided = True
            continue
        if not s or s.startswith(("$", "#")):
            continue
        try:
            row = next(csv.reader(io.StringIO(s), skipinitialspace=True), [])
        except csv.Error as e:   # a field past csv's limit (128 KiB): no nvidia-smi value is
            raise ParseError(f"not nvidia-smi --query-gpu CSV: {e}") from None
        if header is None:
            names = [c.strip().split(" [")[0].lower() for c in row]
            if sum(n in _QUERY_FIELDS for n in names) >= max(1, len(names) // 2):
                header = names
                cols = [_QUERY_FIELDS.get(n) for n in names]
            continue
        if len(row) != len(header):
            inv.warnings.append(f"skipped row with {len(row)} columns, header has {len(header)}: {s[:80]}")
            continue
        rec = GpuRecord()
        for raw, col in zip(row, cols):
            if col is not None:
                setattr(rec, col[0], _query_value(raw, col[1]))
        if rec.index is None and not elided:  # after an elision the position is not the index
            rec.index = len(inv.gpus)
        inv.gpus.append(rec)
    if header is None:
        raise ParseError("no --query-gpu CSV header line (use --format=csv, not csv,noheader)")
    if not inv.gpus:
        raise ParseError("--query-gpu CSV has a header but no GPU rows")
    if elided:
        inv.warnings.append("rows elided ('[...]'): GPU count is not known from this output")
    return inv


# ---------------------------------------------------------------- topo -m

# Closest first. NV# (NVLink) is closer than any PCIe path.
LINK_RANK = {"X": 0, "NV": 1, "PIX": 2, "PXB": 3, "PHB": 4, "NODE": 5, "SOC": 6, "SYS": 6}
_DEV = re.compile(r"^(GPU\d+|NIC\d+|mlx5_\d+|[a-z]+\d+_\d+)$")


def link_rank(v: str) -> int:
    if v.startswith("NV"):
        return LINK_RANK["NV"]
    return LINK_RANK.get(v, 9)


@dataclass
class Topology:
    devices: list[str] = field(default_factory=list)
    links: dict[tuple[str, str], str] = field(default_factory=dict)
    nic_names: dict[str, str] = field(default_factory=dict)   # NIC0 -> mlx5_0
    cpu_affinity: dict[str, str] = field(default_factory=dict)
    numa_affinity: dict[str, str] = field(default_factory=dict)

    @property
    def gpus(self) -> list[str]:
        return [d for d in self.devices if d.startswith("GPU")]

    @property
    def nics(self) -> list[str]:
        return [d for d in self.devices if not d.startswith("GPU")]

    def nic_name(self, nic: str) -> str:
        return self.nic_names.get(nic, nic)

    def nearest_nic(self, gpu: str) -> tuple[str | None, str | None]:
        """(NIC, link) of the GPU's closest NIC, or (None, None) without NICs."""
        best: tuple[int, str, str] | None = None
        for n in self.nics:
            v = self.links.get((gpu, n))
            if v is None:
                continue
            cand = (link_rank(v), n, v)
            if best is None or cand[0] < best[0]:
                best = cand
        return (best[1], best[2]) if best else (None, None)


@kind("nvidia-smi-topo", path="gpu/topo.txt", priority=60, description="nvidia-smi topo -m")
def is_topo(text: str) -> bool:
    # one line, scanned once (a nested `(\s+\S+)*` was exponential on a line without the header)
    return bool(re.search(r"^[ \t]*GPU0[ \t](?:.*[ \t])?CPU Affinity", text, re.M))


def parse_topo(text: str) -> Topology:
    t = clean(text)
    lines = t.split("\n")
    topo = Topology()
    hi = next((i for i, ln in enumerate(lines) if re.match(r"^\s*GPU0\s", ln) and "Affinity" in ln), None)
    if hi is None:
        raise ParseError("no topology matrix header (a line starting 'GPU0 ... CPU Affinity'): not nvidia-smi topo -m")
    topo.devices = [tok for tok in lines[hi].split() if _DEV.match(tok)]
    n = len(topo.devices)
    for ln in lines[hi + 1:]:
        toks = ln.split()
        if not toks:
            continue
        if toks[0] in ("Legend:", "NIC"):
            break
        if toks[0] not in topo.devices:
            continue
        if len(toks) < n + 1:
            raise ParseError(f"topology row {toks[0]} has {len(toks) - 1} columns, expected {n} (output truncated?)")
        row = toks[0]
        for dev, v in zip(topo.devices, toks[1:n + 1]):
            topo.links[(row, dev)] = v
        rest = toks[n + 1:]
        if row.startswith("GPU") and rest:
            topo.cpu_affinity[row] = rest[0]
            if len(rest) > 1:
                topo.numa_affinity[row] = rest[1]
    for m in re.finditer(r"^[ \t]*(NIC\d+)[ \t]*:[ \t]*(\S+)[ \t]*$", t, re.M):
        topo.nic_names[m.group(1)] = m.group(2)
    if not topo.gpus:
        raise ParseError("topology matrix names no GPU")
    missing = [g for g in topo.gpus if (g, g) not in topo.links]
    if missing:
        raise ParseError(f"topology matrix is missing rows for {', '.join(missing)} (output truncated?)")
    return topo
