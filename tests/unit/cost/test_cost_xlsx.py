"""The XLSX workbook recomputed by a formula engine (pycel) equals the model in every column (base case,
each rental option, each tornado case, each scenario), year by year, and stays live when inputs change."""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib

import pytest

pycel = pytest.importorskip("pycel")
from openpyxl import load_workbook  # noqa: E402
from openpyxl.utils import get_column_letter  # noqa: E402
from pycel import ExcelCompiler  # noqa: E402

from clusterkit.cost.analysis import npv_saving, scenarios, swing_values, with_fx, with_input  # noqa: E402
from clusterkit.cost.config import load_config, parse_config  # noqa: E402
from clusterkit.cost.model import compute  # noqa: E402
from clusterkit.cost.render.xlsx import MONEY, PERCENT, RESULTS, render_xlsx  # noqa: E402
from clusterkit.cost.report import build  # noqa: E402

approx = pytest.approx
TODAY = dt.date(2026, 11, 30)
LABEL = {name: label for name, label, _ in RESULTS}


class Book:
    def __init__(self, rep, tmp_path):
        self.path = tmp_path / "cost.xlsx"
        self.path.write_bytes(render_xlsx(rep))
        self.xl = ExcelCompiler(filename=str(self.path), plugins=["xlsx_functions"])
        wb = load_workbook(self.path)
        self.wb = wb
        self.rows = {s: {c.value: c.row for c in wb[s]["A"] if c.value not in (None, "")} for s in wb.sheetnames}
        self.cols = {c.value: c.column_letter for c in wb["Model"][1][1:]}

    def get(self, sheet: str, ref: str):
        return self.xl.evaluate(f"'{sheet}'!{ref}")

    def model(self, case: str, name: str):
        return self.get("Model", f"{self.cols[case]}{self.rows['Model'][LABEL[name]]}")

    def year(self, case: str, label: str, y: int):
        return self.get("Model", f"{self.cols[case]}{self.rows['Model'][f'{label}, year {y}']}")


def _never(x):
    return "never" if x is None else approx(x, rel=1e-9)


def check_base(book: Book, cfg, case: str | None = None):
    res = compute(cfg)
    case = case or f"base: owning vs {cfg.reference}"
    pairs = {"npv_own": res.npv_own, "npv_rent": res.npv_rent, "npv_saving": res.npv_saving,
             "per_owned_hour": res.cost_per_owned_gpu_hour, "per_useful_hour": res.cost_per_useful_gpu_hour,
             "rent_per_useful_hour": res.reference_per_useful_gpu_hour,
             "total_cost_of_ownership": res.total_cost_of_ownership}
    for name, want in pairs.items():
        assert book.model(case, name) == approx(want, rel=1e-9), name
    assert book.model(case, "payback") == _never(res.payback_years)
    assert book.model(case, "discounted_payback") == _never(res.discounted_payback_years)
    ref = next(x for x in res.rentals if x.id == res.reference)
    be = book.model(case, "break_even")
    assert be == ("n/a" if ref.break_even_utilization is None else approx(ref.break_even_utilization, rel=1e-9))
    for y in res.years:
        for label, attr in (("Net cash flow of owning", "net_cash_flow"), ("Opex", "opex"),
                            ("Renting in total", "rent_total"), ("Depreciation", "depreciation"),
                            ("Book value", "book_value"), ("Extra tax owning pays", "tax")):
            assert book.year(case, label, y.year) == approx(getattr(y, attr), rel=1e-9, abs=1e-6), (label, y.year)
    return res


