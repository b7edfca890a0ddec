"""The XLSX workbook recomputed by a formula engine (pycel) equals the model, and stays live."""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib

import pytest

pycel = pytest.importorskip("pycel")
from pycel import ExcelCompiler  # noqa: E402

from clusterkit.cost.analysis import tornado  # noqa: E402
from clusterkit.cost.config import load_config, parse_config  # noqa: E402
from clusterkit.cost.model import compute  # noqa: E402
from clusterkit.cost.render.xlsx import CHAIN, MODEL_INPUTS, render_xlsx  # noqa: E402
from clusterkit.cost.report import build  # noqa: E402

approx = pytest.approx


def _open(rep, tmp_path):
    path = tmp_path / "cost.xlsx"
    path.write_bytes(render_xlsx(rep))
    return ExcelCompiler(filename=str(path))


def _rows(xl, sheet, col="A", start=2, stop=80):
    out = {}
    for r in range(start, stop):
        v = xl.evaluate(f"{sheet}!{col}{r}")
        if v not in (None, ""):
            out[v] = r
    return out


def _model_values(xl):
    labels = _rows(xl, "Model")
    return {name: xl.evaluate(f"Model!B{labels[label]}") for name, label, _ in CHAIN}


def _check_against_model(xl, cfg):
    res = compute(cfg)
    got = _model_values(xl)
    fields = {f.name for f in dataclasses.fields(res)}
    compared = 0
    for name, value in got.items():
        if name in fields and getattr(res, name) is not None and not isinstance(getattr(res, name), (str, tuple)):
            assert value == approx(getattr(res, name), rel=1e-9), name
            compared += 1
    assert compared >= 25
    ref = next(r for r in res.rentals if r.id == cfg.reference)
    if ref.break_even_utilization is None:
        assert got["break_even_reference"] == "n/a"
    else:
        assert got["break_even_reference"] == approx(ref.break_even_utilization, rel=1e-9)
    rent_rows = _rows(xl, "Rentals")
    for r in res.rentals:
        row = rent_rows[r.id]
        assert xl.evaluate(f"Rentals!F{row}") == approx(r.price_per_gpu_hour, rel=1e-9)
        assert xl.evaluate(f"Rentals!H{row}") == approx(r.per_useful_gpu_hour, rel=1e-9)
        be = xl.evaluate(f"Rentals!I{row}")
        assert be == ("n/a" if r.break_even_utilization is None else approx(r.break_even_utilization, rel=1e-9))
    bars = {b.label: b for b in tornado(cfg)}
    for label, row in _rows(xl, "Tornado").items():
        b = bars.pop(label)
        lo_in, hi_in, lo, hi = (xl.evaluate(f"Tornado!{c}{row}") for c in "BCDE")
        assert (lo_in, hi_in, lo, hi) == approx((b.low_input, b.high_input, b.low, b.high), rel=1e-9), label
    assert bars == {}
    return res


def test_example_workbook_recomputes_to_the_model(tmp_path):
    cfg = load_config(None)
    xl = _open(build(cfg), tmp_path)
    res = _check_against_model(xl, cfg)
    summary = _rows(xl, "Summary")
    assert xl.evaluate(f"Summary!B{summary['Cost per useful GPU-hour (CNY)']}") == approx(res.cost_per_useful_gpu_hour)


def test_tax_residual_and_reserved_reference(tmp_path, small_toml):
    text = small_toml.replace('reference = "od"', 'reference = "r3"').replace(
        "life_years = 3", "life_years = 3\nresidual_fraction = 0.15\ntax_rate = 0.25")
    cfg = parse_config(tomllib.loads(text), "small.toml", today=dt.date(2025, 1, 1))
    xl = _open(build(cfg), tmp_path)
    got = _model_values(xl)
    assert got["break_even_reference"] == "n/a"
    res = _check_against_model(xl, cfg)
    assert got["payback_years"] == ("never" if res.payback_years is None else approx(res.payback_years))


def test_inputs_are_live(tmp_path):
    cfg = load_config(None)
    xl = _open(build(cfg), tmp_path)
    before = _check_against_model(xl, cfg).cost_per_useful_gpu_hour   # also puts every cell in the engine's map
    inputs = _rows(xl, "Inputs")
    rentals = _rows(xl, "Rentals")
    keys = dict(MODEL_INPUTS)
    assert set(keys.values()) <= set(inputs)
    # finance edits the server price, the scheduler utilization and the USD rate
    xl.set_value(f"Inputs!B{inputs['capex.server_price']}", 2_500_000)
    xl.set_value(f"Inputs!B{inputs['utilization.scheduler']}", 0.8)
    ref_row = rentals[cfg.reference]
    xl.set_value(f"Rentals!E{ref_row}", 7.5)
    changed = cfg.with_values(capex__server_price=2_500_000, utilization__scheduler=0.8)
    ref = changed.ref_rental()
    new_ref = dataclasses.replace(ref, price=dataclasses.replace(ref.price, value=ref.price.orig_amount * 7.5))
    changed = dataclasses.replace(changed, rentals=[new_ref if r.id == ref.id else r for r in changed.rentals])
    after = _check_against_model(xl, changed)
    assert after.cost_per_useful_gpu_hour != approx(before)
