"""A self-contained HTML report: inline CSS and inline SVG charts, no scripts.

No external resources at all, so it opens offline and in mail attachments.
Charts: the cash flow year by year (net cash flow of owning as bars, cumulative
discounted as a line), cost per useful GPU-hour against utilization (owned
curve, each rental option, break-even points marked, the current utilization),
and the tornado.
"""

from __future__ import annotations

from html import escape

from clusterkit.cost.fmt import money, pct, value_of
from clusterkit.cost.render.text import sections
from clusterkit.cost.report import TERM_LABEL, Report

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_CSS = """
body{font-family:DejaVu Sans,Arial,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f0f0f0}.warn{background:#fff4e5;border:1px solid #f0a000;padding:8px 14px;font-size:13px}
.head{font-size:15px;line-height:1.6}.measured{color:#0a6b2a;font-weight:bold}.assumed{color:#8a5a00}
svg text{font-family:DejaVu Sans,Arial,sans-serif}
"""


def _fmt(x: float) -> str:
    """An axis label: 1.5 M, 250 k, 12.5."""
    a = abs(x)
    if a >= 1e6:
        return f"{x / 1e6:.3g} M"
    if a >= 1e4:
        return f"{x / 1e3:.3g} k"
    return f"{x:,.4g}"


def _svg_open(svg_id: str, width: int, height: int, label: str) -> str:
    return (f'<svg id="{svg_id}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="{escape(label)}">')


