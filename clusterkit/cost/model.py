"""The cost model: one year-by-year cash-flow table from which every figure comes.

Owning: capex (servers, network, spares, storage, installation) in year 0, depreciation and book
value, opex lines with their own escalation, resale at the end of the life. Renting: the same
useful GPU-hours on a rental option (price trajectory, FX trajectory for foreign prices), plus what
renting needs besides GPUs (cloud storage, egress, cloud-side staff). Tax is charged on the
difference in taxable profit between the two (rent is deductible; owning deducts opex and
depreciation, the depreciation shield), assuming the company is profitable overall so a negative
difference is a tax saving. NPV, IRR, simple and discounted payback and the levelized cost per
GPU-hour are all read off that table. docs/cost.md writes every formula out; the XLSX workbook writes
the same chain as spreadsheet formulas (clusterkit/cost/render/xlsx.py) and tests recompute it.
All amounts are in the report currency.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from clusterkit.cost.config import CostConfig, Rental
from clusterkit.cost.finance import (HOURS_PER_YEAR, depreciation, discount, discounted_payback, growth, irr, npv,
                                     payback)


@dataclass(frozen=True)
class Year:
    year: int
    capex: float = 0.0
    depreciation: float = 0.0
    book_value: float = 0.0
    power: float = 0.0
    colocation: float = 0.0
    staff: float = 0.0
    support: float = 0.0
    repairs: float = 0.0
    opex: float = 0.0
    resale: float = 0.0
    owned_gpu_hours: float = 0.0
    useful_gpu_hours: float = 0.0        # the demand both sides serve
    topup_rent: float = 0.0              # owning plan: the useful hours it rents on top (hybrid)
    rent_price: float = 0.0              # rental price per GPU-hour this year
    rent: float = 0.0                    # GPU-hours paid x price
    rent_storage: float = 0.0
    rent_egress: float = 0.0
    rent_staff: float = 0.0
    rent_total: float = 0.0
    taxable_difference: float = 0.0      # renting's deductible costs minus owning's (opex + depreciation)
    tax: float = 0.0                     # extra tax owning pays (negative: saves)
    own_cost: float = 0.0                # after tax
    rent_cost: float = 0.0               # after tax
    net_cash_flow: float = 0.0           # owning instead of renting, after tax: rent_cost - own_cost
    discount_factor: float = 1.0
    cumulative: float = 0.0
    cumulative_discounted: float = 0.0


@dataclass(frozen=True)
class Plan:
    """What is owned and what is demanded; the defaults are the config itself."""
    nodes: float
    scheduler: float
    demand_useful_hours: float          # useful GPU-hours a year the workload needs
    topup: Rental | None = None         # on-demand option that covers demand beyond the owned cluster


@dataclass(frozen=True)
class RentalResult:
    id: str
    term: str
    price_per_gpu_hour: float           # list price at year 1, report currency
    per_useful_gpu_hour: float          # levelized cost of a useful GPU-hour on this option (with extras)
    npv_rent: float
    npv_saving: float                   # owning instead of this option, after tax
    irr: float | None
    break_even_utilization: float | None            # effective; > 1 means never (on-demand only)
    break_even_scheduler_utilization: float | None  # the same at the availability
    owning_cheaper: bool


@dataclass(frozen=True)
class CostResult:
    years: tuple[Year, ...]
    reference: str
    capex: float
    spares: float
    residual_value: float
    node_power_kw: float
    staff_fte: float
    gpu_hours_per_year: float
    effective_utilization: float
    useful_gpu_hours_per_year: float
    power: float                        # year 1
    colocation: float
    staff: float
    support: float
    failures: float
    opex: float
    total_cost_of_ownership: float      # undiscounted, before tax: capex + opex over the life - resale
    npv_own: float                      # present value of owning's after-tax costs
    npv_rent: float
    npv_saving: float
    irr: float | None
    payback_years: float | None
    discounted_payback_years: float | None
    cost_per_owned_gpu_hour: float      # levelized, pre-tax equivalent
    cost_per_useful_gpu_hour: float
    reference_per_useful_gpu_hour: float
    saving_per_useful_gpu_hour: float
    rentals: tuple[RentalResult, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict:
        return asdict(self)


def default_plan(cfg: CostConfig) -> Plan:
    return Plan(cfg.v("cluster.nodes"), cfg.v("utilization.scheduler"), useful_hours(cfg))


def useful_hours(cfg: CostConfig, nodes: float | None = None, scheduler: float | None = None) -> float:
    n = cfg.v("cluster.nodes") if nodes is None else nodes
    u = cfg.v("utilization.scheduler") if scheduler is None else scheduler
    return n * cfg.v("cluster.gpus_per_node") * HOURS_PER_YEAR * u * cfg.v("utilization.availability")


def capex(cfg: CostConfig, nodes: float) -> tuple[float, float]:
    """(capex, of which spares): spares are a share of server and network capex."""
    hw = nodes * (cfg.v("capex.server_price") + cfg.v("capex.network_per_node"))
    spares = hw * cfg.v("capex.spares_fraction")
    return hw + spares + cfg.v("capex.storage") + cfg.v("capex.installation"), spares


def staff_fte(cfg: CostConfig, nodes: float) -> float:
    return cfg.v("operations.staff_fte") + cfg.v("operations.staff_fte_per_node") * nodes


def node_power_kw(cfg: CostConfig) -> float:
    return (cfg.v("power.gpu_power_w") + cfg.v("power.non_gpu_overhead_w")) / 1000.0


def rental_price(cfg: CostConfig, r: Rental, year: int) -> float:
    """The option's price in year y: its trajectory, and the FX trajectory when quoted in another currency."""
    fx = cfg.v("trajectory.fx_per_year") if r.price.orig_currency else 0.0
    return r.price.value * growth(cfg.trajectory(r), year) * growth(fx, year)


