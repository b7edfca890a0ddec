"""The cost model: yearly cost of owning, per GPU-hour, against each rental price.

All amounts are in the report currency, per year unless named otherwise. The
formulas are listed in docs/cost.md; the XLSX workbook writes the same ones as
spreadsheet formulas (clusterkit/cost/render/xlsx.py) and a test recomputes it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from clusterkit.cost.config import CostConfig, Rental
from clusterkit.cost.finance import HOURS_PER_YEAR, annualised_capital, crf, simple_payback


@dataclass(frozen=True)
class RentalResult:
    id: str
    term: str
    price_per_gpu_hour: float          # list price, report currency
    per_useful_gpu_hour: float         # what a useful GPU-hour costs on this option
    break_even_utilization: float | None   # effective utilization where owning costs the same (on-demand only)
    break_even_scheduler_utilization: float | None   # the same, as scheduler utilization at the availability
    owning_cheaper: bool


@dataclass(frozen=True)
class CostResult:
    capex: float
    crf: float
    residual_value: float
    annualised_capex: float
    depreciation: float
    capital_charge: float              # annualised capex after the tax effect (pre-tax equivalent)
    power: float
    colocation: float
    staff: float
    support: float
    failures: float
    opex: float
    total_per_year: float
    node_power_kw: float
    gpu_hours_per_year: float
    effective_utilization: float
    useful_gpu_hours_per_year: float
    cost_per_owned_gpu_hour: float
    cost_per_useful_gpu_hour: float
    reference: str
    reference_per_useful_gpu_hour: float
    saving_per_useful_gpu_hour: float  # reference rental minus owning, per useful GPU-hour
    rent_per_year: float               # the same useful GPU-hours on the reference option
    total_cost_of_ownership: float     # undiscounted over the life: capex + opex x life - residual
    npv_own: float
    npv_rent: float
    npv_saving: float
    payback_years: float | None
    rentals: tuple[RentalResult, ...]

    def as_dict(self) -> dict:
        return asdict(self)


def rental_per_useful_hour(r: Rental, price: float, utilization: float) -> float:
    """On-demand is paid per used hour; reserved capacity is paid for every hour of the term."""
    return price / utilization if r.committed else price


def compute(cfg: CostConfig) -> CostResult:
    v = cfg.v
    nodes, gpn = v("cluster.nodes"), v("cluster.gpus_per_node")
    r, n, tax = v("finance.cost_of_capital"), v("finance.life_years"), v("finance.tax_rate")

    capex = nodes * (v("capex.server_price") + v("capex.network_per_node")) + v("capex.storage") + v("capex.installation")
    factor = crf(r, n)
    residual = v("finance.residual_fraction") * capex
    annual_capex = annualised_capital(capex, residual, r, n)
    depreciation = (capex - residual) / n
    # Opex and rent are deductible alike, so compare pre-tax equivalents:
    # after tax, owning costs A - t*D + (1-t)*O and renting (1-t)*R; dividing by (1-t) gives K + O vs R.
    capital_charge = (annual_capex - tax * depreciation) / (1.0 - tax)

    node_kw = (v("power.gpu_power_w") + v("power.non_gpu_overhead_w")) / 1000.0
    power = nodes * node_kw * v("power.pue") * HOURS_PER_YEAR * v("power.price_per_kwh")
    colocation = 12.0 * (v("colocation.per_kw_month") * v("colocation.provisioned_kw_per_node") * nodes
                         + v("colocation.per_rack_month") * v("colocation.racks"))
    staff = v("operations.staff_fte") * v("operations.staff_cost_per_fte_year")
    support = v("operations.support_fraction_per_year") * nodes * v("capex.server_price")
    failures = v("operations.failures_per_node_year") * nodes * v("operations.cost_per_failure")
    opex = power + colocation + staff + support + failures
    total = capital_charge + opex

    hours = nodes * gpn * HOURS_PER_YEAR
    util = v("utilization.scheduler") * v("utilization.availability")
    owned_hour = total / hours
    useful_hour = total / (hours * util)

    rentals = []
    for rent in cfg.rentals:
        price = rent.price.value
        per_useful = rental_per_useful_hour(rent, price, util)
        be = None if rent.committed or price <= 0 else owned_hour / price
        rentals.append(RentalResult(rent.id, rent.term, price, per_useful, be,
                                    None if be is None else be / v("utilization.availability"),
                                    useful_hour < per_useful))
    ref = next(x for x in rentals if x.id == cfg.reference)
    rent_year = ref.per_useful_gpu_hour * hours * util
    # Level yearly costs over the life, discounted: (K + O) x annuity factor (= 1/CRF).
    npv_own = total / factor
    npv_rent = rent_year / factor
    return CostResult(
        capex=capex, crf=factor, residual_value=residual, annualised_capex=annual_capex,
        depreciation=depreciation, capital_charge=capital_charge, power=power, colocation=colocation,
        staff=staff, support=support, failures=failures, opex=opex, total_per_year=total,
        node_power_kw=node_kw, gpu_hours_per_year=hours, effective_utilization=util,
        useful_gpu_hours_per_year=hours * util, cost_per_owned_gpu_hour=owned_hour,
        cost_per_useful_gpu_hour=useful_hour, reference=ref.id,
        reference_per_useful_gpu_hour=ref.per_useful_gpu_hour,
        saving_per_useful_gpu_hour=ref.per_useful_gpu_hour - useful_hour, rent_per_year=rent_year,
        total_cost_of_ownership=capex + opex * n - residual, npv_own=npv_own, npv_rent=npv_rent,
        npv_saving=npv_rent - npv_own, payback_years=simple_payback(capex, rent_year - opex),
        rentals=tuple(rentals))
