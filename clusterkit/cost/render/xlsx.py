"""XLSX workbook whose cells are live formulas: change an input, the results move.

Sheets: Summary (headline formulas), Inputs (editable values with basis and
source), Rentals (price = amount x exchange rate, per useful hour, break-even),
Model (the formula chain; column B is the base case, the other columns the
tornado's low/high cases, each the same chain with one input swung), Tornado,
Scenarios (values as computed by clusterkit, not live). The chain mirrors
clusterkit/cost/model.py; tests recompute it with a formula engine.
"""

from __future__ import annotations

import io

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

from clusterkit.cost.analysis import TORNADO_INPUTS
from clusterkit.cost.report import TERM_LABEL, Report

# Model inputs in the order of the Inputs sheet: (short name, config key).
MODEL_INPUTS = (
    ("nodes", "cluster.nodes"), ("gpn", "cluster.gpus_per_node"), ("server", "capex.server_price"),
    ("network", "capex.network_per_node"), ("storage", "capex.storage"), ("install", "capex.installation"),
    ("r", "finance.cost_of_capital"), ("n", "finance.life_years"), ("resid_frac", "finance.residual_fraction"),
    ("tax", "finance.tax_rate"), ("gpu_w", "power.gpu_power_w"), ("overhead_w", "power.non_gpu_overhead_w"),
    ("pue", "power.pue"), ("kwh", "power.price_per_kwh"), ("colo_kw", "colocation.per_kw_month"),
    ("prov_kw", "colocation.provisioned_kw_per_node"), ("rack_month", "colocation.per_rack_month"),
    ("racks", "colocation.racks"), ("fte", "operations.staff_fte"), ("fte_cost", "operations.staff_cost_per_fte_year"),
    ("support_frac", "operations.support_fraction_per_year"), ("fail_rate", "operations.failures_per_node_year"),
    ("fail_cost", "operations.cost_per_failure"), ("sched", "utilization.scheduler"),
    ("avail", "utilization.availability"), ("swing", "sensitivity.swing"), ("burst", "rental.hybrid_burst_share"),
)

# The derived chain: (name, label, formula over {names} of the same column). Names matching a
# CostResult field are compared with the model by the tests.
CHAIN = (
    ("capex", "Capex", "{nodes}*({server}+{network})+{storage}+{install}"),
    ("crf", "Capital recovery factor", "IF({r}=0,1/{n},{r}*(1+{r})^{n}/((1+{r})^{n}-1))"),
    ("residual_value", "Residual value", "{resid_frac}*{capex}"),
    ("annualised_capex", "Annualised capex", "({capex}-{residual_value}/(1+{r})^{n})*{crf}"),
    ("depreciation", "Depreciation per year", "({capex}-{residual_value})/{n}"),
    ("capital_charge", "Capital charge after tax effect", "({annualised_capex}-{tax}*{depreciation})/(1-{tax})"),
    ("node_power_kw", "Mean node power kW", "({gpu_w}+{overhead_w})/1000"),
    ("power", "Power per year", "{nodes}*{node_power_kw}*{pue}*8760*{kwh}"),
    ("colocation", "Colocation per year", "12*({colo_kw}*{prov_kw}*{nodes}+{rack_month}*{racks})"),
    ("staff", "Staff per year", "{fte}*{fte_cost}"),
    ("support", "Support per year", "{support_frac}*{nodes}*{server}"),
    ("failures", "Spares and failures per year", "{fail_rate}*{nodes}*{fail_cost}"),
    ("opex", "Opex per year", "{power}+{colocation}+{staff}+{support}+{failures}"),
    ("total_per_year", "Total per year", "{capital_charge}+{opex}"),
    ("gpu_hours_per_year", "GPU-hours per year", "{nodes}*{gpn}*8760"),
    ("effective_utilization", "Effective utilization", "{sched}*{avail}"),
    ("useful_gpu_hours_per_year", "Useful GPU-hours per year", "{gpu_hours_per_year}*{effective_utilization}"),
    ("cost_per_owned_gpu_hour", "Cost per owned GPU-hour", "{total_per_year}/{gpu_hours_per_year}"),
    ("cost_per_useful_gpu_hour", "Cost per useful GPU-hour", "{total_per_year}/{useful_gpu_hours_per_year}"),
    ("reference_per_useful_gpu_hour", "Reference rental per useful GPU-hour",
     "IF({ref_committed}=1,{ref_price}/{effective_utilization},{ref_price})"),
    ("saving_per_useful_gpu_hour", "Saving per useful GPU-hour",
     "{reference_per_useful_gpu_hour}-{cost_per_useful_gpu_hour}"),
    ("rent_per_year", "Renting the same useful hours per year",
     "{reference_per_useful_gpu_hour}*{useful_gpu_hours_per_year}"),
    ("total_cost_of_ownership", "Total cost of ownership (undiscounted)", "{capex}+{opex}*{n}-{residual_value}"),
    ("npv_own", "NPV of owning", "{total_per_year}/{crf}"),
    ("npv_rent", "NPV of renting", "{rent_per_year}/{crf}"),
    ("npv_saving", "NPV saving of owning", "{npv_rent}-{npv_own}"),
    ("payback_years", "Payback years", 'IF({rent_per_year}-{opex}>0,{capex}/({rent_per_year}-{opex}),"never")'),
    ("break_even_reference", "Break-even utilization vs reference",
     'IF({ref_committed}=1,"n/a",{cost_per_owned_gpu_hour}/{ref_price})'),
)