def cash_flow_svg(rep: Report, width: int = 900, height: int = 360) -> str:
    """Net cash flow of owning instead of renting per year (bars) and its cumulative discounted sum (line)."""
    ys, cur = rep.result.years, rep.cur
    left, right, top, bottom = 80, 30, 30, 50
    pw, ph = width - left - right, height - top - bottom
    vals = [y.net_cash_flow for y in ys] + [y.cumulative_discounted for y in ys] + [0.0]
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.08 or 1.0
    lo, hi = lo - pad, hi + pad
    slot = pw / len(ys)

    def yv(v: float) -> float:
        return top + (hi - v) / (hi - lo) * ph

    def xc(i: int) -> float:
        return left + slot * (i + 0.5)

    parts = [_svg_open("cash-flow", width, height, "Cash flow of owning instead of renting, year by year"),
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#999"/>',
             f'<text x="{left}" y="18" font-size="12">owning instead of renting on {escape(rep.result.reference)}: '
             f'net cash flow after tax ({cur}); line: cumulative, discounted at '
             f'{pct(rep.cfg.v("finance.cost_of_capital"))}</text>']
    for t in _ticks(lo, hi):
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{yv(t):.1f}" y2="{yv(t):.1f}" stroke="#e2e2e2"/>'
                     f'<text x="{left - 6}" y="{yv(t) + 4:.1f}" font-size="11" text-anchor="end">{_fmt(t)}</text>')
    parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{yv(0):.1f}" y2="{yv(0):.1f}" stroke="#666"/>')
    for i, y in enumerate(ys):
        v = y.net_cash_flow
        y0, y1 = sorted((yv(0), yv(v)))
        col = "#2ca02c" if v >= 0 else "#d62728"
        parts.append(f'<rect class="cf-bar" x="{xc(i) - slot * 0.3:.1f}" y="{y0:.1f}" width="{slot * 0.6:.1f}" '
                     f'height="{max(y1 - y0, 1):.1f}" fill="{col}"><title>year {y.year}: {escape(money(v, cur))}'
                     f'</title></rect>'
                     f'<text x="{xc(i):.1f}" y="{top + ph + 16}" font-size="11" text-anchor="middle">year {y.year}'
                     f'</text>')
    pts = " ".join(f"{xc(i):.1f},{yv(y.cumulative_discounted):.1f}" for i, y in enumerate(ys))
    parts.append(f'<polyline class="cf-cumulative" points="{pts}" fill="none" stroke="#1f3b99" stroke-width="2.5"/>')
    for i, y in enumerate(ys):
        parts.append(f'<circle cx="{xc(i):.1f}" cy="{yv(y.cumulative_discounted):.1f}" r="3.5" fill="#1f3b99">'
                     f'<title>cumulative discounted, year {y.year}: {escape(money(y.cumulative_discounted, cur))}'
                     f'</title></circle>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 8}" font-size="12" text-anchor="middle">'
                 f'NPV {escape(money(rep.result.npv_saving, cur))}, IRR {pct(rep.result.irr)}</text></svg>')
    return "".join(parts)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    step = (hi - lo) / n
    mag = 10 ** len(str(int(abs(step)))) / 10 if step >= 1 else 0.1
    for m in (1, 2, 2.5, 5, 10):
        if step <= m * mag:
            step = m * mag
            break
    start = (lo // step) * step
    out, v = [], start
    while v <= hi + 1e-9:
        if v >= lo - 1e-9:
            out.append(round(v, 10))
        v += step
    return out


def cost_curve_svg(rep: Report, width: int = 900, height: int = 420) -> str:
    c, cur = rep.curve, rep.cur
    left, right, top, bottom = 70, 240, 20, 50
    pw, ph = width - left - right, height - top - bottom
    prices = [r.price_per_gpu_hour for r in rep.result.rentals]
    y_max = 1.15 * max(max(prices), rep.result.cost_per_owned_gpu_hour / 0.25)

    def x(u: float) -> float:
        return left + (u - 0.0) / 1.0 * pw

    def y(v: float) -> float:
        return top + ph - min(v, 3 * y_max) / y_max * ph     # beyond the top is clipped

    parts = [_svg_open("cost-curve", width, height, "Cost per useful GPU-hour against utilization"),
             f'<defs><clipPath id="plot"><rect x="{left}" y="{top}" width="{pw}" height="{ph}"/></clipPath></defs>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#999"/>']
    for t in _ticks(0, y_max):
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#e2e2e2"/>'
                     f'<text x="{left - 6}" y="{y(t) + 4:.1f}" font-size="11" text-anchor="end">{_fmt(t)}</text>')
    for t in (0, 0.2, 0.4, 0.6, 0.8, 1.0):
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{top + ph}" stroke="#e2e2e2"/>'
                     f'<text x="{x(t):.1f}" y="{top + ph + 16}" font-size="11" text-anchor="middle">{t:.0%}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 8}" font-size="12" text-anchor="middle">'
                 f'effective utilization (scheduler x availability)</text>')
    parts.append(f'<text x="14" y="{top + ph / 2}" font-size="12" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + ph / 2})">{cur} per useful GPU-hour</text>')

    def poly(vals: list[float], color: str, w: float, dash: str = "", cls: str = "") -> str:
        pts = " ".join(f"{x(u):.1f},{y(v):.1f}" for u, v in zip(c.utilization, vals))
        d = f' stroke-dasharray="{dash}"' if dash else ""
        return (f'<polyline class="{cls}" points="{pts}" fill="none" stroke="{color}" stroke-width="{w}"{d} '
                f'clip-path="url(#plot)"/>')

    legend_y = top + 10
    for i, r in enumerate(rep.result.rentals):
        col = _COLORS[(i + 1) % len(_COLORS)]
        parts.append(poly(c.rentals[r.id], col, 1.8, "" if r.term == "on-demand" else "6 4", "rental"))
        parts.append(f'<line x1="{left + pw + 12}" x2="{left + pw + 34}" y1="{legend_y}" y2="{legend_y}" '
                     f'stroke="{col}" stroke-width="2"{"" if r.term == "on-demand" else " stroke-dasharray=" + chr(34) + "6 4" + chr(34)}/>'
                     f'<text x="{left + pw + 38}" y="{legend_y + 4}" font-size="11">{escape(r.id)}</text>'
                     f'<text x="{left + pw + 38}" y="{legend_y + 17}" font-size="10" fill="#666">'
                     f'{TERM_LABEL[r.term]} {escape(money(r.price_per_gpu_hour, cur))}</text>')
        legend_y += 34
    parts.append(poly(c.owned, "#111", 3, cls="owned"))
    parts.append(f'<line x1="{left + pw + 12}" x2="{left + pw + 34}" y1="{legend_y}" y2="{legend_y}" stroke="#111" '
                 f'stroke-width="3"/><text x="{left + pw + 38}" y="{legend_y + 4}" font-size="11">own (this config)</text>')
    u_now = rep.result.effective_utilization
    parts.append(f'<line x1="{x(u_now):.1f}" x2="{x(u_now):.1f}" y1="{top}" y2="{top + ph}" stroke="#555" '
                 f'stroke-dasharray="2 3"/><text x="{x(u_now) + 4:.1f}" y="{top + 14}" font-size="11" fill="#555">'
                 f'now {u_now:.1%}</text>')
    for rid, (u, price) in c.break_even.items():
        if price > y_max:
            continue
        parts.append(f'<circle class="break-even" cx="{x(u):.1f}" cy="{y(price):.1f}" r="6" fill="#fff" '
                     f'stroke="#d62728" stroke-width="2.5"><title>break-even vs {escape(rid)}: {u:.1%}</title></circle>'
                     f'<text x="{x(u) + 8:.1f}" y="{y(price) - 8:.1f}" font-size="11" fill="#d62728">'
                     f'break-even {u:.1%}</text>')
    parts.append("</svg>")
    return "".join(parts)


