"""XLSX workbook whose cells are live formulas: change an input, every result moves.

Sheets: Summary (headline formulas), Cash flow (year by year, with NPV and IRR), Inputs (editable values,
with basis and source; converted amounts are amount x the FX sheet's rate), FX (dated exchange rates),
Rentals (each option: price, trajectory, provider availability, and its results), Model (the whole
year-by-year chain once per column: the base case, each rental option, each tornado case, each scenario),
Tornado, Two-way (values), Scenarios (formulas reading the Model columns). The chain mirrors
clusterkit/cost/model.py line by line; tests recompute the workbook with a formula engine (pycel).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

from clusterkit.cost.analysis import (SCALE_FACTORS, Bar, _AT_MOST_1, _MIN, other_models, scaled_nodes,
                                     throughput, topup_option)
from clusterkit.cost.config import CostConfig, Rental, input_kind
from clusterkit.cost.report import TERM_LABEL, Report

# Model inputs, in the order of the Inputs sheet: (short name, config key).
MODEL_INPUTS = (
    ("nodes", "cluster.nodes"), ("gpn", "cluster.gpus_per_node"), ("server", "capex.server_price"),
    ("network", "capex.network_per_node"), ("storage", "capex.storage"), ("install", "capex.installation"),
    ("spares", "capex.spares_fraction"), ("r", "finance.cost_of_capital"), ("n", "finance.life_years"),
    ("resid", "finance.residual_fraction"), ("tax", "finance.tax_rate"), ("dbf", "finance.declining_balance_factor"),
    ("gpu_w", "power.gpu_power_w"), ("overhead_w", "power.non_gpu_overhead_w"), ("pue", "power.pue"),
    ("kwh", "power.price_per_kwh"), ("colo_kw", "colocation.per_kw_month"),
    ("prov_kw", "colocation.provisioned_kw_per_node"), ("rack_month", "colocation.per_rack_month"),
    ("racks", "colocation.racks"), ("fte", "operations.staff_fte"), ("fte_node", "operations.staff_fte_per_node"),
    ("fte_cost", "operations.staff_cost_per_fte_year"), ("support_frac", "operations.support_fraction_per_year"),
    ("fail_rate", "operations.failures_per_node_year"), ("fail_cost", "operations.cost_per_failure"),
    ("sched", "utilization.scheduler"), ("avail", "utilization.availability"),
    ("g_rent", "trajectory.rental_per_year"), ("g_power", "trajectory.power_per_year"),
    ("g_staff", "trajectory.staff_per_year"), ("g_colo", "trajectory.colocation_per_year"),
    ("g_fx", "trajectory.fx_per_year"), ("st_tb", "rental_side.storage_tb"),
    ("st_price", "rental_side.storage_per_tb_month"), ("eg_tb", "rental_side.egress_tb_per_month"),
    ("eg_price", "rental_side.egress_per_tb"), ("cloud_fte", "rental_side.staff_fte"),
    ("peak", "hybrid.peak_share"), ("base_util", "hybrid.base_utilization"), ("swing", "sensitivity.swing"),
)
KEY_OF = dict(MODEL_INPUTS)
NAME_OF = {k: n for n, k in MODEL_INPUTS}
# Per-column rows after the inputs: the compared rental option, the top-up option (hybrid), the owned plan.
PLAN_ROWS = (
    ("method", "Depreciation method"), ("ref_price", "Rental price per GPU-hour, year 1"),
    ("ref_committed", "Rental is reserved (1/0)"), ("ref_avail", "Provider availability"),
    ("ref_traj", "Rental price change per year"), ("ref_foreign", "Rental quoted in another currency (1/0)"),
    ("topup_price", "Top-up on-demand price"), ("topup_traj", "Top-up price change per year"),
    ("topup_foreign", "Top-up quoted in another currency (1/0)"), ("own_nodes", "Owned nodes"),
    ("own_sched", "Owned nodes' scheduler utilization"), ("demand", "Useful GPU-hours demanded a year"),
    ("work", "Training work per GPU-hour (this config = 1)"),
)
# Scalars of the chain: (name, label, formula over {names} of the same column).
SCALARS = (
    ("capex", "Capex", "{own_nodes}*({server}+{network})*(1+{spares})+{storage}+{install}"),
    ("spares_cost", "of which spares", "{own_nodes}*({server}+{network})*{spares}"),
    ("salvage", "Resale value (= book value at the end)", "{resid}*{capex}"),
    ("node_kw", "Mean node power kW", "({gpu_w}+{overhead_w})/1000"),
    ("power1", "Power, year 1", "{own_nodes}*{node_kw}*{pue}*8760*{kwh}"),
    ("colo1", "Colocation, year 1", "12*({colo_kw}*{prov_kw}*{own_nodes}+{rack_month}*{racks})"),
    ("staff_fte", "Staff FTE", "{fte}+{fte_node}*{own_nodes}"),
    ("staff1", "Staff, year 1", "{staff_fte}*{fte_cost}"),
    ("support1", "Support per year", "{support_frac}*{own_nodes}*{server}"),
    ("repairs1", "Repairs per year", "{fail_rate}*{own_nodes}*{fail_cost}"),
    ("owned_hours", "Owned GPU-hours a year", "{own_nodes}*{gpn}*8760"),
    ("own_useful", "Useful GPU-hours the owned nodes deliver", "{owned_hours}*{own_sched}*{avail}"),
    ("topup_hours", "Useful GPU-hours rented on top", "MAX(0,{demand}-{own_useful})"),
    ("topup_share", "Share rented on top", "IF({demand}>0,{topup_hours}/{demand},0)"),
    ("paid_hours", "GPU-hours paid on the rental",
     "IF({ref_committed}=1,{demand}/({sched}*{ref_avail}),{demand})"),
    ("storage_y", "Cloud storage a year", "12*{st_tb}*{st_price}"),
    ("egress_y", "Egress a year", "12*{eg_tb}*{eg_price}"),
    ("db_rate", "Declining-balance rate", "{dbf}/{n}"),
)
# Yearly rows, in blocks of years 0..Y: (name, label). Formulas in _yearly().
YEARLY = (
    ("d", "Discount factor"), ("dep", "Depreciation"), ("bv", "Book value"), ("power", "Power"),
    ("colo", "Colocation"), ("staff", "Staff"), ("support", "Support"), ("repairs", "Repairs"),
    ("topup", "Rented top-up"), ("opex", "Opex"), ("resale", "Resale"), ("price", "Rental price"),
    ("rent", "Rent"), ("rstorage", "Cloud storage"), ("regress", "Egress"), ("rstaff", "Cloud-side staff"),
    ("rent_total", "Renting in total"), ("extras", "Storage + egress + cloud staff"),
    ("taxable", "Taxable difference"), ("tax_y", "Extra tax owning pays"), ("own", "Owning, after tax"),
    ("rentc", "Renting, after tax"), ("net", "Net cash flow of owning"), ("cum", "Cumulative"),
    ("cumd", "Cumulative, discounted"), ("pb", "Payback candidate"), ("dpb", "Discounted payback candidate"),
)
NEVER = 1e30   # a payback candidate that is not one (MIN picks the real ones)
# Results: (name, label, formula); names matching CostResult / Summary fields are compared by the tests.
RESULTS = (
    ("npv_own", "NPV of owning's after-tax costs", "SUMPRODUCT({own@0}:{own@Y},{d@0}:{d@Y})"),
    ("npv_rent", "NPV of renting, after tax", "SUMPRODUCT({rentc@0}:{rentc@Y},{d@0}:{d@Y})"),
    ("npv_saving", "NPV saving of owning", "SUMPRODUCT({net@0}:{net@Y},{d@0}:{d@Y})"),
    ("pv_owned", "Present value of owned GPU-hours", "{owned_hours}*SUM({d@1}:{d@Y})"),
    ("pv_useful", "Present value of useful GPU-hours", "{demand}*SUM({d@1}:{d@Y})"),
    ("per_owned_hour", "Levelized cost per owned GPU-hour", "{npv_own}/((1-{tax})*{pv_owned})"),
    ("per_useful_hour", "Levelized cost per useful GPU-hour", "{npv_own}/((1-{tax})*{pv_useful})"),
    ("rent_per_useful_hour", "Renting per useful GPU-hour", "{npv_rent}/((1-{tax})*{pv_useful})"),
    ("saving_per_useful_hour", "Saving per useful GPU-hour", "{rent_per_useful_hour}-{per_useful_hour}"),
    ("per_work", "Levelized cost per unit of training work", "{per_useful_hour}/{work}"),
    ("rent_per_work", "Renting per unit of training work", "{rent_per_useful_hour}/{work}"),
    ("payback", "Payback (years)", f'IF(MIN({{pb@1}}:{{pb@Y}})>={NEVER:g},"never",MIN({{pb@1}}:{{pb@Y}}))'),
    ("discounted_payback", "Discounted payback (years)",
     f'IF(MIN({{dpb@1}}:{{dpb@Y}})>={NEVER:g},"never",MIN({{dpb@1}}:{{dpb@Y}}))'),
    ("break_even", "Break-even effective utilization",
     'IF({ref_committed}=1,"n/a",MAX(0,({npv_own}/(1-{tax})-SUMPRODUCT({extras@0}:{extras@Y},{d@0}:{d@Y}))'
     '/({nodes}*{gpn}*8760*SUMPRODUCT({price@0}:{price@Y},{d@0}:{d@Y}))))'),
    ("break_even_sched", "Break-even scheduler utilization", 'IF({ref_committed}=1,"n/a",{break_even}/{avail})'),
    ("total_cost_of_ownership", "Total cost of ownership (undiscounted, before tax)",
     "{capex}+SUM({opex@1}:{opex@Y})-SUM({resale@1}:{resale@Y})"),
)

_BOLD = Font(bold=True)
_INPUT_FILL = PatternFill("solid", fgColor="FFF2CC")     # editable cells, the usual yellow
# Number formats: money in millions above a million (CNY 1.6 M), shares as percentages (59.5%).
MONEY = '[>=1000000]#,##0.0,," M";[<=-1000000]-#,##0.0,," M";#,##0'
PRICE = "#,##0.00"
PERCENT = "0.0%"
YEARS = "0.0"


def _yearly(name: str, y: int) -> str:
    """The formula of a yearly quantity in year y; {x} is a scalar of the column, {x@k} year k of x."""
    if y == 0:
        return {"d": "1", "bv": "{capex}", "own": "{capex}", "net": "-{capex}", "cum": "{net@0}",
                "cumd": "{net@0}"}.get(name, "0")
    live = f"IF({y}>{{n}},0,{{expr}})"    # nothing happens after the life
    g = f"^({y}-1)"
    exprs = {
        "d": f"1/(1+{{r}})^{y}",
        "dep": (f'IF({{method}}="declining-balance",MIN(MAX({{db_rate}}*{{bv@{y - 1}}},({{bv@{y - 1}}}-{{salvage}})'
                f'/({{n}}-{y}+1)),{{bv@{y - 1}}}-{{salvage}}),({{capex}}-{{salvage}})/{{n}})'),
        "power": f"{{power1}}*(1+{{g_power}}){g}", "colo": f"{{colo1}}*(1+{{g_colo}}){g}",
        "staff": f"{{staff1}}*(1+{{g_staff}}){g}", "support": "{support1}", "repairs": "{repairs1}",
        "topup": (f"{{topup_price}}*(1+{{topup_traj}}){g}*(1+{{g_fx}}*{{topup_foreign}}){g}*{{topup_hours}}"
                  f"+{{topup_share}}*({{storage_y}}+{{egress_y}}+{{cloud_fte}}*{{fte_cost}}*(1+{{g_staff}}){g})"),
        "opex": f"{{power@{y}}}+{{colo@{y}}}+{{staff@{y}}}+{{support@{y}}}+{{repairs@{y}}}+{{topup@{y}}}",
        "price": f"{{ref_price}}*(1+{{ref_traj}}){g}*(1+{{g_fx}}*{{ref_foreign}}){g}",
        "rstorage": "{storage_y}", "regress": "{egress_y}", "rstaff": f"{{cloud_fte}}*{{fte_cost}}*(1+{{g_staff}}){g}",
    }
    if name in exprs:
        return live.replace("{expr}", exprs[name])
    plain = {
        "bv": f"{{bv@{y - 1}}}-{{dep@{y}}}",
        "resale": f"IF({y}={{n}},{{salvage}},0)",
        "rent": f"{{price@{y}}}*{{paid_hours}}",
        "rent_total": f"{{rent@{y}}}+{{rstorage@{y}}}+{{regress@{y}}}+{{rstaff@{y}}}",
        "extras": f"{{rstorage@{y}}}+{{regress@{y}}}+{{rstaff@{y}}}",
        "taxable": f"{{rent_total@{y}}}-{{opex@{y}}}-{{dep@{y}}}",
        "tax_y": f"{{tax}}*{{taxable@{y}}}",
        "own": f"{{opex@{y}}}-{{tax}}*({{opex@{y}}}+{{dep@{y}}})-{{resale@{y}}}",
        "rentc": f"(1-{{tax}})*{{rent_total@{y}}}",
        "net": f"{{rentc@{y}}}-{{own@{y}}}",
        "cum": f"{{cum@{y - 1}}}+{{net@{y}}}",
        "cumd": f"{{cumd@{y - 1}}}+{{net@{y}}}*{{d@{y}}}",
        "pb": (f"IF(AND({{cum@{y - 1}}}<0,{{cum@{y}}}>=0),{y - 1}+(-{{cum@{y - 1}}})/{{net@{y}}},{NEVER:g})"),
        "dpb": (f"IF(AND({{cumd@{y - 1}}}<0,{{cumd@{y}}}>=0),{y - 1}+(-{{cumd@{y - 1}}})/({{net@{y}}}*{{d@{y}}}),"
                f"{NEVER:g})"),
    }
    return plain[name]


@dataclass
class Case:
    """One Model column: a title and the rows it overrides (formula text; {link} is the default link)."""
    title: str
    overrides: dict[str, str] = field(default_factory=dict)


class _Book:
    def __init__(self, rep: Report):
        self.rep, self.cfg, self.cur = rep, rep.cfg, rep.cfg.currency
        self.wb = Workbook()
        ws = self.wb.active
        ws.title = "Summary"
        self.summary = ws
        self.cash = self.wb.create_sheet("Cash flow")
        self.inputs = self.wb.create_sheet("Inputs")
        self.fx = self.wb.create_sheet("FX")
        self.rentals = self.wb.create_sheet("Rentals")
        self.model = self.wb.create_sheet("Model")
        self.torn = self.wb.create_sheet("Tornado")
        self.two = self.wb.create_sheet("Two-way")
        self.scen = self.wb.create_sheet("Scenarios")
        self.in_row: dict[str, int] = {}
        self.fx_row: dict[str, int] = {}
        self.rent_row: dict[str, int] = {}
        self.m_row: dict[str, int] = {}
        # rows for years 0..Y, Y the longest life of any column (the tornado's longer life included)
        lives = [self.cfg.v("finance.life_years")] + [sc.v("finance.life_years") for _, sc in self.cfg.scenarios]
        lives += [b.high_input for b in rep.bars if b.key == "finance.life_years"]
        self.years = int(max(lives)) + 1

    # ---- FX, Inputs, Rentals
    def write_fx(self) -> None:
        ws, cfg = self.fx, self.cfg
        ws.append(["currency", f"{self.cur} per unit", "date", "source"])
        currencies = {i.orig_currency for i in cfg.inputs.values() if i.orig_currency}
        currencies |= {r.price.orig_currency for r in cfg.rentals if r.price.orig_currency}
        currencies |= {p.currency for p in cfg.catalog.prices.values() if p.currency != self.cur}
        for cur in sorted(currencies):
            rate = next((r for r in cfg.rates_used if r.currency == cur), cfg.catalog.rates.get(cur))
            ws.append([cur, cfg.catalog.factor(cur, self.cur), rate.date.isoformat() if rate else "",
                       rate.source if rate else f"{cfg.catalog.base} base currency"])
            self.fx_row[cur] = ws.max_row
            ws.cell(ws.max_row, 2).fill = _INPUT_FILL
        ws.append([])
        ws.append(["Edit a rate: every amount quoted in that currency moves (Inputs, Rentals, Model)."])

    def fx_ref(self, cur: str) -> str:
        return f"FX!$B${self.fx_row[cur]}"

    def amount_cell(self, ws, row: int, col_amount: int, value: float, orig: float | None, cur: str) -> str:
        """Write an editable amount; return the formula of its value in the report currency."""
        if orig is None or not cur:
            ws.cell(row, col_amount, value).fill = _INPUT_FILL
            return f"{get_column_letter(col_amount)}{row}"
        ws.cell(row, col_amount, orig).fill = _INPUT_FILL
        return f"{get_column_letter(col_amount)}{row}*{self.fx_ref(cur)}"

    def write_inputs(self) -> None:
        ws, cfg = self.inputs, self.cfg
        ws.append(["input", "value", "unit", "basis", "source", "date", "amount (edit)", "currency"])
        for name, key in MODEL_INPUTS:
            i = cfg.inputs[key]
            row = ws.max_row + 1
            ws.append([key, None, i.unit, i.basis, ("HISTORICAL " if i.historical else "") + i.source,
                       i.date.isoformat() if i.date else "", None, i.orig_currency or ""])
            if i.orig_currency:
                ws.cell(row, 7, i.orig_amount).fill = _INPUT_FILL
                ws.cell(row, 2, f"=G{row}*{self.fx_ref(i.orig_currency)}")
            else:
                ws.cell(row, 2, i.value).fill = _INPUT_FILL
            ws.cell(row, 2).number_format = _format(key)
            self.in_row[name] = row
        row = ws.max_row + 1
        ws.append(["finance.depreciation", cfg.options.get("finance.depreciation", "straight-line"), "",
                   "assumed", "straight-line or declining-balance"])
        ws.cell(row, 2).fill = _INPUT_FILL
        self.in_row["method"] = row
        for gpu in sorted(cfg.catalog.models):
            row = ws.max_row + 1
            key = f"generation.throughput.{gpu}"
            i = cfg.inputs.get(key)
            model = cfg.catalog.models[gpu]
            ws.append([key, throughput(cfg, gpu), "x A100 training throughput", i.basis if i else "catalog",
                       i.source if i else model.throughput_source])
            ws.cell(row, 2).fill = _INPUT_FILL
            self.in_row[f"tp:{gpu}"] = row
        ws.append([])
        ws.append(["Edit the yellow cells: Model, Cash flow, Rentals, Tornado, Scenarios and Summary recompute."])

    def write_rentals(self) -> None:
        ws, cfg, cur = self.rentals, self.cfg, self.cur
        ws.append(["option", "term", "amount (edit)", "currency", f"price {cur}/GPU-h", "reserved (1/0)",
                   "provider availability", "price change per year", "foreign (1/0)", f"per useful GPU-h {cur}",
                   f"NPV saving of owning {cur}", "break-even effective util.", "break-even scheduler util.",
                   "source", "date"])
        for r in cfg.rentals:
            row = ws.max_row + 1
            ws.append([r.id, TERM_LABEL[r.term]])
            value = self.amount_cell(ws, row, 3, r.price.value, r.price.orig_amount, r.price.orig_currency)
            ws.cell(row, 4, r.price.orig_currency or cur)
            ws.cell(row, 5, f"={value}").number_format = PRICE
            ws.cell(row, 6, 1 if r.committed else 0)
            ws.cell(row, 7, r.availability.value).fill = _INPUT_FILL
            ws.cell(row, 7).number_format = PERCENT
            if r.follows_default_trajectory:
                ws.cell(row, 8, f"=Inputs!$B${self.in_row['g_rent']}")
            else:
                ws.cell(row, 8, r.trajectory.value).fill = _INPUT_FILL
            ws.cell(row, 8).number_format = PERCENT
            ws.cell(row, 9, 1 if r.price.orig_currency else 0)
            ws.cell(row, 14, ("HISTORICAL " if r.price.historical else "") + r.price.source)
            ws.cell(row, 15, r.price.date.isoformat() if r.price.date else "")
            self.rent_row[r.id] = row

    def rental_links(self, rid: str, prefix: str = "ref") -> dict[str, str]:
        row = self.rent_row[rid]
        rental = next(r for r in self.cfg.rentals if r.id == rid)
        # an option without a trajectory of its own follows the column's rental trend
        traj = "{g_rent}" if rental.follows_default_trajectory else f"Rentals!$H${row}"
        links = {f"{prefix}_price": f"Rentals!$E${row}", f"{prefix}_traj": traj,
                 f"{prefix}_foreign": f"Rentals!$I${row}"}
        if prefix == "ref":
            links |= {"ref_committed": f"Rentals!$F${row}", "ref_avail": f"Rentals!$G${row}"}
        return links

    # ---- Model
    def default_links(self) -> dict[str, str]:
        links = {name: f"Inputs!$B${self.in_row[name]}" for name, _ in MODEL_INPUTS}
        links["method"] = f"Inputs!$B${self.in_row['method']}"
        links |= self.rental_links(self.cfg.reference)
        links |= self.rental_links(topup_option(self.cfg).id, "topup")
        links |= {"own_nodes": "{nodes}", "own_sched": "{sched}", "demand": "{nodes}*{gpn}*8760*{sched}*{avail}",
                  "work": "1"}
        return links

    def write_model(self, cases: list[Case]) -> None:
        ws = self.model
        ws.append(["quantity"] + [c.title for c in cases])
        for name, key in MODEL_INPUTS:
            ws.append([key])
            self.m_row[name] = ws.max_row
        for name, lab in PLAN_ROWS:
            ws.append([lab])
            self.m_row[name] = ws.max_row
        for name, lab, _ in SCALARS:
            ws.append([lab])
            self.m_row[name] = ws.max_row
        for name, lab in YEARLY:
            for y in range(self.years):
                ws.append([f"{lab}, year {y}"])
                self.m_row[f"{name}@{y}"] = ws.max_row
        for name, lab, _ in RESULTS:
            ws.append([lab])
            self.m_row[name] = ws.max_row
        defaults = self.default_links()
        for ci, case in enumerate(cases):
            col = get_column_letter(2 + ci)
            refs = {k: f"{col}{r}" for k, r in self.m_row.items()}
            refs["Y"] = str(self.years - 1)

            def cell(template: str) -> str:
                text = template
                for _ in range(2):   # links may name rows of the same column
                    text = _fill(text, refs, self.years - 1)
                return "=" + text

            for name in [n for n, _ in MODEL_INPUTS] + [n for n, _ in PLAN_ROWS]:
                link = defaults[name]
                expr = case.overrides.get(name, "{link}").replace("{link}", link)
                ws[f"{col}{self.m_row[name]}"] = cell(expr)
            for name, _, formula in SCALARS:
                ws[f"{col}{self.m_row[name]}"] = cell(formula)
            for name, _ in YEARLY:
                for y in range(self.years):
                    c = ws[f"{col}{self.m_row[f'{name}@{y}']}"]
                    formula = _yearly(name, y)
                    c.value = 0 if formula == "0" else cell(formula)     # year 0 has no flows but capex
                    c.number_format = "0.0000" if name == "d" else YEARS if name in ("pb", "dpb") else MONEY
            for name, _, formula in RESULTS:
                c = ws[f"{col}{self.m_row[name]}"]
                c.value = cell(formula)
                c.number_format = (PERCENT if name.startswith("break_even") else YEARS if "payback" in name
                                   else PRICE if "per_" in name else MONEY)
        ws.freeze_panes = "B2"

    def mref(self, col: int, name: str) -> str:
        return f"Model!${get_column_letter(2 + col)}${self.m_row[name]}"


def _fill(template: str, refs: dict[str, str], last_year: int) -> str:
    """Replace {name} and {name@y} (y may be Y: the last year) by cell addresses."""
    out, i = [], 0
    while i < len(template):
        j = template.find("{", i)
        if j < 0:
            out.append(template[i:])
            break
        k = template.find("}", j)
        out.append(template[i:j])
        key = template[j + 1:k]
        if key.endswith("@Y"):
            key = f"{key[:-2]}@{last_year}"
        out.append(refs.get(key, "{" + key + "}"))
        i = k + 1
    return "".join(out)


def _format(key: str) -> str:
    kind = input_kind(key)
    if kind in ("frac", "util", "change", "tax"):
        return PERCENT
    if kind == "money":
        return MONEY
    return "#,##0.####"


# ---------------------------------------------------------------- cases

def _swing_expr(key: str, side: str) -> str:
    """Excel text of the low or high swing of an input: the same rules as analysis.swing_values."""
    s = "Inputs!$B${swing_row}"
    if key == "finance.life_years":
        step = f"MAX(1,ROUND({{link}}*{s},0))"
        return f"MAX(1,{{link}}-{step})" if side == "low" else f"MIN(30,{{link}}+{step})"
    down, up = f"{{link}}*(1-{s})", f"{{link}}*(1+{s})"
    expr = f"IF({{link}}<0,{up},{down})" if side == "low" else f"IF({{link}}<0,{down},{up})"
    kind = input_kind(key)
    if side == "high" and (kind in _AT_MOST_1 or key == "rental.availability"):
        expr = f"MIN(1,{expr})"
    if side == "high" and kind == "tax":
        expr = f"MIN(0.99,{expr})"
    if kind == "change":
        expr = f"MAX(-0.99,{expr})" if side == "low" else f"MIN(1,{expr})"
    if side == "low" and key in _MIN:
        expr = f"MAX({_MIN[key]:g},{expr})"
    return expr


def tornado_cases(book: _Book, bars: list[Bar]) -> list[tuple[Bar, Case, Case]]:
    cfg = book.cfg
    out = []
    for b in bars:
        rows: list[str]
        if b.key.startswith("fx."):
            cur = b.key[3:]
            rows = [NAME_OF[i.key] for i in cfg.inputs.values() if i.orig_currency == cur and i.key in NAME_OF]
            rows += ["ref_price"] if cfg.ref_rental().price.orig_currency == cur else []
            rows += ["topup_price"] if topup_option(cfg).price.orig_currency == cur else []
            exprs = {"low": "{link}*(1-Inputs!$B${swing_row})", "high": "{link}*(1+Inputs!$B${swing_row})"}
        else:
            special = {"rental.reference": ["ref_price"], "rental.availability": ["ref_avail"]}
            rows = special[b.key] if b.key in special else [NAME_OF[b.key]]
            exprs = {side: _swing_expr(b.key, side) for side in ("low", "high")}
            if b.key == "rental.reference" and topup_option(cfg).id == cfg.reference:
                rows = rows + ["topup_price"]
        cases = []
        for side in ("low", "high"):
            e = exprs[side].replace("{swing_row}", str(book.in_row["swing"]))
            cases.append(Case(f"{b.label} {side}", {r: e for r in rows}))
        out.append((b, cases[0], cases[1]))
    return out


def _const(v: float | str) -> str:
    return f'"{v}"' if isinstance(v, str) else repr(float(v))


def _rental_consts(book: _Book, r: Rental, prefix: str = "ref") -> dict[str, str]:
    """A rental option that is not in the Rentals sheet (another GPU model's): live through the FX sheet."""
    price = r.price
    value = (f"{price.orig_amount!r}*{book.fx_ref(price.orig_currency)}" if price.orig_currency
             and price.orig_currency in book.fx_row else _const(price.value))
    traj = "{g_rent}" if r.follows_default_trajectory else _const(r.trajectory.value)
    out = {f"{prefix}_price": value, f"{prefix}_traj": traj,
           f"{prefix}_foreign": "1" if price.orig_currency else "0"}
    if prefix == "ref":
        out |= {"ref_committed": "1" if r.committed else "0", "ref_avail": _const(r.availability.value)}
    return out


def _input_consts(book: _Book, base: CostConfig, other: CostConfig) -> dict[str, str]:
    """Overrides for every input `other` sets differently from `base` (live through FX when converted)."""
    out = {}
    for name, key in MODEL_INPUTS:
        a, b = base.inputs[key], other.inputs[key]
        if a.value != b.value:
            out[name] = (f"{b.orig_amount!r}*{book.fx_ref(b.orig_currency)}"
                         if b.orig_currency and b.orig_currency in book.fx_row else _const(b.value))
    if other.options.get("finance.depreciation") != base.options.get("finance.depreciation"):
        out["method"] = _const(other.options.get("finance.depreciation", "straight-line"))
    return out


@dataclass
class ScenarioColumn:
    name: str
    case: Case
    rows: list[tuple[str, str]]      # (scenario name, kind) rows of the Scenarios sheet this column feeds


def scenario_cases(book: _Book) -> list[ScenarioColumn]:
    """One Model column per scenario of analysis.scenarios, in the same order (rent rows read option columns)."""
    cfg, rep = book.cfg, book.rep
    cols: list[ScenarioColumn] = []
    names = iter(s.name for s in rep.scenarios if s.kind in ("hybrid", "scale", "config", "generation"))
    hyb_nodes = ("MAX(1,ROUNDUP({nodes}*{gpn}*8760*{sched}*{avail}*(1-{peak})/({gpn}*8760*{base_util}*{avail})"
                 "-1E-09,0))")
    cols.append(ScenarioColumn("hybrid", Case(next(names), {"own_nodes": hyb_nodes, "own_sched": "{base_util}"}),
                               [("hybrid", "own")]))
    n = cfg.v("cluster.nodes")
    for factor in SCALE_FACTORS:
        if scaled_nodes(n, factor) == n:
            continue
        cols.append(ScenarioColumn("scale", Case(next(names), {"nodes": f"MAX(1,ROUND({{link}}*{factor!r},0))"}),
                                   [("scale", "own")]))
    tp = throughput(cfg, cfg.gpu_model)
    tp_this = f"Inputs!$B${book.in_row[f'tp:{cfg.gpu_model}']}"
    for _, sc in cfg.scenarios:
        over = _input_consts(book, cfg, sc)
        ref = sc.ref_rental()
        if ref.id in book.rent_row and ref == next((r for r in cfg.rentals if r.id == ref.id), None):
            over |= {k: v for k, v in book.rental_links(ref.id).items()}
        else:
            over |= _rental_consts(book, ref)
        if sc.gpu_model != cfg.gpu_model and f"tp:{sc.gpu_model}" in book.in_row:
            over["work"] = f"Inputs!$B${book.in_row[f'tp:{sc.gpu_model}']}/{tp_this}"
        elif throughput(sc, sc.gpu_model) != tp:
            over["work"] = _const(throughput(sc, sc.gpu_model) / tp)
        cols.append(ScenarioColumn("config", Case(next(names), over), [("config", "own")]))
    for gpu, other in other_models(cfg):
        over = _input_consts(book, cfg, other) | _rental_consts(book, other.ref_rental())
        over["work"] = f"Inputs!$B${book.in_row[f'tp:{gpu}']}/{tp_this}"
        own_name, rent_name = next(names), next(names)
        cols.append(ScenarioColumn("generation", Case(own_name, over), [(own_name, "own"), (rent_name, "rent")]))
    return cols


# ---------------------------------------------------------------- sheets that read the Model

def _cash_flow_sheet(book: _Book) -> None:
    from clusterkit.cost.render.text import CASH_FLOW_ROWS

    ws, cur = book.cash, book.cur
    n = int(book.cfg.v("finance.life_years"))
    ws.append([f"Owning against renting on {book.cfg.reference}, {cur}"] + [f"year {y}" for y in range(n + 1)])
    names = {"capex": None, "depreciation": "dep", "book_value": "bv", "power": "power", "colocation": "colo",
             "staff": "staff", "support": "support", "repairs": "repairs", "topup_rent": "topup", "opex": "opex",
             "resale": "resale", "rent_price": "price", "rent": "rent", "rent_storage": "rstorage",
             "rent_egress": "regress", "rent_staff": "rstaff", "rent_total": "rent_total",
             "taxable_difference": "taxable", "tax": "tax_y", "own_cost": "own", "rent_cost": "rentc",
             "net_cash_flow": "net", "discount_factor": "d", "cumulative": "cum", "cumulative_discounted": "cumd"}
    net_row = 0
    for label, attr in CASH_FLOW_ROWS:
        row = ws.max_row + 1
        ws.cell(row, 1, label)
        for y in range(n + 1):
            if attr == "capex":
                f = f"={book.mref(0, 'capex')}" if y == 0 else 0
            else:
                f = f"={book.mref(0, f'{names[attr]}@{y}')}"
            c = ws.cell(row, 2 + y, f)
            c.number_format = "0.0000" if attr == "discount_factor" else PRICE if attr == "rent_price" else MONEY
        if attr == "net_cash_flow":
            net_row = row
    last = get_column_letter(2 + n)
    rows = (("npv", "NPV of the net cash flow", f"={book.mref(0, 'npv_saving')}", MONEY),
            ("npv2", "NPV again, with the NPV function",
             f"=B{net_row}+NPV({book.mref(0, 'r')},C{net_row}:{last}{net_row})", MONEY),
            ("irr", "IRR", f"=IRR(B{net_row}:{last}{net_row})", PERCENT),
            ("payback", "Payback (years)", f"={book.mref(0, 'payback')}", YEARS),
            ("dpayback", "Discounted payback (years)", f"={book.mref(0, 'discounted_payback')}", YEARS))
    row = ws.max_row + 2      # one empty row after the table
    for name, lab, formula, fmt in rows:
        ws.cell(row, 1, lab)
        ws.cell(row, 2, formula).number_format = fmt
        book.m_row[f"cash:{name}"] = row
        row += 1


def render_xlsx(rep: Report) -> bytes:
    book = _Book(rep)
    cfg, cur = book.cfg, book.cur
    book.write_fx()
    book.write_inputs()
    book.write_rentals()
    cases = [Case(f"base: owning vs {cfg.reference}")]
    option_col = {}
    for r in cfg.rentals:
        option_col[r.id] = len(cases)
        cases.append(Case(f"vs {r.id}", {k: v for k, v in book.rental_links(r.id).items()}))
    torn = tornado_cases(book, rep.bars)
    torn_col = {}
    for b, lo, hi in torn:
        torn_col[b.key] = len(cases)
        cases += [lo, hi]
    scen = scenario_cases(book)
    scen_col = {}
    for sc in scen:
        scen_col[sc.case.title] = len(cases)
        cases.append(sc.case)
    book.write_model(cases)

    # Rentals' results read their option's column
    for r in cfg.rentals:
        row, col = book.rent_row[r.id], option_col[r.id]
        for ci, name, fmt in ((10, "rent_per_useful_hour", PRICE), (11, "npv_saving", MONEY), (12, "break_even", PERCENT),
                              (13, "break_even_sched", PERCENT)):
            c = book.rentals.cell(row, ci, f"={book.mref(col, name)}")
            c.number_format = fmt

    ws = book.torn
    ws.append(["input", "low input", "base input", "high input", f"NPV saving at low {cur}",
               f"NPV saving at high {cur}", "spread"])
    for b, lo, hi in torn:
        col = torn_col[b.key]
        first = next(iter(lo.overrides))
        r = ws.max_row + 1
        base = "1" if b.key.startswith("fx.") else book.mref(0, first)
        low_in = f"={book.mref(col, first)}/{book.mref(0, first)}" if b.key.startswith("fx.") else \
            f"={book.mref(col, first)}"
        high_in = f"={book.mref(col + 1, first)}/{book.mref(0, first)}" if b.key.startswith("fx.") else \
            f"={book.mref(col + 1, first)}"
        ws.append([b.label, low_in, f"={base}", high_in, f"={book.mref(col, 'npv_saving')}",
                   f"={book.mref(col + 1, 'npv_saving')}", f"=ABS(F{r}-E{r})"])
        for ci in (2, 3, 4):
            ws.cell(r, ci).number_format = _format(b.key) if not b.key.startswith("fx.") else "0.00"
        for ci in (5, 6, 7):
            ws.cell(r, ci).number_format = MONEY
    if rep.minor:
        ws.append([])
        ws.append(["Also swung, moving the NPV by less than the threshold: "
                   + ", ".join(f"{b.label} ({m:.1%})" for b, m in rep.minor)])

    tw = rep.two_way
    ws = book.two
    ws.append([f"NPV saving of owning ({cur}): scheduler utilization (rows) x {cfg.reference} price (columns); "
               f"values computed by clusterkit"])
    ws.append(["scheduler util."] + tw.prices)
    for c in ws[2][1:]:
        c.number_format = PRICE
    for u, row in zip(tw.utilizations, tw.values):
        ws.append([u] + row)
        ws.cell(ws.max_row, 1).number_format = PERCENT
        for c in ws[ws.max_row][1:]:
            c.number_format = MONEY

    ws = book.scen
    ws.append(["scenario", f"{cur} per useful GPU-hour", f"{cur} per unit of training work", f"NPV of costs {cur}",
               f"NPV saving of owning {cur}", "note"])
    by_title = {sc.case.title: sc for sc in scen}
    seen_generation: set[str] = set()
    for s in rep.scenarios:
        if s.kind == "own" and s.name.endswith("(this config)"):
            col, what = 0, "own"
        elif s.kind == "rent":
            rid = s.name.split(" ", 1)[1].rsplit(" (", 1)[0]
            col, what = option_col[rid], "rent"
        elif s.name in by_title:
            col, what = scen_col[s.name], "own"
        else:   # the rent row of a generation column
            gen = next(sc for sc in scen if sc.name == "generation" and sc.case.title not in seen_generation
                       and any(n == s.name for n, _ in sc.rows))
            seen_generation.add(gen.case.title)
            col, what = scen_col[gen.case.title], "rent"
        if what == "own":
            vals = [f"={book.mref(col, 'per_useful_hour')}", f"={book.mref(col, 'per_work')}",
                    f"={book.mref(col, 'npv_own')}", f"={book.mref(col, 'npv_saving')}"]
        else:
            vals = [f"={book.mref(col, 'rent_per_useful_hour')}", f"={book.mref(col, 'rent_per_work')}",
                    f"={book.mref(col, 'npv_rent')}", ""]
        ws.append([s.name] + vals + [s.note])
        for ci, fmt in ((2, PRICE), (3, PRICE), (4, MONEY), (5, MONEY)):
            ws.cell(ws.max_row, ci).number_format = fmt
    ws.append([])
    ws.append(["Every figure is a formula over the Model sheet's column for that scenario."])

    _cash_flow_sheet(book)
    title = ("EXAMPLE (built-in) - " if cfg.is_example else "") + \
        f"{cfg.v('cluster.nodes'):g} nodes x {cfg.v('cluster.gpus_per_node'):g} {cfg.gpu_model}, {cur}, as of {cfg.as_of}"
    ws = book.summary
    ws.append(["clusterkit cost report", title])
    ws["A1"].font = _BOLD
    lines = (("per_owned_hour", f"Levelized cost per owned GPU-hour ({cur})", PRICE),
             ("per_useful_hour", f"Levelized cost per useful GPU-hour ({cur})", PRICE),
             ("rent_per_useful_hour", f"Renting {cfg.reference} per useful GPU-hour ({cur})", PRICE),
             ("saving_per_useful_hour", f"Saving per useful GPU-hour ({cur})", PRICE),
             ("npv_saving", f"NPV saving of owning, after tax ({cur})", MONEY),
             ("cash:irr", "IRR of owning instead of renting", PERCENT),
             ("payback", "Payback (years)", YEARS), ("discounted_payback", "Discounted payback (years)", YEARS),
             ("break_even", "Break-even effective utilization vs the reference", PERCENT),
             ("break_even_sched", "Break-even scheduler utilization", PERCENT),
             ("capex", f"Capex ({cur})", MONEY), ("total_cost_of_ownership", f"Total cost of ownership ({cur})", MONEY))
    for name, lab, fmt in lines:
        ref = f"'Cash flow'!$B${book.m_row[name]}" if name == "cash:irr" else book.mref(0, name)
        ws.append([lab, f"={ref}"])
        ws.cell(ws.max_row, 2).number_format = fmt
    ws.append(["Effective utilization", f"={book.mref(0, 'sched')}*{book.mref(0, 'avail')}"])
    ws.cell(ws.max_row, 2).number_format = PERCENT
    ws.append([])
    ws.append(["Measured inputs", ", ".join(rep.measured) or "none (all assumed)"])
    for w in rep.warnings:
        ws.append(["Warning", w])
    for sheet, widths in ((book.summary, (52, 60)), (book.inputs, (40, 16, 26, 10, 80, 12, 14, 9)),
                          (book.model, (46,) + (18,) * len(cases)), (book.fx, (10, 14, 12, 90)),
                          (book.rentals, (30, 16, 12, 9, 14, 10, 12, 12, 10, 16, 18, 14, 14, 80, 12)),
                          (book.torn, (30, 14, 14, 14, 20, 20, 16)), (book.scen, (64, 18, 18, 18, 20, 70)),
                          (book.cash, (56,) + (16,) * 12), (book.two, (16,) + (16,) * 6)):
        for i, w in enumerate(widths, start=1):
            sheet.column_dimensions[get_column_letter(i)].width = w
        for c in sheet[1]:
            c.font = _BOLD
    buf = io.BytesIO()
    book.wb.save(buf)
    return buf.getvalue()