def paid_hours(r: Rental, useful: float, scheduler: float) -> float:
    """On-demand is paid per used hour; reserved capacity for every hour of enough GPUs to deliver the
    useful hours at the scheduler utilization and the provider's own availability."""
    return useful / (scheduler * r.availability.value) if r.committed else useful


def rental_extras(cfg: CostConfig, year: int, share: float = 1.0) -> tuple[float, float, float]:
    """(storage, egress, cloud-side staff) a year for renting `share` of the workload."""
    storage = 12 * cfg.v("rental_side.storage_tb") * cfg.v("rental_side.storage_per_tb_month") * share
    egress = 12 * cfg.v("rental_side.egress_tb_per_month") * cfg.v("rental_side.egress_per_tb") * share
    staff = (cfg.v("rental_side.staff_fte") * cfg.v("operations.staff_cost_per_fte_year")
             * growth(cfg.v("trajectory.staff_per_year"), year) * share)
    return storage, egress, staff


def cash_flows(cfg: CostConfig, rental: Rental, plan: Plan | None = None) -> list[Year]:
    """The year-by-year table: owning `plan` against renting its demand on `rental`."""
    plan = plan or default_plan(cfg)
    n = int(cfg.v("finance.life_years"))
    t, r = cfg.v("finance.tax_rate"), cfg.v("finance.cost_of_capital")
    nodes, gpn = plan.nodes, cfg.v("cluster.gpus_per_node")
    c0, _ = capex(cfg, nodes)
    salvage = cfg.v("finance.residual_fraction") * c0
    deps = depreciation(c0, salvage, n, cfg.options.get("finance.depreciation", "straight-line"),
                        cfg.v("finance.declining_balance_factor"))
    owned_hours = nodes * gpn * HOURS_PER_YEAR
    own_useful = owned_hours * plan.scheduler * cfg.v("utilization.availability")
    demand = plan.demand_useful_hours
    topup_hours = max(0.0, demand - own_useful)
    topup_share = topup_hours / demand if demand > 0 else 0.0
    kw = node_power_kw(cfg)
    power1 = nodes * kw * cfg.v("power.pue") * HOURS_PER_YEAR * cfg.v("power.price_per_kwh")
    colo1 = 12.0 * (cfg.v("colocation.per_kw_month") * cfg.v("colocation.provisioned_kw_per_node") * nodes
                    + cfg.v("colocation.per_rack_month") * cfg.v("colocation.racks"))
    staff1 = staff_fte(cfg, nodes) * cfg.v("operations.staff_cost_per_fte_year")
    support = cfg.v("operations.support_fraction_per_year") * nodes * cfg.v("capex.server_price")
    repairs = cfg.v("operations.failures_per_node_year") * nodes * cfg.v("operations.cost_per_failure")

    rows = [Year(0, capex=c0, book_value=c0, own_cost=c0, net_cash_flow=-c0, cumulative=-c0,
                 cumulative_discounted=-c0)]
    book, cum, cum_d = c0, -c0, -c0
    for y in range(1, n + 1):
        power = power1 * growth(cfg.v("trajectory.power_per_year"), y)
        colo = colo1 * growth(cfg.v("trajectory.colocation_per_year"), y)
        staff = staff1 * growth(cfg.v("trajectory.staff_per_year"), y)
        # the owning plan's top-up rent is part of its operating cost
        topup = 0.0
        if topup_hours > 0 and plan.topup is not None:
            s, e, st = rental_extras(cfg, y, topup_share)
            topup = rental_price(cfg, plan.topup, y) * topup_hours + s + e + st
        opex = power + colo + staff + support + repairs + topup
        dep = deps[y - 1]
        book -= dep
        resale = salvage if y == n else 0.0
        price = rental_price(cfg, rental, y)
        # reserved capacity is sized for the workload's own scheduler utilization, whatever the owned plan runs at
        rent = price * paid_hours(rental, demand, cfg.v("utilization.scheduler"))
        storage, egress, rstaff = rental_extras(cfg, y)
        rent_total = rent + storage + egress + rstaff
        taxable = rent_total - opex - dep
        tax = t * taxable
        # resale at book value: no gain, no tax on it (the book value ends at the salvage value)
        own_cost = opex - t * (opex + dep) - resale
        rent_cost = (1 - t) * rent_total
        net = rent_cost - own_cost
        d = discount(r, y)
        cum += net
        cum_d += net * d
        rows.append(Year(y, depreciation=dep, book_value=book, power=power, colocation=colo, staff=staff,
                         support=support, repairs=repairs, opex=opex, resale=resale, owned_gpu_hours=owned_hours,
                         useful_gpu_hours=demand, topup_rent=topup, rent_price=price, rent=rent,
                         rent_storage=storage, rent_egress=egress, rent_staff=rstaff, rent_total=rent_total,
                         taxable_difference=taxable, tax=tax, own_cost=own_cost, rent_cost=rent_cost,
                         net_cash_flow=net, discount_factor=d, cumulative=cum, cumulative_discounted=cum_d))
    return rows


