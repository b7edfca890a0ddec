"""Hypothesis: the default screen and dcgmi diag parsers never lose a GPU row or a result (any-input fuzz of every
GPU parser, the new ones included, is in test_gpu_fuzz.py)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from clusterkit.parsers.dcgmi import parse_dcgmi_diag
from clusterkit.parsers.nvidia_smi_screen import parse_nvidia_smi_screen

CELLS = ("fan", "temperature", "power", "utilization")
ROW1 = "|   {i}  NVIDIA H100 80GB HBM3          On  |   00000000:{b:02X}:00.0 Off |                    0 |"
ROW2 = "| {fan}   {temp}    P0            {pw} /  700W |       1MiB /  81559MiB |    {util}      Default |"


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 8), broken=st.dictionaries(st.integers(0, 7), st.sampled_from(CELLS), max_size=3))
def test_every_gpu_row_is_read_and_every_err_cell_is_reported(n, broken):
    """A table of n rows gives n GPUs in order; an ERR! cell never passes unnoticed (fan: fan fault; one other
    reading alone: that field unreadable)."""
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
            assert g.error is None and g.unknown_error_fields == [{"power": "power draw"}.get(cell, cell)]
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
