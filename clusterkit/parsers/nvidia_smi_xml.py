"""`nvidia-smi -q -x`: the XML log (DTDs nvsmi_device_v10 to v12 and later), read into the GpuInventory
records `nvidia-smi -q` gives, so every gpu.* check reads it unchanged.

Parsed with the standard library's expat in the defusedxml manner: entity declarations (internal or
external) are refused, no external DTD is fetched, and the input is size-bounded. A paste cut in the
middle keeps its complete <gpu> elements. Old and new element names are both read
(`clocks_throttle_reasons` before driver 535, `clocks_event_reasons` after; `power_readings` vs
`gpu_power_readings`; `power_limit`/`enforced_power_limit` vs `current_power_limit`).
"""

from __future__ import annotations

from xml.parsers import expat
from typing import Any

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import normalize
from clusterkit.parsers import ParseError
from clusterkit.parsers.gpu_records import GpuInventory, GpuProcess, GpuRecord, norm_bus_id, norm_device_id
from clusterkit.parsers.nvidia_smi import (
    FieldSpec, clock_reasons, ecc_reader, fabric_state_value, get_path, integer, num, record_from_tree, text_value,
    yes_no,
)
from clusterkit.parsers.nvidia_smi_errors import apply_messages, scan_messages

MAX_XML_CHARS = 16 * 1024 * 1024     # 8 GPUs with every supported clock are under 2 MB
_MAX_DEPTH = 24                      # nvsmi logs nest 6 deep; deeper elements are ignored

NVIDIA_SMI_Q_XML = declare("nvidia-smi-q-xml", "gpu/nvidia-smi-q.xml", command=("nvidia-smi", "-q", "-x"), priority=65,
                           description="nvidia-smi -q -x (XML log)")


@NVIDIA_SMI_Q_XML.recognizer
def is_nvidia_smi_xml(text: str) -> bool:
    return "<nvidia_smi_log" in text[:65536]


class _Refused(Exception):
    pass


def _refuse(*_a: Any) -> None:
    raise _Refused("XML entity declarations are refused (nvidia-smi never writes them)")


class _Node:
    __slots__ = ("tag", "attrib", "kids", "text")

    def __init__(self, tag: str, attrib: dict[str, str]):
        self.tag, self.attrib, self.kids, self.text = tag, attrib, [], []


def _parse_xml(text: str) -> _Node:
    """expat straight into a light tree: no entity may be declared or resolved, no DTD is read (defusedxml's
    rules); elements nested deeper than _MAX_DEPTH are not kept."""
    p = expat.ParserCreate()
    p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    p.EntityDeclHandler = _refuse
    p.UnparsedEntityDeclHandler = _refuse
    p.ExternalEntityRefHandler = _refuse
    top = _Node("", {})
    stack = [top]

    def start(tag: str, attrib: dict[str, str]) -> None:
        n = _Node(tag, attrib)
        if len(stack) <= _MAX_DEPTH:
            stack[-1].kids.append(n)
        stack.append(n)

    def end(_tag: str) -> None:
        stack.pop()

    def chars(data: str) -> None:
        stack[-1].text.append(data)

    p.StartElementHandler, p.EndElementHandler, p.CharacterDataHandler = start, end, chars
    p.Parse(text, True)
    if not top.kids:
        raise expat.ExpatError("no root element")
    return top.kids[0]


def _tree(e: _Node) -> Any:
    """Element -> its text, or a dict of children (repeated tags -> list), with `@id` for the gpu id."""
    if not e.kids:
        return "".join(e.text).strip()
    d: dict[str, Any] = {f"@{k}": v for k, v in e.attrib.items()}
    for k in e.kids:
        v = _tree(k)
        if k.tag in d:
            d[k.tag] = d[k.tag] if isinstance(d[k.tag], list) else [d[k.tag]]
            d[k.tag].append(v)
        else:
            d[k.tag] = v
    return d


_POWER = "gpu_power_readings|power_readings"
_LINK = ("pci", "pci_gpu_link_info")
# The -q -x element paths of every GpuRecord field (nvidia_smi.py holds the -q text ones).
_XML_FIELDS: FieldSpec = {
    "name": (text_value, ("product_name",)),
    "uuid": (text_value, ("uuid",)),
    "serial": (text_value, ("serial",)),
    "pci_device_id": (lambda v: norm_device_id(text_value(v)), ("pci", "pci_device_id")),
    "vbios_version": (text_value, ("vbios_version",)),
    "persistence_mode": (yes_no, ("persistence_mode",)),
    "ecc_enabled": (yes_no, ("ecc_mode", "current_ecc")),
    "power_draw_w": (num, (_POWER, "power_draw|average_power_draw|instant_power_draw")),
    "power_limit_w": (num, (_POWER, "current_power_limit|enforced_power_limit|power_limit")),
    "power_default_limit_w": (num, (_POWER, "default_power_limit")),
    "power_max_limit_w": (num, (_POWER, "max_power_limit")),
    "sm_clock_mhz": (num, ("clocks", "sm_clock")),
    "mem_clock_mhz": (num, ("clocks", "mem_clock")),
    "max_sm_clock_mhz": (num, ("max_clocks", "sm_clock")),
    "temperature_c": (num, ("temperature", "gpu_temp")),
    "utilization_pct": (num, ("utilization", "gpu_util")),
    "clock_event_reasons": (clock_reasons, ("clocks_event_reasons|clocks_throttle_reasons",)),
    "ecc_volatile_corrected": (ecc_reader(False), ("ecc_errors", "volatile")),
    "ecc_volatile_uncorrected": (ecc_reader(True), ("ecc_errors", "volatile")),
    "ecc_aggregate_corrected": (ecc_reader(False), ("ecc_errors", "aggregate")),
    "ecc_aggregate_uncorrected": (ecc_reader(True), ("ecc_errors", "aggregate")),
    "retired_pages_sbe": (integer, ("retired_pages", "multiple_single_bit_retirement", "retired_count")),
    "retired_pages_dbe": (integer, ("retired_pages", "double_bit_retirement", "retired_count")),
    "retired_pages_pending": (yes_no, ("retired_pages", "pending_blacklist|pending_retirement")),
    "remap_correctable": (integer, ("remapped_rows", "remapped_row_corr")),
    "remap_uncorrectable": (integer, ("remapped_rows", "remapped_row_unc")),
    "remap_pending": (yes_no, ("remapped_rows", "remapped_row_pending")),
    "remap_failure": (yes_no, ("remapped_rows", "remapped_row_failure")),
    "pcie_gen": (integer, (*_LINK, "pcie_gen", "current_link_gen")),
    "pcie_gen_max": (integer, (*_LINK, "pcie_gen", "max_link_gen")),
    "pcie_width": (integer, (*_LINK, "link_widths", "current_link_width")),
    "pcie_width_max": (integer, (*_LINK, "link_widths", "max_link_width")),
    "reset_required": (yes_no, ("gpu_reset_status", "reset_required")),
    "drain_reset_recommended": (yes_no, ("gpu_reset_status", "drain_and_reset_recommended")),
    "recovery_action": (text_value, ("gpu_recovery_action",)),
    "mig_enabled": (yes_no, ("mig_mode", "current_mig")),
    "fabric_state": (fabric_state_value, ("fabric", "state")),
    "fabric_status": (text_value, ("fabric", "status")),
}