_BOLD = Font(bold=True)
_INPUT_FILL = PatternFill("solid", fgColor="FFF2CC")     # editable cells, the usual yellow


def render_xlsx(rep: Report) -> bytes:
    cfg, cur = rep.cfg, rep.cur
    wb = Workbook()
    summary = wb.active
    summary.title = "Summary"
    inputs = wb.create_sheet("Inputs")
    rentals = wb.create_sheet("Rentals")
    model = wb.create_sheet("Model")
    torn = wb.create_sheet("Tornado")
    scen = wb.create_sheet("Scenarios")

    # Inputs: one row per model input; column B is what finance edits.
    inputs.append(["input", "value", "unit", "basis", "source", "date", "converted from"])
    in_row: dict[str, int] = {}
    for name, key in MODEL_INPUTS:
        i = cfg.inputs[key]
        inputs.append([key, i.value, i.unit, i.basis, i.source, i.date.isoformat() if i.date else "", i.original])
        in_row[name] = inputs.max_row
        inputs.cell(inputs.max_row, 2).fill = _INPUT_FILL
    inputs.append([])
    inputs.append(["Edit the yellow cells; Model, Rentals, Tornado and Summary recompute."])

    # Rentals: amount in its own currency x rate = price in the report currency.
    rentals.append(["option", "term", "amount", "currency", f"rate to {cur}", f"price {cur}/GPU-h",
                    "reserved (1=paid every hour)", f"per useful GPU-h {cur}", "break-even utilization",
                    "source", "date"])
    ref_row = 0
    rental_rows = []
    for rent in cfg.rentals:
        amount, currency = _original(rent.price, cur)
        row = rentals.max_row + 1
        rentals.append([rent.id, TERM_LABEL[rent.term], amount, currency, rent.price.value / amount if amount else 1.0,
                        f"=C{row}*E{row}", 1 if rent.committed else 0, None, None, rent.price.source,
                        rent.price.date.isoformat() if rent.price.date else ""])
        for col in (3, 5):
            rentals.cell(row, col).fill = _INPUT_FILL
        rental_rows.append(row)
        if rent.id == cfg.reference:
            ref_row = row

    # Model: rows of inputs (linked to Inputs, swung in the tornado columns), then the chain.
    model.append(["quantity", "base"] + [f"{label} {side}" for _, label in TORNADO_INPUTS for side in ("low", "high")])
    m_row: dict[str, int] = {}
    for name, key in MODEL_INPUTS:
        model.append([key])
        m_row[name] = model.max_row
    for name, label in (("ref_price", f"Reference rental price ({cfg.reference})"),
                        ("ref_committed", "Reference is reserved (1/0)")):
        model.append([label])
        m_row[name] = model.max_row
    for name, label, _ in CHAIN:
        model.append([label])
        m_row[name] = model.max_row

    swing_of = {key: name for name, key in MODEL_INPUTS}
    cases = [("", None)] + [(key, side) for key, _ in TORNADO_INPUTS for side in ("low", "high")]
    for ci, (swung, side) in enumerate(cases):
        col = get_column_letter(2 + ci)
        links = {name: f"Inputs!$B${in_row[name]}" for name, _ in MODEL_INPUTS}
        links["ref_price"] = f"Rentals!$F${ref_row}"
        links["ref_committed"] = f"Rentals!$G${ref_row}"
        if swung:
            target = "ref_price" if swung == "rental.reference" else swing_of[swung]
            factor = f"(1-Inputs!$B${in_row['swing']})" if side == "low" else f"(1+Inputs!$B${in_row['swing']})"
            expr = f"{links[target]}*{factor}"
            if side == "high" and swung in ("utilization.scheduler", "finance.cost_of_capital"):
                expr = f"MIN(1,{expr})"
            links[target] = expr
        for name, link in links.items():
            model[f"{col}{m_row[name]}"] = f"={link}"
        refs = {k: f"{col}{r}" for k, r in m_row.items()}
        for name, _, formula in CHAIN:
            model[f"{col}{m_row[name]}"] = "=" + formula.format(**refs)

    # Rentals' derived columns need the Model's rows.
    u, owned = f"Model!$B${m_row['effective_utilization']}", f"Model!$B${m_row['cost_per_owned_gpu_hour']}"
    for row in rental_rows:
        rentals[f"H{row}"] = f"=IF(G{row}=1,F{row}/{u},F{row})"
        rentals[f"I{row}"] = f'=IF(G{row}=1,"n/a",{owned}/F{row})'

    # Tornado: each input's low/high case is a column of the Model sheet.
    torn.append(["input", "low input", "high input", f"saving low {cur}/useful GPU-h",
                 f"saving high {cur}/useful GPU-h", "spread"])
    sav = m_row["saving_per_useful_gpu_hour"]
    for k, (key, label) in enumerate(TORNADO_INPUTS):
        lo_col, hi_col = get_column_letter(3 + 2 * k), get_column_letter(4 + 2 * k)
        target = "ref_price" if key == "rental.reference" else swing_of[key]
        r = torn.max_row + 1
        torn.append([label, f"=Model!{lo_col}{m_row[target]}", f"=Model!{hi_col}{m_row[target]}",
                     f"=Model!{lo_col}{sav}", f"=Model!{hi_col}{sav}", f"=ABS(E{r}-D{r})"])

    scen.append(["scenario", f"{cur} per useful GPU-hour", f"{cur} per year", "note"])
    for s in rep.scenarios:
        scen.append([s.name, s.per_useful_gpu_hour, s.per_year, s.note])
    scen.append([])
    scen.append(["Values as computed by clusterkit for the inputs of this report (not live formulas)."])

    title = ("EXAMPLE (built-in) - " if cfg.is_example else "") + \
        f"{cfg.v('cluster.nodes'):g} nodes x {cfg.v('cluster.gpus_per_node'):g} {cfg.gpu_model}, {cur}, as of {cfg.as_of}"
    summary.append(["clusterkit cost report", title])
    summary["A1"].font = _BOLD
    for name, label in (("cost_per_owned_gpu_hour", f"Cost per owned GPU-hour ({cur})"),
                        ("cost_per_useful_gpu_hour", f"Cost per useful GPU-hour ({cur})"),
                        ("effective_utilization", "Effective utilization"),
                        ("reference_per_useful_gpu_hour", f"Reference rental {cfg.reference} per useful GPU-hour"),
                        ("saving_per_useful_gpu_hour", f"Saving per useful GPU-hour ({cur})"),
                        ("break_even_reference", "Break-even effective utilization vs reference"),
                        ("total_per_year", f"Total cost per year ({cur})"),
                        ("npv_saving", f"NPV saving of owning ({cur})"), ("payback_years", "Payback (years)")):
        summary.append([label, f"=Model!B{m_row[name]}"])
    summary.append([])
    summary.append(["Measured inputs", ", ".join(rep.measured) or "none (all assumed)"])
    for w in rep.warnings:
        summary.append(["Warning", w])
    for ws, widths in ((summary, (48, 60)), (inputs, (38, 16, 26, 10, 70, 12, 30)), (model, (40,) + (16,) * 13),
                       (rentals, (26, 16, 10, 9, 12, 14, 12, 16, 14, 70, 12)), (torn, (28, 14, 14, 20, 20, 12)),
                       (scen, (52, 20, 20, 60))):
        for i, w in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(i)].width = w
        for c in ws[1]:
            c.font = _BOLD
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _original(price, cur: str) -> tuple[float, str]:
    """The amount in its own currency (so the exchange rate stays an editable cell)."""
    if price.orig_amount is not None:
        return price.orig_amount, price.orig_currency
    return price.value, cur
