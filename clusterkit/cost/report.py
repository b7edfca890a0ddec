"""Everything a report shows, computed once; the renderers only format it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from clusterkit.cost.analysis import Bar, Curve, Scenario, curve, scenarios, tornado
from clusterkit.cost.config import MEASURED, CostConfig
from clusterkit.cost.model import CostResult, compute

TERM_LABEL = {"on-demand": "on-demand", "1-year": "1-year reserved", "3-year": "3-year reserved"}


@dataclass
class Report:
    cfg: CostConfig
    result: CostResult
    bars: list[Bar]
    scenarios: list[Scenario]
    curve: Curve
    warnings: list[str] = field(default_factory=list)

    @property
    def cur(self) -> str:
        return self.cfg.currency

    @property
    def measured(self) -> list[str]:
        return [i.key for i in self.cfg.inputs.values() if i.basis == MEASURED]

    def headline(self) -> list[str]:
        r, c = self.result, self.cur
        ref = next(x for x in r.rentals if x.id == r.reference)
        lines = [
            f"Owning costs {c} {r.cost_per_owned_gpu_hour:,.2f} per owned GPU-hour and "
            f"{c} {r.cost_per_useful_gpu_hour:,.2f} per useful GPU-hour at {r.effective_utilization:.1%} "
            f"effective utilization.",
            f"Reference rental {ref.id} ({TERM_LABEL[ref.term]}): {c} {ref.per_useful_gpu_hour:,.2f} per useful "
            f"GPU-hour, so owning {'saves' if r.saving_per_useful_gpu_hour >= 0 else 'costs an extra'} "
            f"{c} {abs(r.saving_per_useful_gpu_hour):,.2f} per useful GPU-hour.",
        ]
        if ref.break_even_utilization is not None:
            be = ref.break_even_utilization
            lines.append(f"Break-even effective utilization against it: {be:.1%}" +
                         (" (above 100%: owning never breaks even)" if be > 1 else
                          f" (scheduler utilization {ref.break_even_scheduler_utilization:.1%} at the availability)"))
        return lines

    def as_dict(self) -> dict[str, Any]:
        def inp(i):
            d = asdict(i)
            d["date"] = i.date.isoformat() if i.date else None
            return d

        return {
            "example": self.cfg.is_example,
            "config": self.cfg.path,
            "currency": self.cur,
            "as_of": self.cfg.as_of.isoformat(),
            "gpu_model": self.cfg.gpu_model,
            "headline": self.headline(),
            "measured_inputs": self.measured,
            "inputs": [inp(i) for i in self.cfg.inputs.values()],
            "rental_prices": [{"id": r.id, "term": r.term, **inp(r.price)} for r in self.cfg.rentals],
            "fx_rates": [{"currency": r.currency, "per_unit": r.per_unit, "base": self.cfg.catalog.base,
                          "date": r.date.isoformat(), "source": r.source} for r in self.cfg.rates_used],
            "result": self.result.as_dict(),
            "tornado": [{**asdict(b), "spread": b.spread} for b in self.bars],
            "scenarios": [asdict(s) for s in self.scenarios],
            "warnings": self.warnings,
        }


def build(cfg: CostConfig, extra_warnings: list[str] | None = None) -> Report:
    res = compute(cfg)
    warnings = []
    if cfg.is_example:
        warnings.append("no --config given: this is the built-in EXAMPLE (8-node H100 SXM cluster, example prices); "
                        "copy it to cost.toml and put your own quotes in")
    warnings += list(extra_warnings or [])
    warnings += cfg.stale()
    return Report(cfg, res, tornado(cfg), scenarios(cfg, res), curve(cfg, res), warnings)
