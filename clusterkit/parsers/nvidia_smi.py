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
from typing import Any, Callable

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import MAX_LINE_CHARS, normalize
from clusterkit.parsers import ParseError
from clusterkit.parsers.gpu_records import (
    CLOCK_REASON_BITS, GpuInventory, GpuRecord, norm_bus_id, norm_device_id,
)
from clusterkit.parsers.nvidia_smi_errors import apply_messages, scan_messages

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


_YES_NO = re.compile(r"(not active|yes|no|enabled|disabled|active|on|off|true|false)\b")


def yes_no(v: Any) -> bool | None:
    """'Yes' -> True; a value the user marked ('Yes   <===') reads the same."""
    if v is None or isinstance(v, dict):
        return None
    m = _YES_NO.match(str(v).strip().lower())
    if not m:
        return None
    return m.group(1) in ("yes", "enabled", "active", "on", "true")


# ---------------------------------------------------------------- nvidia-smi -q

_GPU_HEADER = re.compile(r"^GPU\s+([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])\s*$")
# the key ends in a non-blank (`\S(?:.*?\S)?`): each blank run is read once, not once per
# candidate end of the key
_KV = re.compile(r"^(\s*)(\S(?:.*?\S)?)\s*:(?:\s(.*))?$")


NVIDIA_SMI_Q = declare("nvidia-smi-q", "gpu/nvidia-smi-q.txt", command=("nvidia-smi", "-q"), priority=60, description="nvidia-smi -q / -a (full or partial, one or many GPUs)")


@NVIDIA_SMI_Q.recognizer
def is_nvidia_smi_q(text: str) -> bool:
    return bool(re.search(r"^=+NVSMI LOG=+[ \t]*$", text, re.M)) or (
        bool(re.search(r"^GPU [0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7][ \t]*$", text, re.M))
        and bool(re.search(r"^[ \t]+(Product Name|Serial Number|GPU UUID|Bus Id)[ \t]*:", text, re.M))
    ) or bool(_fragment_sections(text.split("\n")))


# Sections of a GPU's -q record, and keys found directly under them: a paste of a few sections
# (an ECC block, the clocks) is -q without its headers. Both must match, so other tools'
# 'Section' + indented 'Key : value' lines (dmidecode, ipmitool) are not taken for -q.
_Q_SECTIONS = {
    "ECC Errors": ("Volatile", "Aggregate", "SRAM Correctable", "Single Bit", "Double Bit"),
    "Clocks Throttle Reasons": ("Idle", "Applications Clocks Setting", "SW Power Cap", "HW Slowdown"),
    "Clocks Event Reasons": ("Idle", "Applications Clocks Setting", "SW Power Cap", "HW Slowdown"),
    "Remapped Rows": ("Correctable Error", "Uncorrectable Error", "Pending", "Remapping Failure Occurred"),
    "Retired Pages": ("Single Bit ECC", "Double Bit ECC", "Pending Page Blacklist", "Pending Page Retirement"),
    "Clocks": ("Graphics", "SM", "Memory", "Video"),
    "Max Clocks": ("Graphics", "SM", "Memory", "Video"),
    "GPU Power Readings": ("Power Draw", "Average Power Draw", "Current Power Limit", "Power Management"),
    "Power Readings": ("Power Draw", "Power Limit", "Enforced Power Limit", "Power Management"),
    "Temperature": ("GPU Current Temp", "GPU Shutdown Temp", "GPU Slowdown Temp"),
    "PCI": ("Bus", "Bus Id", "Device Id", "GPU Link Info"),
    "GPU Reset Status": ("Reset Required", "Drain and Reset Recommended"),
    "Fabric": ("State", "Status", "CliqueId", "ClusterUUID"),
}


def _fragment_sections(lines: list[str]) -> list[str]:
    """Names of -q sections (header at column 0, a known key indented under it) in `lines`."""
    found = []
    for i, line in enumerate(lines[:-1]):
        keys = _Q_SECTIONS.get(line.rstrip())
        if keys is None:
            continue
        nxt = next((l for l in lines[i + 1:i + 4] if l.strip()), "")
        m = _KV.match(nxt)
        key = m.group(2).strip() if m else nxt.strip()
        if nxt[:1].isspace() and key in keys:
            found.append(line.strip())
    return found


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


