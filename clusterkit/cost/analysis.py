"""What moves the answer: sensitivity (tornado), scenarios, and the cost curve."""

from __future__ import annotations

from dataclasses import dataclass, replace

from clusterkit.cost.config import CATALOG, DEFAULT, CostConfig, Input, Rental
from clusterkit.cost.model import CostResult, compute

# The inputs the tornado swings, with their labels. "rental.reference" is the
# reference rental price; the rest are config keys.
TORNADO_INPUTS = (
    ("utilization.scheduler", "Scheduler utilization"),
    ("finance.life_years", "Depreciation life"),
    ("capex.server_price", "Server price"),
    ("power.price_per_kwh", "Power price"),
    ("finance.cost_of_capital", "Cost of capital"),
    ("rental.reference", "Rental price (reference)"),
)
_UPPER = {"utilization.scheduler": 1.0, "finance.cost_of_capital": 1.0}


@dataclass(frozen=True)
class Bar:
    key: str
    label: str
    base_input: float
    low_input: float
    high_input: float
    low: float          # saving per useful GPU-hour with the input at low_input
    high: float
    base: float

    @property
    def spread(self) -> float:
        return abs(self.high - self.low)


def with_input(cfg: CostConfig, key: str, value: float) -> CostConfig:
    """A copy of the config with one input (or the reference rental price) set."""
    if key == "rental.reference":
        rentals = [replace(r, price=replace(r.price, value=value)) if r.id == cfg.reference else r for r in cfg.rentals]
        return replace(cfg, rentals=rentals)
    return cfg.with_values(**{key.replace(".", "__"): value})


def swing_values(cfg: CostConfig, key: str) -> tuple[float, float, float]:
    s = cfg.v("sensitivity.swing")
    base = cfg.ref_rental().price.value if key == "rental.reference" else cfg.v(key)
    return base, base * (1 - s), min(base * (1 + s), _UPPER.get(key, float("inf")))


def tornado(cfg: CostConfig) -> list[Bar]:
    """Saving per useful GPU-hour (reference rental minus owning) with each input swung +-swing."""
    base = compute(cfg).saving_per_useful_gpu_hour
    bars = []
    for key, label in TORNADO_INPUTS:
        b, lo, hi = swing_values(cfg, key)
        bars.append(Bar(key, label, b, lo, hi, compute(with_input(cfg, key, lo)).saving_per_useful_gpu_hour,
                        compute(with_input(cfg, key, hi)).saving_per_useful_gpu_hour, base))
    return sorted(bars, key=lambda x: x.spread, reverse=True)


@dataclass(frozen=True)
class Scenario:
    name: str
    per_useful_gpu_hour: float
    per_year: float           # cost of that scenario's useful GPU-hours per year
    useful_gpu_hours: float
    note: str = ""


def _other_model(cfg: CostConfig, gpu: str) -> CostConfig | None:
    cat = cfg.catalog
    server, model = cat.server(gpu), cat.models.get(gpu)
    rentals = [r for r in cat.rentals(gpu) if not r.committed]
    if server is None or model is None or not rentals:
        return None
    conv = cat.factor
    new = dict(cfg.inputs)

    def price(key: str, amount: float, cur: str, src: str, date) -> None:
        new[key] = replace(new[key], value=amount * conv(cur, cfg.currency), basis=CATALOG, source=src, date=date)

    price("capex.server_price", server.amount, server.currency, server.source, server.date)
    net = next((p for p in cat.prices.values() if p.kind == "network" and p.gpu == gpu), None)
    if net is not None:
        price("capex.network_per_node", net.amount, net.currency, net.source, net.date)
    new["power.gpu_power_w"] = Input("power.gpu_power_w", model.node_gpu_power_w, "W per node", DEFAULT, model.source)
    new["colocation.provisioned_kw_per_node"] = Input("colocation.provisioned_kw_per_node",
                                                      model.provisioned_kw_per_node, "kW per node", DEFAULT, model.source)
    rents = [Rental(p.id, p.term, Input(f"rental.{p.id}", p.amount * conv(p.currency, cfg.currency),
                                        f"{cfg.currency} per GPU-hour", CATALOG, p.source, p.date))
             for p in cat.rentals(gpu)]
    ref = min((r for r in rents if not r.committed), key=lambda r: r.price.value).id
    return replace(cfg, gpu_model=gpu, inputs=new, rentals=rents, reference=ref)


