"""Hypothesis: GPU parsers never crash and never lose data."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterkit.parsers import ParseError
from clusterkit.parsers.dcgmi import parse_dcgmi_diag
from clusterkit.parsers.dmidecode_bios import parse_dmidecode_bios
from clusterkit.parsers.fabricmanager import parse_fabricmanager
from clusterkit.parsers.ipmi import parse_sdr_psu, parse_sel
from clusterkit.parsers.lspci import parse_lspci
from clusterkit.parsers.nvidia_smi import parse_nvidia_smi_q, parse_query_gpu_csv, parse_topo
from clusterkit.parsers.nvidia_smi_errors import parse_nvsmi_failure
from clusterkit.parsers.nvidia_smi_screen import parse_nvidia_smi_screen
from clusterkit.parsers.nvidia_smi_xml import parse_nvidia_smi_xml
from clusterkit.parsers.nvlink import parse_dcgmi_nvlink, parse_nvlink_smi
from clusterkit.parsers.nvml_json import parse_nvml_json
from clusterkit.parsers.power_trace import parse_power_trace
from clusterkit.parsers.xid import parse_xid_message
from clusterkit.probes.nvml_backend import FakeBackend, read_snapshot
from clusterkit.sim.gpu import render_nvidia_smi_q

PARSERS = [parse_nvidia_smi_q, parse_query_gpu_csv, parse_topo, parse_nvml_json, parse_power_trace, parse_dcgmi_diag,
           parse_sdr_psu, parse_sel, parse_dmidecode_bios, parse_fabricmanager, parse_nvidia_smi_screen,
           parse_nvidia_smi_xml, parse_nvlink_smi, parse_dcgmi_nvlink, parse_nvsmi_failure, parse_lspci]
# Lines shaped like each format, with random values (templates: generating from regexes is slow).
TEMPLATES = [
    "{ind}{word} : {num}{unit}", "GPU 0000{hex4}:{hex2}:00.0", "|{word}|{word}{num}|",
    "{word} | {hex2}h | {status} | {num} | {word}, {word}", "{num},{digit},{phase},{num},{num},0x{hex2},{digit},{word}",
    "  NIC{digit}: {word}", "GPU{digit}\t X \tNV{digit}\t{word}\t{num}", "# {word}: {num}",
    "   {digit} | 11/23/2026 | 10:00:00 | {word} | {word} | Asserted",
    # the default screen, -q -x, nvlink, dcgmi nvlink, lspci, bare failures, fragments
    "|   {digit}  {word}  On  | 0000000{digit}:{hex2}:00.0 Off |   {num} |",
    "| {num}   {num}C    P{digit}    {num}W / {num}W |  {num}MiB / {num}MiB |   {num}%   Default |",
    "|    {digit}   N/A  N/A   {num}      C   {word}    {num}MiB |", "|  {digit}    {digit}   0   {digit}  |  {num}MiB | {num}  {num} |",
    "| NVIDIA-SMI {num}   Driver Version: {num}   CUDA Version: {num} |", "+-----+-----+", "| Processes: |", "| MIG devices: |",
    "GPU {digit}: {word} (UUID: GPU-{word})", "\t Link {digit}: {num} GB/s", "\t Link {digit}: <inactive>",
    "\t Link {digit}: {word} Errors: {num}", "    gpuId {digit}:", "    physicalId {digit}:", "        U D X _ {word}",
    "<gpu id=\"0000:{hex2}:00.0\">", "</gpu>", "<{word}>{num}</{word}>", "<nvidia_smi_log>", "</nvidia_smi_log>",
    "<!ENTITY {word} \"{num}\">", "&{word};",
    "{hex2}:00.{digit} {word}: NVIDIA Corporation {word} (rev {hex2})", "\t\tLnkCap:\tPort #0, Speed {num}GT/s, Width x{num}",
    "\t\tLnkSta:\tSpeed {num}GT/s ({word}), Width x{num} ({word})", "\t\tUESta:\t{word}+ UnsupReq+", "\t\tCESta:\tRxErr+ AdvNonFatalErr+",
    "\t!!! Unknown header type 7f", "\t\t\t[SN] Serial number: {word}", "Failed to initialize NVML: {word}",
    "Unable to determine the device handle for GPU 0000:{hex2}:00.0: {word}", "WARNING: infoROM is corrupted at gpu 0000:{hex2}:00.0",
    "| {word} | Fail - GPU: {digit} |", "|  | Pass - GPUs: {digit}, {digit} |", "| Error | GPU {digit} {word}",
    "{ind}ECC Errors", "{ind}Remapped Rows", "{word}, {word} [W], pci.bus_id, power.draw [W]",
]
words = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-/ ", max_size=18)
nums = st.one_of(st.integers(-5, 10**7).map(str), st.floats(allow_nan=True, allow_infinity=True).map(str),
                 st.sampled_from(["N/A", "[N/A]", "1,5", "", "0x", "1e309"]))
template_line = st.builds(
    lambda t, ind, word, num, unit, hex2, hex4, status, digit, phase: t.format(
        ind=ind, word=word, num=num, unit=unit, hex2=hex2, hex4=hex4, status=status, digit=digit, phase=phase),
    st.sampled_from(TEMPLATES), st.sampled_from(["", "    ", "        ", "\t"]), words, nums,
    st.sampled_from(["", " W", " MHz", " C", "x", " %"]), st.sampled_from(["00", "1B", "ZZ", "8a"]),
    st.sampled_from(["0000", "00000000", "xyz"]), st.sampled_from(["ok", "cr", "ns", "??"]),
    st.integers(0, 9), st.sampled_from(["idle", "load", "busy"]))
noise = st.lists(st.one_of(
    st.text(max_size=60),
    template_line,
    st.sampled_from(["==============NVSMI LOG==============", "Attached GPUs : 2", "# clusterkit power-trace v1",
                     "t_s,gpu,phase,power_w,sm_clock_mhz,clock_event_reasons,temp_c,error", "BIOS Information",
                     "\tGPU0\tGPU1\tCPU Affinity", "{\"gpus\": [{}], \"backend\": 1}", "    Clocks Event Reasons",
                     "| Diagnostic | Result |", "Fabric Manager version is : 1", "Unable to determine the device handle for GPU 0000:01:00.0: x",
                     "<?xml version=\"1.0\"?>", "No devices were found", "NVML library version: 550.1"]),
), max_size=30).map("\n".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=noise, which=st.sampled_from(PARSERS))
def test_any_text_gives_a_result_or_parse_error(text, which):
    try:
        which(text)
    except ParseError as e:
        assert str(e)   # a clear message, never empty


@given(st.text(max_size=200))
def test_xid_parser_never_raises(msg):
    parse_xid_message(msg)


@given(xid=st.integers(1, 200), bus=st.integers(0, 255), prefix=st.text(max_size=30).filter(lambda s: "NVRM" not in s))
def test_xid_found_in_any_prefix(xid, bus, prefix):
    e = parse_xid_message(f"{prefix}NVRM: Xid (PCI:0000:{bus:02x}:00): {xid}, pid=1, name=x, detail")
    assert (e.xid, e.bus_id) == (xid, f"0000:{bus:02x}:00.0")


counts = st.integers(0, 10**6)
gpu_patch = st.fixed_dictionaries({
    "serial": st.from_regex(r"[0-9]{10,13}", fullmatch=True),
    "power_draw_w": st.floats(0, 1000, allow_nan=False).map(lambda v: round(v, 2)),
    "power_limit_w": st.floats(100, 1000, allow_nan=False).map(lambda v: round(v, 2)),
    "ecc_volatile_uncorrected": counts, "ecc_aggregate_corrected": counts,
    "remap_uncorrectable": st.integers(0, 640), "remap_pending": st.booleans(), "remap_failure": st.booleans(),
    "clock_event_reasons": st.integers(0, 0x1FF), "pcie_gen": st.integers(1, 5), "pcie_width": st.sampled_from([1, 2, 4, 8, 16]),
    "temperature_c": st.integers(0, 110), "sm_clock_mhz": st.integers(0, 3000),
})


@settings(max_examples=25, deadline=None)
@given(patches=st.lists(gpu_patch, min_size=1, max_size=8))
def test_q_rendering_round_trips_without_losing_data(patches):
    doc = read_snapshot(FakeBackend(len(patches)))
    for g, p in zip(doc["gpus"], patches):
        g.update(p)
    inv = parse_nvidia_smi_q(render_nvidia_smi_q(doc))
    nvml = parse_nvml_json(json.dumps(doc))
    assert len(inv.gpus) == len(patches)
    for a, b in zip(inv.gpus, nvml.gpus):
        for f in ("serial", "pci_bus_id", "pci_device_id", "power_draw_w", "power_limit_w", "ecc_volatile_uncorrected",
                  "ecc_aggregate_corrected", "remap_uncorrectable", "remap_pending", "remap_failure",
                  "pcie_gen", "pcie_width", "temperature_c", "sm_clock_mhz"):
            assert getattr(a, f) == getattr(b, f), f
        # -q shows the reasons it knows by name; the display-clock bit has no line in this rendering
        assert a.clock_event_reasons == b.clock_event_reasons & ~(0x10 | 0x100)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(st.floats(0, 1e4, allow_nan=False), st.integers(0, 7), st.sampled_from(["idle", "load"]),
                               st.one_of(st.none(), st.floats(0, 2000, allow_nan=False)), st.integers(0, 0x1FF)),
                     min_size=1, max_size=50))
def test_power_trace_rows_all_kept(rows):
    body = "\n".join(f"{t:.3f},{g},{ph},{'' if p is None else p},1000,{hex(r)},50," for t, g, ph, p, r in rows)
    tr = parse_power_trace("t_s,gpu,phase,power_w,sm_clock_mhz,clock_event_reasons,temp_c,error\n" + body)
    assert len(tr.samples) == len(rows) and tr.skipped_rows == 0
    assert [s.reasons for s in tr.samples] == [r for *_, r in rows]
