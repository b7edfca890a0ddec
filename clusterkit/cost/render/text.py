"""Plain renderers: terminal table, JSON, CSV (one row per figure), Markdown."""

from __future__ import annotations

import csv
import io
import json

from clusterkit.cost.report import TERM_LABEL, Report


def _money(x: float, cur: str) -> str:
    return f"{cur} {x:,.2f}" if abs(x) < 1000 else f"{cur} {x:,.0f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _input_value(i) -> str:
    v = i.value
    num = f"{v:,.0f}" if abs(v) >= 1000 and v == int(v) else f"{v:,.6g}"
    return f"{num} {i.unit}".strip()


def sections(rep: Report) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for every table of the report, shared by table and md."""
    r, c = rep.result, rep.cur
    costs = [
        ["Capex (servers, network, storage, installation)", _money(r.capex, c)],
        ["Capital recovery factor", f"{r.crf:.6f}"],
        ["Residual value at end of life", _money(r.residual_value, c)],
        ["Annualised capital (CRF)", _money(r.annualised_capex, c)],
        ["Capital charge after tax effect", _money(r.capital_charge, c)],
        [f"Power ({r.node_power_kw:.2f} kW/node x PUE)", _money(r.power, c)],
        ["Colocation", _money(r.colocation, c)],
        ["Staff", _money(r.staff, c)],
        ["Support contracts", _money(r.support, c)],
        ["Spares and failures", _money(r.failures, c)],
        ["Total per year", _money(r.total_per_year, c)],
        ["Cost per owned GPU-hour", _money(r.cost_per_owned_gpu_hour, c)],
        [f"Cost per useful GPU-hour (utilization {r.effective_utilization:.1%})", _money(r.cost_per_useful_gpu_hour, c)],
        [f"Saving per useful GPU-hour vs {r.reference}", _money(r.saving_per_useful_gpu_hour, c)],
        ["Total cost of ownership over the life (undiscounted)", _money(r.total_cost_of_ownership, c)],
        ["NPV of owning", _money(r.npv_own, c)],
        [f"NPV of renting the same useful hours ({r.reference})", _money(r.npv_rent, c)],
        ["NPV saving of owning", _money(r.npv_saving, c)],
        ["Payback (years, undiscounted)", "never" if r.payback_years is None else f"{r.payback_years:.2f}"],
    ]
    rentals = [[x.id, TERM_LABEL[x.term], _money(x.price_per_gpu_hour, c), _money(x.per_useful_gpu_hour, c),
                _pct(x.break_even_utilization), _pct(x.break_even_scheduler_utilization),
                "own" if x.owning_cheaper else "rent"] for x in r.rentals]
    bars = [[b.label, f"{b.low_input:,.4g} / {b.base_input:,.4g} / {b.high_input:,.4g}",
             _money(b.low, c), _money(b.high, c), _money(b.spread, c)] for b in rep.bars]
    scen = [[s.name, _money(s.per_useful_gpu_hour, c), _money(s.per_year, c), s.note] for s in rep.scenarios]
    inputs = [[i.key, _input_value(i), i.basis.upper() if i.basis == "measured" else i.basis,
               (i.source + (f" ({i.date})" if i.date else "") + (f" [{i.original}]" if i.original else ""))]
              for i in rep.cfg.inputs.values()]
    inputs += [[f"rental.{x.id}", _input_value(x.price), x.price.basis,
                f"{x.price.source} ({x.price.date}) [{x.price.original}]"] for x in rep.cfg.rentals]
    inputs += [[f"fx.{x.currency}", f"{x.per_unit:g} {rep.cfg.catalog.base}/{x.currency}", "catalog",
                f"{x.source} ({x.date})"] for x in rep.cfg.rates_used]
    return [
        ("Cost of owning", ["item", "value"], costs),
        ("Rental options", ["option", "term", "price/GPU-h", "per useful GPU-h", "break-even util.",
                            "break-even sched. util.", "cheaper"], rentals),
        (f"Sensitivity: saving per useful GPU-hour vs {r.reference} (input low / base / high, "
         f"+-{rep.cfg.v('sensitivity.swing'):.0%})", ["input", "low / base / high", "saving at low", "saving at high",
                                                      "spread"], bars),
        ("Scenarios", ["scenario", "per useful GPU-h", "per year", "note"], scen),
        ("Inputs (measured or assumed)", ["input", "value", "basis", "source"], inputs),
    ]


def _title(rep: Report) -> str:
    cfg = rep.cfg
    what = "built-in EXAMPLE" if cfg.is_example else cfg.path
    return (f"clusterkit cost report: {cfg.v('cluster.nodes'):g} nodes x {cfg.v('cluster.gpus_per_node'):g} "
            f"{cfg.gpu_model}, {rep.cur}, prices as of {cfg.as_of} ({what})")


def render_table(rep: Report) -> str:
    out = [_title(rep), ""]
    out += [f"  {w}" for w in rep.headline()]
    measured = ", ".join(rep.measured) or "none (all inputs assumed)"
    out += [f"  Measured inputs: {measured}", ""]
    for title, header, rows in sections(rep):
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
        widths[-1] = min(widths[-1], 70) if len(widths) > 2 else widths[-1]
        out.append(title)
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
            w.writerow(["result", k, repr(float(v)), cur if "cost" in k or k in _MONEY else "", "computed", "", ""])
        elif v is None:
            w.writerow(["result", k, "", "", "computed", "never", ""])
    for x in rep.result.rentals:
        for k in ("price_per_gpu_hour", "per_useful_gpu_hour", "break_even_utilization"):
            val = getattr(x, k)
            w.writerow(["rental", f"{x.id}.{k}", "" if val is None else repr(val),
                        "share" if "utilization" in k else cur, x.term, "", ""])
    for b in rep.bars:
        w.writerow(["tornado", f"{b.key}.low", repr(b.low), cur, f"input {b.low_input!r}", "", ""])
        w.writerow(["tornado", f"{b.key}.high", repr(b.high), cur, f"input {b.high_input!r}", "", ""])
    for s in rep.scenarios:
        w.writerow(["scenario", s.name, repr(s.per_useful_gpu_hour), f"{cur} per useful GPU-hour", "", s.note, ""])
    for msg in rep.warnings:
        w.writerow(["warning", "", "", "", "", msg, ""])
    return buf.getvalue()


_MONEY = {"capex", "residual_value", "annualised_capex", "depreciation", "capital_charge", "power", "colocation",
          "staff", "support", "failures", "opex", "total_per_year", "saving_per_useful_gpu_hour", "rent_per_year",
          "total_cost_of_ownership", "npv_own", "npv_rent", "npv_saving", "reference_per_useful_gpu_hour"}
