"""The power trace's two forms give the same verdicts: the CSV parsed row by row, and the columns
file written beside it (gpu/power-trace.columns.json), on fuzzed traces; a columns file that is
damaged or not from this CSV is not used."""

from __future__ import annotations

import dataclasses
import json
import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterkit.analysis import NodeContext
from clusterkit.checks._power_analysis import StepParams, analyze_trace
from clusterkit.checks.registry import CHECKS
from clusterkit.evidence.bundle import Bundle
from clusterkit.node_scripts.trace_columns import columns_json
from clusterkit.parsers import ParseError
from clusterkit.parsers.power_trace import parse_power_trace, parse_power_trace_columns
from clusterkit.plugins import load_all
from clusterkit.profiles import load_profile

load_all()
PARAMS = [StepParams(700.0, 0.9, 0.5, 0.25, 0.3, 10.0, 10.0), StepParams(None, 0.8, 0.75, 0.1, 0.0, 5.0, 10.0)]


def fuzz_trace(rng: random.Random) -> str:
    """A power-step trace with what real ones carry and what damage does: GPUs that drop out, brakes,
    missing and non-finite values, out-of-order and duplicate times, rows of garbage."""
    n = rng.randint(1, 8)
    lines = ["# clusterkit power-trace v1", f"# power_source: {rng.choice(['instant', 'average'])}",
             f"# uptime_start_s: {rng.uniform(100, 9999):.2f}"]
    for i in range(n + rng.randint(0, 1)):
        lines.append(f"# gpu: {i},0000:{i:02x}:00.0,SN{i},NVIDIA H100,{rng.choice(['700.0', '', 'x', '350'])}")
    if rng.random() < 0.5:
        lines.append(f"# event_time_delta_ns: {rng.randrange(n)},hw_power_brake,{rng.randint(0, 5_000_000)}")
    lines.append("t_s,gpu,phase,power_w,sm_clock_mhz,clock_event_reasons,temp_c,error")
    hz, dur, period = rng.choice([2, 5, 10, 20]), rng.uniform(1, 10), rng.choice([1.0, 2.0, 4.0])
    lost = {g: rng.uniform(0, dur) for g in range(n) if rng.random() < 0.15}
    rows = []
    for k in range(int(dur * hz)):
        t = k / hz + rng.uniform(0, 0.004) * rng.choice([1, 1, 1, -50])
        phase = "load" if int(t // (period / 2)) % 2 == 1 else "idle"
        for g in range(n):
            if g in lost and t > lost[g]:
                if rng.random() < 0.2:
                    rows.append(f"{t:.3f},{g},{phase},,,,,GPU_LOST")
                continue
            r = rng.choice([0x1, 0x4, 0x4, 0x8, 0x80, 0x88, 0x40, 0x0, None])
            p = rng.uniform(60, 90) if phase == "idle" else rng.uniform(200, 720)
            clk = rng.choice([345, 1980 - rng.randrange(0, 600), 0, None])
            pv = rng.choice(["", "inf", "nan", f"{p:.1f}"]) if rng.random() < 0.04 else f"{p:.2f}"
            rows.append(f"{t:.3f},{g},{phase},{pv},{'' if clk is None else clk},{'' if r is None else hex(r)},"
                        f"{rng.randint(30, 90)},")
        if rng.random() < 0.02:
            rows.append(rng.choice(["garbage", "1,2", "1.0,a,load,1,1,0x1,1,", "1.0,0,busy,1,1,0x1,1,",
                                    "2.0,0,load,500,1900,zz,50,", '"3.0",0,load,500,1900,0x4,50,']))
    if rng.random() < 0.3:
        rng.shuffle(rows)
    return "\n".join(lines + rows) + "\n"


def _same_trace(a, b) -> None:
    for name in ("t_s", "gpu", "load", "power_w", "sm_clock_mhz", "reasons", "temp_c"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=name not in ("gpu", "load", "reasons"))
    assert (a.meta, a.gpus, a.errors, a.skipped_rows) == (b.meta, b.gpus, b.errors, b.skipped_rows)


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_csv_and_columns_give_the_same_trace_and_the_same_analysis(seed):
    text = fuzz_trace(random.Random(seed))
    try:
        from_csv = parse_power_trace(text)
    except ParseError:
        return
    cols = parse_power_trace_columns(columns_json(text))
    _same_trace(from_csv, cols)
    for p in PARAMS:
        assert dataclasses.asdict(analyze_trace(from_csv, p)) == dataclasses.asdict(analyze_trace(cols, p))


def _step(files: dict[str, str]):
    b = Bundle.virtual("n", files, {"host": "n", "declared": {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8}})
    return CHECKS["power.step"].func(NodeContext("n", b, load_profile("h100-sxm5-80gb")))


def test_the_check_reads_the_columns_only_when_they_come_from_this_csv():
    rng = random.Random(7)
    text, other = fuzz_trace(rng), fuzz_trace(rng)
    csv_only = _step({"gpu/power-trace.csv": text})
    with_cols = _step({"gpu/power-trace.csv": text, "gpu/power-trace.columns.json": columns_json(text)})
    assert with_cols.to_dict() == csv_only.to_dict()
    # columns of another trace, or damaged ones, are not used: the verdict is the CSV's
    stale = _step({"gpu/power-trace.csv": text, "gpu/power-trace.columns.json": columns_json(other)})
    assert stale.to_dict() == csv_only.to_dict()
    doc = json.loads(columns_json(text))
    doc["columns"]["power_w"][1] = doc["columns"]["power_w"][1][:-8]
    broken = _step({"gpu/power-trace.csv": text, "gpu/power-trace.columns.json": json.dumps(doc)})
    assert broken.to_dict() == csv_only.to_dict()


def test_simulated_node_traces_agree():
    from clusterkit.sim.cluster import generate

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        generate(Path(d), nodes=3, seed=5)
        for node in sorted(Path(d).glob("sim-*")):
            csv = (node / "gpu/power-trace.csv").read_text()
            cols = parse_power_trace_columns((node / "gpu/power-trace.columns.json").read_text())
            _same_trace(parse_power_trace(csv), cols)
