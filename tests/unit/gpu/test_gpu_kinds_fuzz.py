"""Hypothesis: the new GPU parsers never raise anything but ParseError, and never lose a GPU row or a result."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterkit.parsers import ParseError
from clusterkit.parsers.dcgmi import parse_dcgmi_diag
from clusterkit.parsers.lspci import parse_lspci
from clusterkit.parsers.nvidia_smi import parse_nvidia_smi_q, parse_query_gpu_csv
from clusterkit.parsers.nvidia_smi_errors import parse_nvsmi_failure
from clusterkit.parsers.nvidia_smi_screen import parse_nvidia_smi_screen
from clusterkit.parsers.nvidia_smi_xml import parse_nvidia_smi_xml
from clusterkit.parsers.nvlink import parse_dcgmi_nvlink, parse_nvlink_smi

PARSERS = [parse_nvidia_smi_screen, parse_nvidia_smi_xml, parse_nvlink_smi, parse_dcgmi_nvlink, parse_nvsmi_failure,
           parse_lspci, parse_nvidia_smi_q, parse_query_gpu_csv, parse_dcgmi_diag]
# Lines shaped like each new format, with random values.
TEMPLATES = [
    "|   {d}  {w}  {onoff}  | 0000000{d}:{h}:00.0 {onoff} |   {v} |",
    "| {v}   {v}C    P{d}    {v}W / {v}W |  {v}MiB / {v}MiB |   {v}%   Default |",
    "|                               |                      |   {v} |",
    "|    {d}   N/A  N/A   {v}      C   {w}    {v}MiB |", "|  {d}    {d}   0   {d}  |  {v}MiB / {v}MiB  | {v}  {v} |",
    "| NVIDIA-SMI {v}   Driver Version: {v}   CUDA Version: {v} |", "+-----+-----+", "|=====|=====|",
    "GPU {d}: {w} (UUID: GPU-{w})", "\t Link {d}: {v} GB/s", "\t Link {d}: <inactive>", "\t Link {d}: {w} Errors: {v}",
    "    gpuId {d}:", "    physicalId {d}:", "        {w}", "        U D X _ U",
    "<gpu id=\"0000:{h}:00.0\">", "</gpu>", "<{w}>{v}</{w}>", "<nvidia_smi_log>", "</nvidia_smi_log>",
    "<?xml version=\"1.0\"?>", "<!DOCTYPE nvidia_smi_log SYSTEM \"x.dtd\">", "<!ENTITY {w} \"{v}\">", "&{w};",
    "{h}:00.{d} {w}: NVIDIA Corporation {w} (rev {h})", "\t\tLnkCap:\tPort #0, Speed {v}GT/s, Width x{v}",
    "\t\tLnkSta:\tSpeed {v}GT/s ({w}), Width x{v} ({w})", "\t\tUESta:\t{w}+ {w}- UnsupReq{pm}",
    "\t\tCESta:\tRxErr{pm} AdvNonFatalErr{pm}", "\t\tUESvrt:\t{w}{pm}", "\t!!! Unknown header type 7f",
    "\t\t\t[SN] Serial number: {w}", "\tCapabilities: <access denied>",
    "Failed to initialize NVML: {w}", "NVML library version: {v}", "No devices were found",
    "Unable to determine the device handle for GPU 0000:{h}:00.0: {w}", "WARNING: infoROM is corrupted at gpu 0000:{h}:00.0",
    "| {w} | Fail - GPU: {d} |", "|  | Pass - GPUs: {d}, {d} |", "| Error | GPU {d} {w}", "|-----  Deployment  ----+---|",
    "    ECC Errors", "        Volatile", "            SRAM Uncorrectable : {v}", "Remapped Rows", "    Pending : {w}",
    "{w}, {w} [W], pci.bus_id, power.draw [W]", "{v}, {v}, 00000000:{h}:00.0, {v} W",
]
words = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-/.!& ", max_size=14)
vals = st.one_of(st.integers(-5, 10**6).map(str), st.sampled_from(["N/A", "ERR!", "", "0x", "1e309", "nan", "[N/A]"]))
line = st.builds(lambda t, w, v, d, h, onoff, pm: t.format(w=w, v=v, d=d, h=h, onoff=onoff, pm=pm),
                 st.sampled_from(TEMPLATES), words, vals, st.integers(0, 9),
                 st.sampled_from(["1B", "ZZ", "8a", "00"]), st.sampled_from(["On", "Off", "ERR!", "N/A"]),
                 st.sampled_from(["+", "-", ""]))
noise = st.lists(st.one_of(st.text(max_size=50), line), max_size=30).map("\n".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=noise, which=st.sampled_from(PARSERS))
def test_any_text_gives_a_result_or_parse_error(text, which):
    try:
        which(text)
    except ParseError as e:
        assert str(e)


CELLS = ("fan", "temperature", "power", "utilization")
ROW1 = "|   {i}  NVIDIA H100 80GB HBM3          On  |   00000000:{b:02X}:00.0 Off |                    0 |"
ROW2 = "| {fan}   {temp}    P0            {pw} /  700W |       1MiB /  81559MiB |    {util}      Default |"


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 8), broken=st.dictionaries(st.integers(0, 7), st.sampled_from(CELLS), max_size=3))
def test_every_gpu_row_is_read_and_every_err_cell_is_reported(n, broken):
    """A table of n rows gives n GPUs in order; an ERR! cell never passes unnoticed (fan: fan fault, else unreadable)."""
    rows = []
    for i in range(n):
        cell = broken.get(i)
        rows += [ROW1.format(i=i, b=0x10 + i),
                 ROW2.format(fan="ERR!" if cell == "fan" else "N/A ", temp="ERR!" if cell == "temperature" else "30C ",
                             pw="ERR!" if cell == "power" else "70W", util="ERR!" if cell == "utilization" else "0%  "),
                 "|                                         |                        |             Disabled |",
                 "+-----------------------------------------+------------------------+----------------------+"]
    inv = parse_nvidia_smi_screen("\n".join(rows))
    assert [g.index for g in inv.gpus] == list(range(n))
    for i, g in enumerate(inv.gpus):
        cell = broken.get(i)
        if cell == "fan":
            assert g.fan_error is True and g.error is None
        elif cell:
            assert g.error and cell in g.error
        else:
            assert g.error is None and g.fan_error is False and g.power_limit_w == 700


@settings(max_examples=60, deadline=None)
@given(results=st.lists(st.tuples(st.sampled_from(["Pass", "Fail", "Warn", "Skip"]),
                                  st.lists(st.integers(0, 7), min_size=1, max_size=4, unique=True)),
                        min_size=1, max_size=4))
def test_dcgmi_continuation_results_are_never_dropped(results):
    rows = []
    for k, (res, gpus) in enumerate(results):
        scope = f"GPU{'s' if len(gpus) > 1 else ''}: {', '.join(map(str, gpus))}"
        rows.append(f"| {'Memory' if k == 0 else '':<26}| {res + ' - ' + scope:<47}|")
    d = parse_dcgmi_diag("\n".join(rows) + "\n")
    assert [(t.name, t.result) for t in d.tests] == [("Memory", r.lower()) for r, _ in results]