@dataclass(frozen=True)
class Summary:
    npv_own: float
    npv_rent: float
    npv_saving: float
    irr: float | None
    payback: float | None
    discounted_payback: float | None
    per_owned_hour: float
    per_useful_hour: float
    rent_per_useful_hour: float


def summarize(cfg: CostConfig, rows: list[Year]) -> Summary:
    """NPV, IRR, paybacks and levelized costs, all from the table."""
    r, t = cfg.v("finance.cost_of_capital"), cfg.v("finance.tax_rate")
    flows = [x.net_cash_flow for x in rows]
    npv_own = npv(r, [x.own_cost for x in rows])
    npv_rent = npv(r, [x.rent_cost for x in rows])
    pv_owned = sum(x.owned_gpu_hours * x.discount_factor for x in rows[1:])
    pv_useful = sum(x.useful_gpu_hours * x.discount_factor for x in rows[1:])
    # a levelized cost is the pre-tax price per hour whose after-tax present value equals the costs'
    per_owned = npv_own / ((1 - t) * pv_owned) if pv_owned else math.inf
    per_useful = npv_own / ((1 - t) * pv_useful) if pv_useful else math.inf
    rent_useful = npv_rent / ((1 - t) * pv_useful) if pv_useful else math.inf
    return Summary(npv_own, npv_rent, npv(r, flows), irr(flows), payback(flows), discounted_payback(r, flows),
                   per_owned, per_useful, rent_useful)