def get_path(d: dict[str, Any], *path: str) -> Any:
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


def ecc_sum(sec: Any, uncorrectable: bool) -> int | None:
    """Sum one direction of an ECC 'Volatile'/'Aggregate' section, any driver's layout
    (-q's 'SRAM Uncorrectable' and -q -x's 'sram_uncorrectable' alike)."""
    if not isinstance(sec, dict):
        return None
    total: int | None = None
    sec = {k.lower().replace("_", " "): v for k, v in sec.items()}
    # Pre-A100 layout: 'Single Bit'/'Double Bit' sub-sections with a 'Total'.
    old = sec.get("double bit" if uncorrectable else "single bit")
    if isinstance(old, dict):
        return integer({k.lower(): v for k, v in old.items()}.get("total"))
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


def text_value(v: Any) -> str | None:
    return None if not isinstance(v, str) or v.strip().lower() in _NA else v.strip()


def _retired(sec: Any, key: str) -> int | None:
    v = get_path(sec, key) if isinstance(sec, dict) else None
    if isinstance(v, dict):  # older: "Single Bit ECC" { "Count": n }
        return integer(v.get("Count"))
    return integer(v)


_REASON_NAMES = {
    "idle": "gpu_idle", "gpu idle": "gpu_idle", "applications clocks setting": "applications_clocks",
    "sw power cap": "sw_power_cap", "hw slowdown": "hw_slowdown", "sync boost": "sync_boost",
    "sw thermal slowdown": "sw_thermal", "hw thermal slowdown": "hw_thermal",
    "hw power brake slowdown": "hw_power_brake", "display clock setting": "display_clock",
    "display clocks setting": "display_clock",
}


def clock_reasons(sec: Any) -> int | None:
    """The clock event reason mask of a -q 'Clocks Event Reasons' section or a -q -x <clocks_event_reasons>."""
    if not isinstance(sec, dict):
        return None
    mask, seen = 0, False

    def walk(d: dict[str, Any]) -> None:
        nonlocal mask, seen
        for k, v in d.items():
            if isinstance(v, dict):  # "HW Slowdown" may nest its detail reasons
                walk(v)
                continue
            key = re.sub(r"^clocks_(?:event|throttle)_reason_", "", k.strip()).replace("_", " ").lower()
            bit = _REASON_NAMES.get(key)
            on = yes_no(v) if bit else None
            if on is not None:
                seen = True
                mask |= CLOCK_REASON_BITS[bit] if on else 0

    walk(sec)
    return mask if seen else None


def fabric_state_value(v: Any) -> str | None:
    t = text_value(v)
    return t.lower().replace(" ", "_") if t else None


# GpuRecord field -> (converter, path in one GPU's tree); a path element may list alternatives with '|'.
FieldSpec = dict[str, tuple[Callable[[Any], Any], tuple[str, ...]]]


def ecc_reader(uncorrectable: bool) -> Callable[[Any], int | None]:
    return lambda sec: ecc_sum(sec, uncorrectable)


def record_from_tree(g: dict[str, Any], spec: FieldSpec, **known: Any) -> GpuRecord:
    """One GPU's record from its tree (-q text or -q -x XML alike): each field read at its path."""
    r = GpuRecord(**known, **{f: conv(get_path(g, *path)) for f, (conv, path) in spec.items()})
    if r.fabric_state is None:   # the status means nothing without a state
        r.fabric_status = None
    r.unknown_error_fields = _unknown_errors(g)
    return r


def _unknown_errors(tree: dict[str, Any], path: str = "") -> list[str]:
    """Every field NVML answered 'Unknown Error' for ('ECC Mode > Current')."""
    out: list[str] = []
    for k, v in tree.items():
        where = f"{path} > {k}" if path else str(k)
        if isinstance(v, dict):
            out += _unknown_errors(v, where)
        elif isinstance(v, str) and v.strip().lower() in ("unknown error", "[unknown error]"):
            out.append(where)
    return out