def scenarios(cfg: CostConfig, res: CostResult | None = None) -> list[Scenario]:
    res = res or compute(cfg)
    hours = res.useful_gpu_hours_per_year
    out = [Scenario(f"Own {cfg.v('cluster.nodes'):g} x {cfg.v('cluster.gpus_per_node'):g} {cfg.gpu_model} (this config)",
                    res.cost_per_useful_gpu_hour, res.total_per_year, hours)]
    for r in res.rentals:
        out.append(Scenario(f"Rent {r.id} ({r.term})", r.per_useful_gpu_hour, r.per_useful_gpu_hour * hours, hours,
                            "paid for every hour of the term" if r.term != "on-demand" else "paid per used hour"))
    b = cfg.v("rental.hybrid_burst_share")
    mix = (1 - b) * res.cost_per_useful_gpu_hour + b * res.reference_per_useful_gpu_hour
    out.append(Scenario(f"Hybrid: own, {b:.0%} burst on {res.reference}", mix, mix * hours, hours,
                        "owned share at this config's cost per useful GPU-hour"))
    for factor in (0.5, 2.0, 4.0):
        nodes = max(1.0, round(cfg.v("cluster.nodes") * factor))
        if nodes == cfg.v("cluster.nodes"):
            continue
        r2 = compute(cfg.with_values(cluster__nodes=nodes))
        out.append(Scenario(f"Own {nodes:g} nodes ({cfg.gpu_model})", r2.cost_per_useful_gpu_hour, r2.total_per_year,
                            r2.useful_gpu_hours_per_year, "storage, installation and staff kept as configured"))
    for name, sc in cfg.scenarios:
        r4 = compute(sc)
        out.append(Scenario(name, r4.cost_per_useful_gpu_hour, r4.total_per_year, r4.useful_gpu_hours_per_year,
                            f"from the config; saves {r4.saving_per_useful_gpu_hour:,.2f} per useful GPU-hour "
                            f"vs {r4.reference}"))
    for gpu in sorted(cfg.catalog.models):
        if gpu == cfg.gpu_model:
            continue
        other = _other_model(cfg, gpu)
        if other is None:
            continue
        r3 = compute(other)
        out.append(Scenario(f"Own {cfg.v('cluster.nodes'):g} x {cfg.v('cluster.gpus_per_node'):g} {gpu} (catalog prices)",
                            r3.cost_per_useful_gpu_hour, r3.total_per_year, r3.useful_gpu_hours_per_year,
                            "catalog server price and typical power; not adjusted for GPU speed"))
        out.append(Scenario(f"Rent {other.reference} ({gpu}, on-demand)", r3.reference_per_useful_gpu_hour,
                            r3.reference_per_useful_gpu_hour * r3.useful_gpu_hours_per_year,
                            r3.useful_gpu_hours_per_year, "not adjusted for GPU speed"))
    return out


@dataclass(frozen=True)
class Curve:
    utilization: list[float]
    owned: list[float]
    rentals: dict[str, list[float]]
    break_even: dict[str, tuple[float, float]]   # on-demand id -> (utilization, price)


def curve(cfg: CostConfig, res: CostResult | None = None, steps: int = 96) -> Curve:
    """Cost per useful GPU-hour against effective utilization, owned and rented."""
    res = res or compute(cfg)
    us = [0.05 + 0.95 * i / (steps - 1) for i in range(steps)]
    owned = [res.cost_per_owned_gpu_hour / u for u in us]
    rentals = {r.id: [r.price_per_gpu_hour / u if r.term != "on-demand" else r.price_per_gpu_hour for u in us]
               for r in res.rentals}
    be = {r.id: (r.break_even_utilization, r.price_per_gpu_hour) for r in res.rentals
          if r.break_even_utilization is not None and r.break_even_utilization <= 1}
    return Curve(us, owned, rentals, be)