def break_even(cfg: CostConfig, rental: Rental, rows: list[Year], npv_own: float) -> float | None:
    """Effective utilization at which renting the same useful hours on-demand costs what owning does.

    Owning's costs do not depend on utilization (power is the mean draw); on-demand rent grows with it, the
    rental-side extras do not: u* = (NPV_own/(1-t) - PV(extras)) / sum(d_y p_y N g 8760). None for reserved.
    """
    if rental.committed:
        return None
    t = cfg.v("finance.tax_rate")
    hours = cfg.v("cluster.nodes") * cfg.v("cluster.gpus_per_node") * HOURS_PER_YEAR
    rent_per_full_use = sum(x.discount_factor * x.rent_price * hours for x in rows[1:])
    extras = sum(x.discount_factor * (x.rent_storage + x.rent_egress + x.rent_staff) for x in rows[1:])
    if rent_per_full_use <= 0:
        return math.inf
    return max(0.0, (npv_own / (1 - t) - extras) / rent_per_full_use)


def evaluate(cfg: CostConfig, rental: Rental | None = None, plan: Plan | None = None) -> tuple[list[Year], Summary]:
    rental = rental or cfg.ref_rental()
    rows = cash_flows(cfg, rental, plan)
    return rows, summarize(cfg, rows)


def compute(cfg: CostConfig) -> CostResult:
    nodes = cfg.v("cluster.nodes")
    avail = cfg.v("utilization.availability")
    rentals = []
    ref_rows: list[Year] = []
    ref_sum: Summary | None = None
    for rent in cfg.rentals:
        rows, s = evaluate(cfg, rent)
        be = break_even(cfg, rent, rows, s.npv_own)
        rentals.append(RentalResult(rent.id, rent.term, rent.price.value, s.rent_per_useful_hour, s.npv_rent,
                                    s.npv_saving, s.irr, be, None if be is None else be / avail, s.npv_saving > 0))
        if rent.id == cfg.reference:
            ref_rows, ref_sum = rows, s
    assert ref_sum is not None
    y1 = ref_rows[1]
    c0, spares = capex(cfg, nodes)
    hours = nodes * cfg.v("cluster.gpus_per_node") * HOURS_PER_YEAR
    util = cfg.v("utilization.scheduler") * avail
    return CostResult(
        years=tuple(ref_rows), reference=cfg.reference, capex=c0, spares=spares,
        residual_value=cfg.v("finance.residual_fraction") * c0, node_power_kw=node_power_kw(cfg),
        staff_fte=staff_fte(cfg, nodes), gpu_hours_per_year=hours, effective_utilization=util,
        useful_gpu_hours_per_year=hours * util, power=y1.power, colocation=y1.colocation, staff=y1.staff,
        support=y1.support, failures=y1.repairs, opex=y1.opex,
        total_cost_of_ownership=c0 + sum(x.opex for x in ref_rows) - ref_rows[-1].resale,
        npv_own=ref_sum.npv_own, npv_rent=ref_sum.npv_rent, npv_saving=ref_sum.npv_saving, irr=ref_sum.irr,
        payback_years=ref_sum.payback, discounted_payback_years=ref_sum.discounted_payback,
        cost_per_owned_gpu_hour=ref_sum.per_owned_hour, cost_per_useful_gpu_hour=ref_sum.per_useful_hour,
        reference_per_useful_gpu_hour=ref_sum.rent_per_useful_hour,
        saving_per_useful_gpu_hour=ref_sum.rent_per_useful_hour - ref_sum.per_useful_hour,
        rentals=tuple(rentals))