def test_example_workbook_recomputes_to_the_model_in_every_column_and_stays_live(tmp_path):
    # the tornado keeps inputs moving the NPV by 4 % or more here: fewer columns for the engine to compile
    cfg = load_config(None, today=TODAY).with_values(sensitivity__threshold=0.04)
    rep = build(cfg)
    assert 8 <= len(rep.bars) < 20
    book = Book(rep, tmp_path)
    res = check_base(book, cfg)
    # the year-by-year sheet, its NPV (also through Excel's NPV function) and IRR
    cash = book.rows["Cash flow"]
    net_row = cash["Net cash flow of owning (after tax)"]
    for y in res.years:
        assert book.get("Cash flow", f"{get_column_letter(2 + y.year)}{net_row}") == approx(y.net_cash_flow, rel=1e-9)
    assert book.get("Cash flow", f"B{cash['NPV of the net cash flow']}") == approx(res.npv_saving, rel=1e-9)
    assert book.get("Cash flow", f"B{cash['NPV again, with the NPV function']}") == approx(res.npv_saving, rel=1e-9)
    assert book.get("Cash flow", f"B{cash['IRR']}") == approx(res.irr, abs=1e-9)
    assert book.wb["Cash flow"][f"B{cash['IRR']}"].value.startswith("=IRR(B")
    # every rental option's column
    rent = book.rows["Rentals"]
    for r in res.rentals:
        row = rent[r.id]
        assert book.get("Rentals", f"E{row}") == approx(r.price_per_gpu_hour, rel=1e-12)
        assert book.get("Rentals", f"J{row}") == approx(r.per_useful_gpu_hour, rel=1e-9)
        assert book.get("Rentals", f"K{row}") == approx(r.npv_saving, rel=1e-9)
        assert book.get("Rentals", f"L{row}") == ("n/a" if r.break_even_utilization is None
                                                  else approx(r.break_even_utilization, rel=1e-9))
    # every tornado case
    bars = {b.label: b for b in rep.bars}
    for label, row in book.rows["Tornado"].items():
        if label not in bars:
            continue
        b = bars.pop(label)
        lo_in, base_in, hi_in, lo, hi = (book.get("Tornado", f"{c}{row}") for c in "BCDEF")
        assert (lo_in, base_in, hi_in) == approx((b.low_input, b.base_input, b.high_input), rel=1e-12), label
        assert (lo, hi) == approx((b.low, b.high), rel=1e-9), label
    assert bars == {}
    # every scenario, as formulas over its Model column
    rows = book.rows["Scenarios"]
    for s in rep.scenarios:
        row = rows[s.name]
        assert book.wb["Scenarios"][f"B{row}"].value.startswith("=Model!")
        got = [book.get("Scenarios", f"{c}{row}") for c in "BCDE"]
        assert got[:3] == approx([s.per_useful_gpu_hour, s.per_work_unit, s.npv_cost], rel=1e-9), s.name
        if s.npv_saving is not None:
            assert got[3] == approx(s.npv_saving, rel=1e-9), s.name
    assert any("falls 30%" in s.name for s in rep.scenarios)

    # live: edits in the workbook move every result as the model says (one engine: its compiled cells reused)
    inputs, fx = book.rows["Inputs"], book.rows["FX"]
    # finance edits the server quote (in USD), the scheduler utilization, the USD rate and the rental trend
    rate = cfg.catalog.rates["USD"].per_unit
    book.xl.set_value(f"FX!B{fx['USD']}", 7.0)
    book.xl.set_value(f"Inputs!G{inputs['capex.server_price']}", 250_000)
    book.xl.set_value(f"Inputs!B{inputs['utilization.scheduler']}", 0.8)
    book.xl.set_value(f"Inputs!B{inputs['trajectory.rental_per_year']}", -0.2)
    changed = with_fx(cfg, "USD", 7.0 / rate).with_values(capex__server_price=250_000 * 7.0,
                                                          utilization__scheduler=0.8,
                                                          trajectory__rental_per_year=-0.2)
    res = check_base(book, changed)
    assert res.npv_saving != approx(compute(cfg).npv_saving)
    for label, row in book.rows["Tornado"].items():
        b = next((x for x in rep.bars if x.label == label), None)
        if b is None:
            continue
        _, lo_in, hi_in = swing_values(changed, b.key)
        want = (npv_saving(with_input(changed, b.key, lo_in)), npv_saving(with_input(changed, b.key, hi_in)))
        assert (book.get("Tornado", f"E{row}"), book.get("Tornado", f"F{row}")) == approx(want, rel=1e-9), label
    # a config's [[scenario]] keeps what it sets and follows the edits of everything else
    falls = dict(cfg.scenarios)["H100 rental falls 30% a year"]
    falls = with_fx(falls, "USD", 7.0 / rate).with_values(capex__server_price=250_000 * 7.0, utilization__scheduler=0.8)
    changed = dataclasses.replace(changed, scenarios=[("H100 rental falls 30% a year", falls)])
    rows = book.rows["Scenarios"]
    checked = 0
    for s in scenarios(changed):
        if s.name in rows:
            assert book.get("Scenarios", f"B{rows[s.name]}") == approx(s.per_useful_gpu_hour, rel=1e-9), s.name
            assert book.get("Scenarios", f"D{rows[s.name]}") == approx(s.npv_cost, rel=1e-9), s.name
            checked += 1
    assert checked >= 12


