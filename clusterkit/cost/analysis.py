"""What moves the answer: sensitivity (tornado, two-way table), scenarios, and the cost curve.

Every figure here comes from the year-by-year model (clusterkit/cost/model.py) run on a changed config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from clusterkit.cost.config import CATALOG, DEFAULT, CostConfig, Input, Rental, input_kind
from clusterkit.cost.finance import HOURS_PER_YEAR
from clusterkit.cost.model import CostResult, Plan, compute, evaluate, rental_price, useful_hours

# Human labels of the inputs the tornado may swing.
LABELS = {
    "capex.server_price": "Server price", "capex.network_per_node": "Network per node", "capex.storage": "Storage",
    "capex.installation": "Installation", "capex.spares_fraction": "Spares share",
    "finance.cost_of_capital": "Cost of capital", "finance.life_years": "Life (years)",
    "finance.residual_fraction": "Resale value share", "finance.tax_rate": "Tax rate",
    "finance.declining_balance_factor": "Declining-balance factor",
    "power.gpu_power_w": "GPU power per node", "power.non_gpu_overhead_w": "Non-GPU power per node",
    "power.pue": "PUE", "power.price_per_kwh": "Power price",
    "colocation.per_kw_month": "Colocation per kW-month", "colocation.provisioned_kw_per_node": "Provisioned kW per node",
    "colocation.per_rack_month": "Colocation per rack-month", "colocation.racks": "Racks",
    "operations.staff_fte": "Staff FTE (fixed)", "operations.staff_fte_per_node": "Staff FTE per node",
    "operations.staff_cost_per_fte_year": "Staff cost per FTE", "operations.support_fraction_per_year": "Support share",
    "operations.failures_per_node_year": "Failure rate", "operations.cost_per_failure": "Cost per failure",
    "utilization.scheduler": "Scheduler utilization", "utilization.availability": "Availability",
    "trajectory.rental_per_year": "Rental price trend", "trajectory.power_per_year": "Power price trend",
    "trajectory.staff_per_year": "Staff cost trend", "trajectory.colocation_per_year": "Colocation trend",
    "trajectory.fx_per_year": "FX trend",
    "rental_side.storage_tb": "Cloud storage TB", "rental_side.storage_per_tb_month": "Cloud storage price",
    "rental_side.egress_tb_per_month": "Egress TB per month", "rental_side.egress_per_tb": "Egress price",
    "rental_side.staff_fte": "Cloud-side staff FTE",
    "rental.reference": "Rental price (reference)", "rental.availability": "Provider availability (reference)",
}
_SWUNG_SECTIONS = ("capex", "finance", "power", "colocation", "operations", "utilization", "trajectory", "rental_side")
_AT_MOST_1 = ("frac", "util")
_MIN = {"power.pue": 1.0, "finance.declining_balance_factor": 1.0}


def label(key: str) -> str:
    if key.startswith("fx."):
        return f"Exchange rate {key[3:]}"
    return LABELS.get(key, key)


# ---------------------------------------------------------------- changing one input

def with_fx(cfg: CostConfig, currency: str, factor: float) -> CostConfig:
    """The exchange rate of `currency` into the report currency moved by `factor`: every amount converted from
    it scales, and so does the catalog's rate (other GPU models' prices go through it)."""
    def scaled(i: Input) -> Input:
        return replace(i, value=i.value * factor) if i.orig_currency == currency else i
    inputs = {k: scaled(i) for k, i in cfg.inputs.items()}
    rentals = [replace(r, price=scaled(r.price)) for r in cfg.rentals]
    cat = cfg.catalog
    rates = dict(cat.rates)
    if currency != cat.base and currency in rates:
        rates[currency] = replace(rates[currency], per_unit=rates[currency].per_unit * factor)
    else:   # the base currency itself moved: every other one moves the other way
        rates = {c: replace(r, per_unit=r.per_unit / factor) for c, r in rates.items()}
    return replace(cfg, inputs=inputs, rentals=rentals, catalog=replace(cat, rates=rates))


def with_input(cfg: CostConfig, key: str, value: float) -> CostConfig:
    """A copy of the config with one input, the reference rental's price or availability, or an FX rate set
    (for fx.<CUR>, `value` is the factor on that rate)."""
    if key.startswith("fx."):
        return with_fx(cfg, key[3:], value)
    if key in ("rental.reference", "rental.availability"):
        attr = "price" if key == "rental.reference" else "availability"
        rentals = [replace(r, **{attr: replace(getattr(r, attr), value=value)}) if r.id == cfg.reference else r
                   for r in cfg.rentals]
        return replace(cfg, rentals=rentals)
    return cfg.with_values(**{key.replace(".", "__"): value})


def base_value(cfg: CostConfig, key: str) -> float:
    if key.startswith("fx."):
        return 1.0
    if key == "rental.reference":
        return cfg.ref_rental().price.value
    if key == "rental.availability":
        return cfg.ref_rental().availability.value
    return cfg.v(key)


def swing_values(cfg: CostConfig, key: str) -> tuple[float, float, float]:
    """(base, low, high) for one input: +-swing relative, kept inside the input's valid range; the life
    moves by whole years (at least one)."""
    s = cfg.v("sensitivity.swing")
    b = base_value(cfg, key)
    if key == "finance.life_years":
        step = max(1, math.floor(b * s + 0.5))      # rounds halves up, as the workbook's ROUND does
        return b, max(1.0, b - step), min(30.0, b + step)
    lo, hi = b * (1 - s), b * (1 + s)
    if b < 0:
        lo, hi = hi, lo
    kind = input_kind(key)
    if kind in _AT_MOST_1 or key == "rental.availability":
        hi = min(hi, 1.0)
    if kind == "tax":
        hi = min(hi, 0.99)
    if kind == "change":
        lo, hi = max(lo, -0.99), min(hi, 1.0)
    if key in _MIN:
        lo = max(lo, _MIN[key])
    return b, lo, hi


def candidates(cfg: CostConfig) -> list[str]:
    """Every input the tornado tries: numeric inputs of the model, the reference rental's price (and its
    availability when it is reserved capacity), and each exchange rate the prices went through."""
    keys = [k for k in cfg.inputs if k.split(".")[0] in _SWUNG_SECTIONS]
    keys.append("rental.reference")
    if cfg.ref_rental().committed:
        keys.append("rental.availability")
    if cfg.options.get("finance.depreciation") != "declining-balance":
        keys.remove("finance.declining_balance_factor")
    keys += [f"fx.{r.currency}" for r in cfg.rates_used
             if any(i.orig_currency == r.currency for i in [*cfg.inputs.values(), *(x.price for x in cfg.rentals)])]
    return keys


# ---------------------------------------------------------------- tornado

@dataclass(frozen=True)
class Bar:
    key: str
    label: str
    base_input: float
    low_input: float
    high_input: float
    low: float          # NPV saving of owning with the input at low_input
    high: float
    base: float

    @property
    def spread(self) -> float:
        return abs(self.high - self.low)


def npv_saving(cfg: CostConfig) -> float:
    return evaluate(cfg)[1].npv_saving


def swings(cfg: CostConfig) -> tuple[list[Bar], list[tuple[Bar, float]]]:
    """NPV saving of owning against the reference rental with each candidate input swung +-swing.

    Returns the bars that move it by more than the threshold (default 1 %) of the base NPV saving, sorted by
    spread, and the others with their largest relative move (so the report can say they were tried)."""
    _, base_sum = evaluate(cfg)
    base = base_sum.npv_saving
    scale = abs(base) if base != 0 else abs(base_sum.npv_own)
    limit = cfg.v("sensitivity.threshold") * scale
    kept, small = [], []
    for key in candidates(cfg):
        b, lo, hi = swing_values(cfg, key)
        low, high = npv_saving(with_input(cfg, key, lo)), npv_saving(with_input(cfg, key, hi))
        bar = Bar(key, label(key), b, lo, hi, low, high, base)
        move = max(abs(low - base), abs(high - base))
        if move > limit:
            kept.append(bar)
        else:
            small.append((bar, move / scale if scale else 0.0))
    return sorted(kept, key=lambda x: x.spread, reverse=True), small


def tornado(cfg: CostConfig) -> list[Bar]:
    return swings(cfg)[0]


# ---------------------------------------------------------------- two-way table

@dataclass(frozen=True)
class TwoWay:
    utilizations: list[float]           # scheduler utilization
    price_factors: list[float]          # on the reference rental price
    prices: list[float]
    values: list[list[float]]           # values[i][j]: NPV saving at utilizations[i], prices[j]


def two_way(cfg: CostConfig, utilizations: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
            factors: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5)) -> TwoWay:
    """NPV saving of owning over scheduler utilization x reference rental price."""
    p0 = cfg.ref_rental().price.value
    values = [[npv_saving(with_input(with_input(cfg, "utilization.scheduler", u), "rental.reference", p0 * f))
               for f in factors] for u in utilizations]
    return TwoWay(list(utilizations), list(factors), [p0 * f for f in factors], values)


# ---------------------------------------------------------------- scenarios

SCALE_FACTORS = (0.5, 2.0, 4.0)


def scaled_nodes(nodes: float, factor: float) -> float:
    """Nodes times factor, rounded half up (as the workbook's ROUND), at least one."""
    return max(1.0, math.floor(nodes * factor + 0.5))

@dataclass(frozen=True)
class Scenario:
    name: str
    per_useful_gpu_hour: float          # levelized, pre-tax equivalent, with everything the option needs
    per_work_unit: float                # the same per unit of training work (this config's GPU-hour = 1)
    npv_cost: float                     # present value of its after-tax costs over the life
    useful_gpu_hours: float             # a year
    npv_saving: float | None = None     # owning plans: against renting the same hours on the reference
    note: str = ""
    kind: str = "own"                   # own | rent | hybrid | scale | config | generation


def _own_row(name: str, cfg: CostConfig, plan: Plan | None, note: str, kind: str, work: float = 1.0) -> Scenario:
    rows, s = evaluate(cfg, cfg.ref_rental(), plan)
    return Scenario(name, s.per_useful_hour, s.per_useful_hour / work, s.npv_own, rows[1].useful_gpu_hours,
                    s.npv_saving, note, kind)


def hybrid_plan(cfg: CostConfig) -> Plan:
    """Owned capacity sized for the base load at the base utilization; the peak rented on demand."""
    demand = useful_hours(cfg)
    base_load = demand * (1 - cfg.v("hybrid.peak_share"))
    per_node = cfg.v("cluster.gpus_per_node") * HOURS_PER_YEAR * cfg.v("hybrid.base_utilization") * \
        cfg.v("utilization.availability")
    nodes = max(1.0, math.ceil(base_load / per_node - 1e-9))
    return Plan(nodes, cfg.v("hybrid.base_utilization"), demand, topup_option(cfg))


def topup_option(cfg: CostConfig) -> Rental:
    ref = cfg.ref_rental()
    if not ref.committed:
        return ref
    return min((r for r in cfg.rentals if not r.committed), key=lambda r: r.price.value, default=ref)


def throughput(cfg: CostConfig, gpu: str) -> float:
    """Training throughput per GPU relative to A100 = 1: the catalog's published figure, or the measured one
    when the history had GEMM/NCCL results for that model (generation.throughput.<gpu>)."""
    key = f"generation.throughput.{gpu}"
    if key in cfg.inputs:
        return cfg.v(key)
    model = cfg.catalog.models.get(gpu)
    return model.training_throughput if model else 1.0


def other_model(cfg: CostConfig, gpu: str) -> CostConfig | None:
    """This config with another GPU model's catalog server price, typical power and current rental prices."""
    cat = cfg.catalog
    server = next((p for p in cat.prices.values() if p.kind == "server" and p.gpu == gpu and not p.historical), None)
    model = cat.models.get(gpu)
    rentals = [p for p in cat.rentals(gpu) if not p.historical]
    if server is None or model is None or not any(p.term == "on-demand" for p in rentals):
        return None
    conv = cat.factor
    new = dict(cfg.inputs)

    def price(key: str, p) -> None:
        new[key] = replace(new[key], value=p.amount * conv(p.currency, cfg.currency), basis=CATALOG, source=p.cited,
                           date=p.date, orig_amount=p.amount if p.currency != cfg.currency else None,
                           orig_currency=p.currency if p.currency != cfg.currency else "")

    price("capex.server_price", server)
    net = next((p for p in cat.prices.values() if p.kind == "network" and p.gpu == gpu), None)
    if net is not None:
        price("capex.network_per_node", net)
    new["power.gpu_power_w"] = Input("power.gpu_power_w", model.node_gpu_power_w, "W per node", DEFAULT, model.source)
    new["colocation.provisioned_kw_per_node"] = Input("colocation.provisioned_kw_per_node",
                                                      model.provisioned_kw_per_node, "kW per node", DEFAULT, model.source)
    ref = cfg.ref_rental()
    rents = [Rental(p.id, p.term, Input(f"rental.{p.id}", p.amount * conv(p.currency, cfg.currency),
                                        f"{cfg.currency} per GPU-hour", CATALOG, p.cited, p.date, "",
                                        p.amount if p.currency != cfg.currency else None,
                                        p.currency if p.currency != cfg.currency else ""),
                    ref.trajectory, replace(ref.availability, key=f"rental.{p.id}.availability")) for p in rentals]
    cheapest = min((r for r in rents if not r.committed), key=lambda r: r.price.value).id
    return replace(cfg, gpu_model=gpu, inputs=new, rentals=rents, reference=cheapest)


def other_models(cfg: CostConfig) -> list[tuple[str, CostConfig]]:
    """Each other catalog GPU model as a config with its catalog prices, by name (those lacking prices left out)."""
    out = []
    for gpu in sorted(cfg.catalog.models):
        other = other_model(cfg, gpu) if gpu != cfg.gpu_model else None
        if other is not None:
            out.append((gpu, other))
    return out


def scenarios(cfg: CostConfig, res: CostResult | None = None) -> list[Scenario]:
    res = res or compute(cfg)
    tp = throughput(cfg, cfg.gpu_model)
    n, g = cfg.v("cluster.nodes"), cfg.v("cluster.gpus_per_node")
    out = [_own_row(f"Own {n:g} x {g:g} {cfg.gpu_model} (this config)", cfg, None,
                    "servers, network, spares, storage, power, colocation, staff, support, repairs", "own")]
    for r in res.rentals:
        out.append(Scenario(f"Rent {r.id} ({r.term})", r.per_useful_gpu_hour, r.per_useful_gpu_hour, r.npv_rent,
                            res.useful_gpu_hours_per_year, None,
                            ("paid for every hour of the term, at the provider's availability" if r.term != "on-demand"
                             else "paid per used hour") + "; with cloud storage, egress and cloud-side staff", "rent"))
    plan = hybrid_plan(cfg)
    out.append(_own_row(f"Hybrid: own {plan.nodes:g} nodes for the base load, rent the peak on {plan.topup.id}",
                        cfg, plan, f"{cfg.v('hybrid.peak_share'):.0%} of useful hours are peak; the owned nodes run "
                                   f"at {plan.scheduler:.0%} scheduler utilization", "hybrid"))
    for factor in SCALE_FACTORS:
        nodes = scaled_nodes(n, factor)
        if nodes == n:
            continue
        out.append(_own_row(f"Own {nodes:g} nodes ({cfg.gpu_model})", cfg.with_values(cluster__nodes=nodes), None,
                            f"staff {cfg.v('operations.staff_fte'):g} + {cfg.v('operations.staff_fte_per_node'):g} "
                            f"FTE per node; storage and installation as configured", "scale"))
    for name, sc in cfg.scenarios:
        row = _own_row(name, sc, None, "", "config", throughput(sc, sc.gpu_model) / tp)
        out.append(replace(row, note=f"from the config; saves {row.npv_saving:,.0f} {cfg.currency} (NPV) against "
                                     f"{sc.reference}"))
    for gpu, other in other_models(cfg):
        work = throughput(cfg, gpu) / tp
        own = _own_row(f"Own {n:g} x {g:g} {gpu} (catalog prices)", other, None,
                       f"per unit of training work: {gpu} does {work:.2f}x the work of a {cfg.gpu_model} GPU-hour",
                       "generation", work)
        out.append(own)
        ref = compute(other)
        out.append(Scenario(f"Rent {other.reference} ({gpu}, on-demand)", ref.reference_per_useful_gpu_hour,
                            ref.reference_per_useful_gpu_hour / work, ref.npv_rent, ref.useful_gpu_hours_per_year,
                            None, f"per unit of training work at {work:.2f}x", "generation"))
    return out


# ---------------------------------------------------------------- cost curve

@dataclass(frozen=True)
class Curve:
    utilization: list[float]            # effective
    owned: list[float]
    rentals: dict[str, list[float]]
    break_even: dict[str, tuple[float, float]]   # on-demand id -> (effective utilization, cost there)


def curve(cfg: CostConfig, res: CostResult | None = None, steps: int = 96) -> Curve:
    """Levelized cost per useful GPU-hour against effective utilization, owned and rented (with extras)."""
    res = res or compute(cfg)
    rows, _ = evaluate(cfg)
    pv_hours = sum(x.owned_gpu_hours * x.discount_factor for x in rows[1:])
    pv_d = sum(x.discount_factor for x in rows[1:])
    extras = sum(x.discount_factor * (x.rent_storage + x.rent_egress + x.rent_staff) for x in rows[1:]) / pv_hours
    a = cfg.v("utilization.availability")
    us = [0.05 + 0.95 * i / (steps - 1) for i in range(steps)]
    owned = [res.cost_per_owned_gpu_hour / u for u in us]
    rentals: dict[str, list[float]] = {}
    for r in cfg.rentals:
        level = sum(x.discount_factor * rental_price(cfg, r, x.year) for x in rows[1:]) / pv_d
        if r.committed:   # paid hours = useful / (scheduler x provider availability), scheduler = u / a
            rentals[r.id] = [level * a / r.availability.value / u + extras / u for u in us]
        else:
            rentals[r.id] = [level + extras / u for u in us]
    be = {}
    for x in res.rentals:
        if x.break_even_utilization is not None and 0 < x.break_even_utilization <= 1:
            be[x.id] = (x.break_even_utilization, res.cost_per_owned_gpu_hour / x.break_even_utilization)
    return Curve(us, owned, rentals, be)