_Q_FIELDS: FieldSpec = {
    "name": (text_value, ("Product Name",)),
    "uuid": (text_value, ("GPU UUID",)),
    "serial": (text_value, ("Serial Number",)),
    "pci_device_id": (norm_device_id, ("PCI", "Device Id")),
    "vbios_version": (text_value, ("VBIOS Version",)),
    "persistence_mode": (yes_no, ("Persistence Mode",)),
    "ecc_enabled": (yes_no, ("ECC Mode|Ecc Mode", "Current")),
    "power_draw_w": (num, ("GPU Power Readings|Power Readings", "Power Draw|Average Power Draw|Instantaneous Power Draw")),
    "power_limit_w": (num, ("GPU Power Readings|Power Readings", "Current Power Limit|Enforced Power Limit|Power Limit")),
    "power_default_limit_w": (num, ("GPU Power Readings|Power Readings", "Default Power Limit")),
    "power_max_limit_w": (num, ("GPU Power Readings|Power Readings", "Max Power Limit")),
    "sm_clock_mhz": (num, ("Clocks", "SM")),
    "mem_clock_mhz": (num, ("Clocks", "Memory")),
    "max_sm_clock_mhz": (num, ("Max Clocks", "SM")),
    "temperature_c": (num, ("Temperature", "GPU Current Temp")),
    "utilization_pct": (num, ("Utilization", "Gpu|GPU")),
    "clock_event_reasons": (clock_reasons, ("Clocks Event Reasons|Clocks Throttle Reasons|Clocks Reasons",)),
    "ecc_volatile_corrected": (ecc_reader(False), ("ECC Errors", "Volatile")),
    "ecc_volatile_uncorrected": (ecc_reader(True), ("ECC Errors", "Volatile")),
    "ecc_aggregate_corrected": (ecc_reader(False), ("ECC Errors", "Aggregate")),
    "ecc_aggregate_uncorrected": (ecc_reader(True), ("ECC Errors", "Aggregate")),
    "retired_pages_sbe": (lambda sec: _retired(sec, "Single Bit ECC"), ("Retired Pages",)),
    "retired_pages_dbe": (lambda sec: _retired(sec, "Double Bit ECC"), ("Retired Pages",)),
    "retired_pages_pending": (yes_no, ("Retired Pages", "Pending Page Blacklist|Pending Page Retirement|Pending")),
    "remap_correctable": (integer, ("Remapped Rows", "Correctable Error")),
    "remap_uncorrectable": (integer, ("Remapped Rows", "Uncorrectable Error")),
    "remap_pending": (yes_no, ("Remapped Rows", "Pending")),
    "remap_failure": (yes_no, ("Remapped Rows", "Remapping Failure Occurred")),
    "pcie_gen": (integer, ("PCI", "GPU Link Info", "PCIe Generation", "Current")),
    "pcie_gen_max": (integer, ("PCI", "GPU Link Info", "PCIe Generation", "Max")),
    "pcie_width": (integer, ("PCI", "GPU Link Info", "Link Width", "Current")),
    "pcie_width_max": (integer, ("PCI", "GPU Link Info", "Link Width", "Max")),
    "reset_required": (yes_no, ("GPU Reset Status", "Reset Required")),
    "drain_reset_recommended": (yes_no, ("GPU Reset Status", "Drain and Reset Recommended")),
    "recovery_action": (text_value, ("GPU Recovery Action",)),
    "mig_enabled": (yes_no, ("MIG Mode", "Current")),
    "fabric_state": (fabric_state_value, ("Fabric", "State")),
    "fabric_status": (text_value, ("Fabric", "Status")),
}


def _gpu_from_q(bus: str | None, g: dict[str, Any], index: int | None) -> GpuRecord:
    return record_from_tree(g, _Q_FIELDS, index=index, pci_bus_id=norm_bus_id(get_path(g, "PCI", "Bus Id") or bus))