def _listed(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v] if v not in (None, "") else []


def _gpu(g: dict[str, Any], index: int | None) -> GpuRecord:
    return record_from_tree(g, _XML_FIELDS, index=index, pci_bus_id=norm_bus_id(get_path(g, "pci", "pci_bus_id") or g.get("@id")))


def _processes(g: dict[str, Any], index: int | None) -> list[GpuProcess]:
    out = []
    procs = g.get("processes")
    for p in _listed(procs.get("process_info") if isinstance(procs, dict) else None):
        if isinstance(p, dict):
            out.append(GpuProcess(index, integer(p.get("pid")), text_value(p.get("type")),
                                  str(p.get("process_name") or ""), num(p.get("used_memory"))))
    return out


def _root(t: str) -> tuple[_Node, bool]:
    """The parsed log and whether it was cut (a paste that stops mid-element keeps its whole GPUs)."""
    start = t.find("<?xml")
    start = start if start >= 0 else t.find("<!DOCTYPE")
    start = start if start >= 0 else t.find("<nvidia_smi_log")
    body = t[max(start, 0):]
    end = body.rfind("</nvidia_smi_log>")
    body = body[:end + len("</nvidia_smi_log>")] if end >= 0 else body
    try:
        return _parse_xml(body), False
    except expat.ExpatError as first:
        cut = body.rfind("</gpu>")
        if cut < 0:
            raise ParseError(f"not well-formed nvidia-smi XML ({first})") from None
        try:
            return _parse_xml(body[:cut + len("</gpu>")] + "\n</nvidia_smi_log>"), True
        except expat.ExpatError:
            raise ParseError(f"not well-formed nvidia-smi XML ({first})") from None


@NVIDIA_SMI_Q_XML.parser
def parse_nvidia_smi_xml(text: str) -> GpuInventory:
    """`nvidia-smi -q -x` -> GpuInventory (same records as -q). ParseError for anything else."""
    if len(text) > MAX_XML_CHARS:
        raise ParseError(f"{len(text)} characters is more than the {MAX_XML_CHARS} an nvidia-smi XML log can hold")
    t = normalize(text)
    if "<nvidia_smi_log" not in t:
        messages = scan_messages(t)
        if messages.failure:
            return apply_messages(GpuInventory("nvidia-smi-q-xml"), messages)
        raise ParseError("no <nvidia_smi_log> element: not nvidia-smi -q -x output")
    try:
        root, cut = _root(t)
    except _Refused as e:
        raise ParseError(str(e)) from None
    except (ValueError, RecursionError) as e:
        raise ParseError(f"unreadable nvidia-smi XML ({e})") from None
    if root.tag != "nvidia_smi_log":
        raise ParseError(f"root element <{root.tag}>, expected <nvidia_smi_log>")
    doc = _tree(root)
    doc = doc if isinstance(doc, dict) else {}
    gpus = [g for g in _listed(doc.get("gpu")) if isinstance(g, dict)]
    attached = integer(doc.get("attached_gpus"))
    inv = GpuInventory("nvidia-smi-q-xml", [], text_value(doc.get("driver_version")),
                       text_value(doc.get("cuda_version")), attached=attached, processes=[])
    complete = attached is None or attached == len(gpus) + len(scan_messages(t).unreadable)
    for i, g in enumerate(gpus):
        # GPUs are listed in NVML index order; in a trimmed log the position is not the index.
        rec = _gpu(g, i if complete and not cut else None)
        inv.gpus.append(rec)
        inv.processes += _processes(g, rec.index)
    apply_messages(inv, scan_messages(t))    # a GPU nvidia-smi could not reach is named before the log
    if cut:
        inv.warnings.append(f"XML cut after {len(gpus)} complete <gpu> element(s) (output truncated?)")
    if attached is not None and attached > len(inv.gpus):
        inv.warnings.append(f"only {len(inv.gpus)} of {attached} attached GPUs in the XML (output trimmed?)")
    if attached == 0 and not gpus:
        inv.no_gpu = True
    return inv
