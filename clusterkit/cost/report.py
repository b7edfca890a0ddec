"""Everything a report shows, computed once; the renderers only format it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from clusterkit.cost.analysis import Bar, Curve, Scenario, TwoWay, curve, scenarios, swings, two_way
from clusterkit.cost.config import MEASURED, CostConfig
from clusterkit.cost.model import CostResult, compute
from clusterkit.cost.fmt import break_even, money, pct, years

TERM_LABEL = {"on-demand": "on-demand", "1-year": "1-year reserved", "3-year": "3-year reserved"}


@dataclass
class Report:
    cfg: CostConfig
    result: CostResult
    bars: list[Bar]
    two_way: TwoWay
    scenarios: list[Scenario]
    curve: Curve
    warnings: list[str] = field(default_factory=list)
    minor: list[tuple[Bar, float]] = field(default_factory=list)   # swung, moved the NPV less than the threshold

    @property
    def cur(self) -> str:
        return self.cfg.currency

    @property
    def measured(self) -> list[str]:
        return [i.key for i in self.cfg.inputs.values() if i.basis == MEASURED]

    def headline(self) -> list[str]:
        r, c = self.result, self.cur
        ref = next(x for x in r.rentals if x.id == r.reference)
        t = self.cfg.v("finance.tax_rate")
        lines = [
            f"Owning costs {money(r.cost_per_owned_gpu_hour, c)} per owned GPU-hour and "
            f"{money(r.cost_per_useful_gpu_hour, c)} per useful GPU-hour at {pct(r.effective_utilization)} effective "
            f"utilization (levelized over {self.cfg.v('finance.life_years'):g} years, before-tax equivalent).",
            f"Renting the same useful hours on {ref.id} ({TERM_LABEL[ref.term]}) costs "
            f"{money(ref.per_useful_gpu_hour, c)} per useful GPU-hour with storage, egress and cloud-side staff: "
            f"owning {'saves' if r.saving_per_useful_gpu_hour >= 0 else 'costs an extra'} "
            f"{money(abs(r.saving_per_useful_gpu_hour), c)} per useful GPU-hour.",
            f"NPV of owning instead of renting, after {pct(t)} tax at {pct(self.cfg.v('finance.cost_of_capital'))}: "
            f"{money(r.npv_saving, c)}; IRR {pct(r.irr)}; payback {years(r.payback_years)}, discounted "
            f"{years(r.discounted_payback_years)}.",
        ]
        if ref.break_even_utilization is not None:
            lines.append(f"Break-even against it: effective utilization {break_even(ref.break_even_utilization)}, "
                         f"scheduler utilization {break_even(ref.break_even_scheduler_utilization)} at "
                         f"{pct(self.cfg.v('utilization.availability'))} availability.")
        return lines

    def as_dict(self) -> dict[str, Any]:
        def inp(i):
            d = asdict(i)
            d["date"] = i.date.isoformat() if i.date else None
            return d

        def clean(x: Any) -> Any:   # JSON has no infinity: say never
            if isinstance(x, float) and not math.isfinite(x):
                return None
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return [clean(v) for v in x]
            return x

        return clean({
            "example": self.cfg.is_example,
            "config": self.cfg.path,
            "currency": self.cur,
            "as_of": self.cfg.as_of.isoformat(),
            "gpu_model": self.cfg.gpu_model,
            "headline": self.headline(),
            "measured_inputs": self.measured,
            "inputs": [inp(i) for i in self.cfg.inputs.values()],
            "options": self.cfg.options,
            "rental_prices": [{"id": r.id, "term": r.term, **inp(r.price), "trajectory": self.cfg.trajectory(r),
                               "availability": r.availability.value} for r in self.cfg.rentals],
            "fx_rates": [{"currency": r.currency, "per_unit": r.per_unit, "base": self.cfg.catalog.base,
                          "date": r.date.isoformat(), "source": r.source} for r in self.cfg.rates_used],
            "result": self.result.as_dict(),
            "tornado": [{**asdict(b), "spread": b.spread} for b in self.bars],
            "tornado_below_threshold": [{"key": b.key, "label": b.label, "relative_move": m} for b, m in self.minor],
            "two_way": asdict(self.two_way),
            "scenarios": [asdict(s) for s in self.scenarios],
            "warnings": self.warnings,
        })


def build(cfg: CostConfig, extra_warnings: list[str] | None = None) -> Report:
    res = compute(cfg)
    warnings = []
    if cfg.is_example:
        warnings.append("no --config given: this is the built-in EXAMPLE (8-node H100 SXM cluster, example prices); "
                        "`clusterkit cost init cost.toml` writes it out to put your own quotes in")
    warnings += list(extra_warnings or [])
    warnings += cfg.stale()
    bars, minor = swings(cfg)
    return Report(cfg, res, bars, two_way(cfg), scenarios(cfg, res), curve(cfg, res), warnings, minor)