def test_small_config_taxed_declining_balance_reserved_reference(tmp_path, small_toml):
    text = small_toml.replace('reference = "od"', 'reference = "r3"').replace(
        "life_years = 3", 'life_years = 3\nresidual_fraction = 0.15\ntax_rate = 0.25\ndepreciation = "declining-balance"')
    cfg = parse_config(tomllib.loads(text), "small.toml", today=dt.date(2025, 1, 1))
    book = Book(build(cfg), tmp_path)
    res = check_base(book, cfg)
    assert book.model("base: owning vs r3", "break_even") == "n/a"
    assert res.payback_years is None and book.model("base: owning vs r3", "payback") == "never"


def test_life_swing_and_scenarios_with_another_life_get_their_years(tmp_path, small_toml):
    text = small_toml + '\n[[scenario]]\nname = "seven years"\nset = { "finance.life_years" = 7 }\n'
    cfg = parse_config(tomllib.loads(text), "small.toml", today=dt.date(2025, 1, 1))
    cfg = dataclasses.replace(cfg, rentals=[dataclasses.replace(cfg.rentals[0], price=dataclasses.replace(
        cfg.rentals[0].price, value=3.0)), cfg.rentals[1]])
    rep = build(cfg)
    book = Book(rep, tmp_path)
    check_base(book, cfg)
    row = book.rows["Scenarios"]["seven years"]
    sc = next(s for s in rep.scenarios if s.name == "seven years")
    assert book.get("Scenarios", f"E{row}") == approx(sc.npv_saving, rel=1e-9)


def test_human_number_formats(tmp_path):
    rep = build(load_config(None, today=TODAY))
    path = tmp_path / "c.xlsx"
    path.write_bytes(render_xlsx(rep))
    wb = load_workbook(path)
    summary = {c.value: c.row for c in wb["Summary"]["A"] if c.value}
    assert wb["Summary"][f"B{summary['NPV saving of owning, after tax (CNY)']}"].number_format == MONEY
    assert wb["Summary"][f"B{summary['IRR of owning instead of renting']}"].number_format == PERCENT
    assert wb["Summary"][f"B{summary['Effective utilization']}"].number_format == PERCENT
    inputs = {c.value: c.row for c in wb["Inputs"]["A"] if c.value}
    assert wb["Inputs"][f"B{inputs['utilization.scheduler']}"].number_format == PERCENT
    assert wb["Inputs"][f"B{inputs['capex.storage']}"].number_format == MONEY
    assert MONEY.startswith('[>=1000000]#,##0.0,," M"')           # Excel shows 1,600,000 as 1.6 M
    assert wb.sheetnames == ["Summary", "Cash flow", "Inputs", "FX", "Rentals", "Model", "Tornado", "Two-way",
                             "Scenarios"]