@NVIDIA_SMI_Q.parser
def parse_nvidia_smi_q(text: str) -> GpuInventory:
    """Full or partial `nvidia-smi -q` (any driver era, or some sections of one GPU's record without
    any header) -> GpuInventory. ParseError if neither a GPU block nor a known section is there."""
    t = normalize(text)
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
    messages = scan_messages(t)
    inv = GpuInventory("nvidia-smi-q", [], text_value(top.get("Driver Version")), text_value(top.get("CUDA Version")),
                       attached=attached)
    if not blocks and not messages:
        if "NVSMI LOG" in t and attached == 0:
            inv.no_gpu = True
            return inv
        if "NVSMI LOG" not in t and _fragment_sections(lines):
            inv.gpus.append(_gpu_from_q(None, _tree(lines), None))
            inv.warnings.append("sections of one GPU's -q record without its 'GPU <bus id>' header: the GPU is not identified")
            return inv
        raise ParseError("no 'GPU 0000xxxx:xx:xx.x' block found: not nvidia-smi -q output (or cut before the first GPU)")
    for i, (bus, body) in enumerate(blocks):
        tree = _tree(body)
        if not tree:
            inv.warnings.append(f"GPU {bus}: empty block (output truncated?)")
        inv.gpus.append(_gpu_from_q(bus, tree, i))
    if attached is not None and attached > len(blocks):
        inv.warnings.append(f"only {len(blocks)} of {attached} attached GPU blocks present (output trimmed?)")
    # Partial output with a trimmed block list: indices are positions in the output,
    # not NVML indices, unless every attached GPU is present (the usual case).
    return apply_messages(inv, messages)


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
    "reset_status.reset_required": ("reset_required", "bool"),
    "reset_status.drain_and_reset_recommended": ("drain_reset_recommended", "bool"),
    "gpu_recovery_action": ("recovery_action", "str"),
}


# What the gpu.query_gpu probe asks for: every field the parser reads, so any node gives the same columns.
QUERY_FIELDS = ("index,name,pci.bus_id,pci.device_id,serial,uuid,vbios_version,driver_version,persistence_mode,"
                "power.draw,power.limit,power.default_limit,power.max_limit,clocks.sm,clocks.max.sm,temperature.gpu,"
                "utilization.gpu,clocks_event_reasons.active,ecc.errors.uncorrected.volatile.total,"
                "ecc.errors.uncorrected.aggregate.total,pcie.link.gen.current,pcie.link.gen.max,"
                "pcie.link.width.current,pcie.link.width.max")
QUERY_GPU = declare("nvidia-smi-query-gpu", "gpu/query-gpu.csv", command=("nvidia-smi", f"--query-gpu={QUERY_FIELDS}", "--format=csv"), priority=55, description="nvidia-smi --query-gpu=... --format=csv (with header)")


# A --query-gpu header names fields ('pci.bus_id', 'power.draw [W]'); nvidia-smi 590 knows about 200 of
# them, so a header is recognized by its shape and a few fields this parser reads, not by reading them all.
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]*(?:\.[A-Za-z0-9_]+)*$")


