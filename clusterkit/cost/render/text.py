"""Plain renderers: terminal table, JSON, CSV (one row per figure), Markdown."""

from __future__ import annotations

import csv
import io
import json
import math

from clusterkit.cost.analysis import label
from clusterkit.cost.fmt import break_even, input_value, money, pct, value_of, years
from clusterkit.cost.report import TERM_LABEL, Report

# (label, Year field) rows of the year-by-year table, in order.
CASH_FLOW_ROWS = (
    ("Capex (servers, network, spares, storage, installation)", "capex"),
    ("Depreciation", "depreciation"), ("Book value (end of year)", "book_value"),
    ("Power", "power"), ("Colocation", "colocation"), ("Staff", "staff"), ("Support contracts", "support"),
    ("Repairs (failures)", "repairs"), ("Rented top-up (hybrid)", "topup_rent"), ("Opex", "opex"),
    ("Resale", "resale"),
    ("Rental price per GPU-hour", "rent_price"), ("Rent for the same useful hours", "rent"),
    ("Cloud storage", "rent_storage"), ("Egress", "rent_egress"), ("Cloud-side staff", "rent_staff"),
    ("Renting in total", "rent_total"),
    ("Taxable difference (rent - opex - depreciation)", "taxable_difference"), ("Extra tax owning pays", "tax"),
    ("Owning, after tax", "own_cost"), ("Renting, after tax", "rent_cost"),
    ("Net cash flow of owning (after tax)", "net_cash_flow"), ("Discount factor", "discount_factor"),
    ("Cumulative", "cumulative"), ("Cumulative, discounted", "cumulative_discounted"),
)


def cash_flow_table(rep: Report) -> tuple[list[str], list[list[str]]]:
    ys = rep.result.years
    header = ["item"] + [f"year {y.year}" for y in ys]
    rows = []
    for name, attr in CASH_FLOW_ROWS:
        vals = [getattr(y, attr) for y in ys]
        if attr == "topup_rent" and not any(vals):
            continue
        if attr == "discount_factor":
            rows.append([name] + [f"{v:.4f}" for v in vals])
        else:
            rows.append([name] + [money(v, rep.cur) if v else "-" for v in vals])
    return header, rows