def tornado_svg(rep: Report, width: int = 820) -> str:
    bars, cur = rep.bars, rep.cur
    row_h, left, right, top = 34, 230, 40, 30
    height = top + row_h * len(bars) + 40
    pw = width - left - right
    vals = [v for b in bars for v in (b.low, b.high, b.base)] + [0.0]
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.08 or 1.0
    lo, hi = lo - pad, hi + pad

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * pw

    base = bars[0].base if bars else 0.0
    parts = [_svg_open("tornado", width, height, "Sensitivity of the NPV saving of owning"),
             f'<text x="{left}" y="16" font-size="12">NPV saving of owning vs {escape(rep.result.reference)} '
             f'({cur}); <tspan fill="#1f77b4">input -{rep.cfg.v("sensitivity.swing"):.0%}</tspan> / '
             f'<tspan fill="#ff7f0e">input +{rep.cfg.v("sensitivity.swing"):.0%}</tspan></text>']
    for t in _ticks(lo, hi):
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{height - 30}" stroke="#eee"/>'
                     f'<text x="{x(t):.1f}" y="{height - 14}" font-size="11" text-anchor="middle">{_fmt(t)}</text>')
    parts.append(f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{top}" y2="{height - 30}" stroke="#999"/>')
    for i, b in enumerate(bars):
        yy = top + i * row_h + 6
        for val, inp, col in ((b.low, b.low_input, "#1f77b4"), (b.high, b.high_input, "#ff7f0e")):
            x0, x1 = sorted((x(base), x(val)))
            parts.append(f'<rect class="bar" x="{x0:.1f}" y="{yy}" width="{max(x1 - x0, 1):.1f}" height="{row_h - 12}" '
                         f'fill="{col}"><title>{escape(b.label)} {escape(value_of(b.key, inp, cur))}: '
                         f'{escape(money(val, cur))}</title></rect>')
            right_side = val >= base
            parts.append(f'<text x="{(x1 + 4) if right_side else (x0 - 4):.1f}" y="{yy + row_h / 2 - 2:.1f}" '
                         f'font-size="10" text-anchor="{"start" if right_side else "end"}">{_fmt(val)}</text>')
        parts.append(f'<text x="{left - 8}" y="{yy + row_h / 2}" font-size="12" text-anchor="end">{escape(b.label)}'
                     f'</text>')
    parts.append(f'<line x1="{x(base):.1f}" x2="{x(base):.1f}" y1="{top - 4}" y2="{height - 30}" stroke="#111" '
                 f'stroke-width="1.5"/></svg>')
    return "".join(parts)


def render_html(rep: Report) -> str:
    cfg = rep.cfg
    title = (f"clusterkit cost report: {cfg.v('cluster.nodes'):g} nodes x {cfg.v('cluster.gpus_per_node'):g} "
             f"{cfg.gpu_model}" + (" (built-in EXAMPLE)" if cfg.is_example else ""))
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{escape(title)}</h1>",
           f'<p>Currency {escape(rep.cur)}, prices judged as of {cfg.as_of}, config: {escape(cfg.path)}</p>',
           '<div class="head">' + "<br>".join(escape(h) for h in rep.headline()) + "</div>"]
    measured = rep.measured
    out.append("<p>Measured inputs: " + (", ".join(f'<span class="measured">{escape(m)}</span>' for m in measured)
                                          or '<span class="assumed">none: every input is assumed</span>') + "</p>")
    if rep.warnings:
        out.append('<div class="warn"><b>Warnings</b><ul>' + "".join(f"<li>{escape(w)}</li>" for w in rep.warnings)
                   + "</ul></div>")
    out += ["<h2>Cash flow year by year</h2>", cash_flow_svg(rep),
            "<h2>Cost per useful GPU-hour against utilization</h2>", cost_curve_svg(rep),
            "<h2>Sensitivity (tornado)</h2>", tornado_svg(rep)]
    for name, header, rows in sections(rep):
        out.append(f"<h2>{escape(name)}</h2><table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>")
        for row in rows:
            cells = []
            for cell in row:
                cls = ' class="measured"' if cell == "MEASURED" else ""
                cells.append(f"<td{cls}>{escape(str(cell))}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