def _query_header(row: list[str]) -> list[str] | None:
    """The lower-cased field names of a --query-gpu header row, or None if `row` is not one."""
    names = [c.strip().split(" [")[0] for c in row]
    known = sum(n.lower() in _QUERY_FIELDS for n in names)
    shaped = sum(bool(_FIELD_NAME.match(n)) for n in names)
    if known >= max(1, min(3, len(names) // 2)) and shaped >= 0.8 * len(names):
        return [n.lower() for n in names]
    return None


# the command line pasted above a `--format=csv,noheader` output names its columns
_QUERY_COMMAND = re.compile(r"--query-gpu[= ](?P<fields>[\w.,]+)")
_NOHEADER_FORMAT = re.compile(r"--format[= ]\S*noheader")


def _command_header(line: str) -> list[str] | None:
    """The field names of an `nvidia-smi --query-gpu=... --format=csv,noheader` command line, else None."""
    m = _QUERY_COMMAND.search(line[:MAX_LINE_CHARS])
    if not m or not _NOHEADER_FORMAT.search(line[:MAX_LINE_CHARS]):
        return None
    return _query_header(m["fields"].split(","))


@QUERY_GPU.recognizer
def is_query_gpu_csv(text: str) -> bool:
    """The header is the first CSV line that is not a comment or a command; or the command of a noheader output."""
    for line in text.split("\n"):
        if "--query-gpu" in line:
            if _command_header(line) is not None:
                return True
            continue
        if "," in line and not line.lstrip().startswith(("#", "$")):
            return _query_header(next(csv.reader(io.StringIO(line.strip()), skipinitialspace=True), [])) is not None
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


@QUERY_GPU.parser
def parse_query_gpu_csv(text: str) -> GpuInventory:
    """`nvidia-smi --query-gpu=... --format=csv` -> GpuInventory (needs the header line)."""
    t = normalize(text)
    header: list[str] | None = None
    cols: list[tuple[str, str] | None] = []
    inv = GpuInventory("query-gpu")
    elided = False
    # the command of a noheader output (a bare line, or a prompt that normalization took off) names the columns
    named = next((h for l in text.split("\n") if "--query-gpu" in l and (h := _command_header(l))), None)
    if named:
        header, cols = named, [_QUERY_FIELDS.get(n) for n in named]
    for line in t.split("\n"):
        s = line.strip()
        if s.startswith(("[...]", "...")):
            elided = True
            continue
        if not s or s.startswith(("$", "#")) or "--query-gpu" in s:
            continue
        try:
            row = next(csv.reader(io.StringIO(s), skipinitialspace=True), [])
        except csv.Error as e:   # a field past csv's limit (128 KiB): no nvidia-smi value is
            raise ParseError(f"not nvidia-smi --query-gpu CSV: {e}") from None
        if header is None:
            header = _query_header(row)
            cols = [_QUERY_FIELDS.get(n) for n in header or []]
            continue
        if len(row) > len(header) and cols and cols[-1] is not None and cols[-1][1] == "str":
            # a free-text last column (a recovery action, a name) with a comma in what follows it, such as
            # a note the author typed after the value: the surplus belongs to that column
            row = row[:len(header) - 1] + [", ".join(row[len(header) - 1:])]
        if len(row) != len(header):
            inv.warnings.append(f"skipped row with {len(row)} columns, header has {len(header)}: {s[:80]}")
            continue
        rec = GpuRecord()
        for name, raw, col in zip(header, row, cols):
            if raw.strip().lower() in ("[unknown error]", "unknown error"):
                rec.unknown_error_fields.append(name)
            if col is not None:
                setattr(rec, col[0], _query_value(raw, col[1]))
        if "driver_version" in header and inv.driver_version is None:
            inv.driver_version = text_value(row[header.index("driver_version")])
        if rec.index is None and not elided:  # after an elision the position is not the index
            rec.index = len(inv.gpus)
        inv.gpus.append(rec)
    messages = scan_messages(t)
    if (header is None or not inv.gpus) and messages.failure:
        return apply_messages(inv, messages)
    if header is None:
        raise ParseError("no --query-gpu CSV header line (use --format=csv, or paste the command of a noheader output)")
    if not inv.gpus and not messages:
        raise ParseError("--query-gpu CSV has a header but no GPU rows")
    if elided:
        inv.warnings.append("rows elided ('[...]'): GPU count is not known from this output")
    return apply_messages(inv, messages)


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
    missing_rows: list[str] = field(default_factory=list)     # devices of the header with no (whole) row: a cut paste

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


TOPO = declare("nvidia-smi-topo", "gpu/topo.txt", command=("nvidia-smi", "topo", "-m"), priority=60, description="nvidia-smi topo -m")


@TOPO.recognizer
def is_topo(text: str) -> bool:
    # one line, scanned once (a nested `(\s+\S+)*` was exponential on a line without the header)
    return bool(re.search(r"^[ \t]*GPU0[ \t](?:.*[ \t])?CPU Affinity", text, re.M))


@TOPO.parser
def parse_topo(text: str) -> Topology:
    t = normalize(text)
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
            continue       # a row cut mid-way: judged as missing below
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
    topo.missing_rows = [g for g in topo.gpus if (g, g) not in topo.links]
    if len(topo.missing_rows) == len(topo.gpus):
        raise ParseError("topology matrix has no whole GPU row (output cut after the header?)")
    return topo