def sections(rep: Report) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for every table of the report, shared by table, md and html."""
    r, c = rep.result, rep.cur
    cfg = rep.cfg
    summary = [
        ["Capex, of which spares", f"{money(r.capex, c)} ({money(r.spares, c)} spares)"],
        ["Resale at the end of the life", money(r.residual_value, c)],
        ["Depreciation", f"{cfg.options.get('finance.depreciation', 'straight-line')} over "
                         f"{cfg.v('finance.life_years'):g} years"],
        [f"Opex, year 1 ({r.node_power_kw:.2f} kW per node x PUE; {r.staff_fte:g} FTE)", money(r.opex, c)],
        ["Total cost of ownership (undiscounted, before tax)", money(r.total_cost_of_ownership, c)],
        ["NPV of owning's after-tax costs", money(r.npv_own, c)],
        [f"NPV of renting the same useful hours on {r.reference}, after tax", money(r.npv_rent, c)],
        ["NPV saving of owning", money(r.npv_saving, c)],
        ["IRR of owning instead of renting", pct(r.irr)],
        ["Payback (undiscounted)", years(r.payback_years)],
        ["Payback (discounted)", years(r.discounted_payback_years)],
        ["Levelized cost per owned GPU-hour", money(r.cost_per_owned_gpu_hour, c)],
        [f"Levelized cost per useful GPU-hour ({pct(r.effective_utilization)} effective utilization)",
         money(r.cost_per_useful_gpu_hour, c)],
        [f"Renting per useful GPU-hour on {r.reference}", money(r.reference_per_useful_gpu_hour, c)],
    ]
    rentals = [[x.id, TERM_LABEL[x.term], money(x.price_per_gpu_hour, c), money(x.per_useful_gpu_hour, c),
                money(x.npv_saving, c), pct(x.irr), break_even(x.break_even_utilization),
                break_even(x.break_even_scheduler_utilization), "own" if x.owning_cheaper else "rent"]
               for x in r.rentals]
    bars = [[b.label, f"{value_of(b.key, b.low_input, c)} / {value_of(b.key, b.base_input, c)} / "
                      f"{value_of(b.key, b.high_input, c)}", money(b.low, c), money(b.high, c), money(b.spread, c)]
            for b in rep.bars]
    minor = [[b.label, f"{value_of(b.key, b.low_input, c)} / {value_of(b.key, b.high_input, c)}", pct(m)]
             for b, m in sorted(rep.minor, key=lambda x: -x[1])]
    tw = rep.two_way
    two = [[pct(u)] + [money(v, c) for v in row] for u, row in zip(tw.utilizations, tw.values)]
    scen = [[s.name, money(s.per_useful_gpu_hour, c), money(s.per_work_unit, c), money(s.npv_cost, c),
             money(s.npv_saving, c) if s.npv_saving is not None else "-", s.note] for s in rep.scenarios]
    inputs = [[i.key, input_value(i, c), i.basis.upper() if i.basis == "measured" else i.basis,
               ("HISTORICAL " if i.historical else "") + i.source + (f" ({i.date})" if i.date else "")
               + (f" [{i.original}]" if i.original else "")]
              for i in cfg.inputs.values()]
    inputs += [["finance.depreciation", cfg.options.get("finance.depreciation", ""), "assumed", "cost config"]]
    inputs += [[f"rental.{x.id}", money(x.price.value, c) + " per GPU-hour", x.price.basis,
                ("HISTORICAL " if x.price.historical else "") + f"{x.price.source} ({x.price.date})"
                + (f" [{x.price.original}]" if x.price.original else "")] for x in cfg.rentals]
    inputs += [[f"rental.{x.id}.trajectory", pct(cfg.trajectory(x)) + " per year", x.trajectory.basis,
                "trajectory.rental_per_year" if x.follows_default_trajectory else x.trajectory.source]
               for x in cfg.rentals]
    inputs += [[f"fx.{x.currency}", f"{x.per_unit:g} {cfg.catalog.base}/{x.currency}", "catalog",
                f"{x.source} ({x.date})"] for x in cfg.rates_used]
    cf_header, cf_rows = cash_flow_table(rep)
    thr = cfg.v("sensitivity.threshold")
    return [
        ("Summary (every figure from the year-by-year table)", ["item", "value"], summary),
        (f"Cash flow year by year: owning against renting on {r.reference}", cf_header, cf_rows),
        ("Rental options (levelized per useful GPU-hour, with cloud storage, egress and staff)",
         ["option", "term", "price/GPU-h (year 1)", "per useful GPU-h", "NPV saving of owning", "IRR",
          "break-even util.", "break-even sched. util.", "cheaper"], rentals),
        (f"Sensitivity: NPV saving against {r.reference}, each input +-{cfg.v('sensitivity.swing'):.0%} "
         f"(those moving it by more than {thr:.0%})",
         ["input", "low / base / high", "NPV saving at low", "NPV saving at high", "spread"], bars),
        (f"Also swung, moving the NPV by {thr:.0%} or less", ["input", "low / high", "largest move"], minor),
        (f"NPV saving of owning: scheduler utilization (rows) x {r.reference} price (columns)",
         ["scheduler util."] + [f"{money(p, c)} ({f:.0%})" for p, f in zip(tw.prices, tw.price_factors)], two),
        ("Scenarios", ["scenario", "per useful GPU-h", "per unit of training work", "NPV of costs",
                       "NPV saving of owning", "note"], scen),
        ("Inputs (measured or assumed)", ["input", "value", "basis", "source"], inputs),
    ]


def _title(rep: Report) -> str:
    cfg = rep.cfg
    what = "built-in EXAMPLE" if cfg.is_example else cfg.path
    return (f"clusterkit cost report: {cfg.v('cluster.nodes'):g} nodes x {cfg.v('cluster.gpus_per_node'):g} "
            f"{cfg.gpu_model} ({what}), {rep.cur}, prices as of {cfg.as_of}")


def render_table(rep: Report) -> str:
    out = [_title(rep), ""] + [f"  {h}" for h in rep.headline()]
    out += [f"  Measured inputs: {', '.join(rep.measured) or 'none (all inputs assumed)'}", ""]
    for title, header, rows in sections(rep):
        out.append(title)
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
        widths = [min(w, 70) for w in widths]
        out.append("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
        for row in rows:
            out.append("  " + "  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
        out.append("")
    if rep.warnings:
        out.append("Warnings")
        out += [f"  ! {w}" for w in rep.warnings]
    return "\n".join(out) + "\n"


def render_md(rep: Report) -> str:
    def esc(x: str) -> str:
        return str(x).replace("|", "\\|")

    out = [f"# {_title(rep)}", ""] + [f"- {w}" for w in rep.headline()]
    out += [f"- Measured inputs: {', '.join(rep.measured) or 'none (all inputs assumed)'}", ""]
    if rep.warnings:
        out += ["> **Warnings**", ">"] + [f"> - {esc(w)}" for w in rep.warnings] + [""]
    for title, header, rows in sections(rep):
        out += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(esc(x) for x in row) + " |" for row in rows]
        out.append("")
    return "\n".join(out)


def render_json(rep: Report) -> str:
    return json.dumps(rep.as_dict(), indent=2, default=str) + "\n"


def _num(v: float | None) -> str:
    return "" if v is None or not math.isfinite(v) else repr(float(v))


def render_csv(rep: Report) -> str:
    """One row per figure: section, name, value (plain number), unit, basis, source, date."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "name", "value", "unit", "basis", "source", "date"])
    cur = rep.cur
    for i in rep.cfg.inputs.values():
        w.writerow(["input", i.key, repr(i.value), i.unit, i.basis, i.source, i.date or ""])
    for x in rep.cfg.rentals:
        w.writerow(["input", f"rental.{x.id}", repr(x.price.value), x.price.unit, x.price.basis, x.price.source,
                    x.price.date or ""])
    res = rep.result.as_dict()
    for k, v in res.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            unit = "share" if "utilization" in k or k == "irr" else "years" if "payback" in k else \
                "GPU-hours" if "hours" in k else "kW" if k.endswith("_kw") else "FTE" if k == "staff_fte" else cur
            w.writerow(["result", k, _num(v), unit, "computed", "", ""])
        elif v is None:
            w.writerow(["result", k, "", "", "computed", "never" if "payback" in k else "n/a", ""])
    for y in rep.result.years:
        for name, attr in CASH_FLOW_ROWS:
            w.writerow(["cash_flow", f"year{y.year}.{attr}", _num(getattr(y, attr)),
                        "" if attr == "discount_factor" else cur, "computed", name, ""])
    for x in rep.result.rentals:
        for k in ("price_per_gpu_hour", "per_useful_gpu_hour", "npv_saving", "irr", "break_even_utilization",
                  "break_even_scheduler_utilization"):
            val = getattr(x, k)
            w.writerow(["rental", f"{x.id}.{k}", _num(val), "share" if "utilization" in k or k == "irr" else cur,
                        x.term, break_even(val) if "break_even" in k else "", ""])
    for b in rep.bars:
        w.writerow(["tornado", f"{b.key}.low", repr(b.low), cur, f"input {b.low_input!r}", label(b.key), ""])
        w.writerow(["tornado", f"{b.key}.high", repr(b.high), cur, f"input {b.high_input!r}", label(b.key), ""])
    tw = rep.two_way
    for u, row in zip(tw.utilizations, tw.values):
        for p, v in zip(tw.prices, row):
            w.writerow(["two_way", f"scheduler={u:g},price={p!r}", repr(v), cur, "computed", "NPV saving", ""])
    for s in rep.scenarios:
        w.writerow(["scenario", s.name, repr(s.per_useful_gpu_hour), f"{cur} per useful GPU-hour", s.kind, s.note, ""])
    for msg in rep.warnings:
        w.writerow(["warning", "", "", "", "", msg, ""])
    return buf.getvalue()

