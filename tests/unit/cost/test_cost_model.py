"""The year-by-year model against figures worked out by hand, and against an explicit after-tax cash flow
written here independently of clusterkit/cost/model.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterkit.cost.config import load_config
from clusterkit.cost.model import break_even, compute, evaluate

approx = pytest.approx
D = [1 / 1.1, 1 / 1.21, 1 / 1.331]          # discount factors at 10 %


def test_small_cluster_without_tax_by_hand(small_cfg):
    r = compute(small_cfg)
    assert r.capex == 200_000                                  # 2 nodes x 100,000
    assert r.power == approx(26_280.0)                         # 2 nodes x 1 kW x 1.5 PUE x 8760 h x 1.0
    assert r.opex == approx(26_280.0)
    assert r.gpu_hours_per_year == 140_160                     # 16 GPUs x 8760 h
    assert r.useful_gpu_hours_per_year == 70_080               # at 50 % utilization
    # no tax: NPV of owning = 200,000 + 26,280 x (1/1.1 + 1/1.21 + 1/1.331) = 200,000 + 65,354.47
    assert r.npv_own == approx(265_354.47, abs=0.01)
    # levelized per owned hour = 265,354.47 / (140,160 x 2.486852) = 0.761294 (the annuity cost of the
    # old model: with no tax and level costs both agree)
    assert r.cost_per_owned_gpu_hour == approx(0.761294, abs=1e-6)
    assert r.cost_per_useful_gpu_hour == approx(1.522588, abs=1e-6)
    od, r3 = r.rentals
    assert od.break_even_utilization == approx(0.761294, abs=1e-6)
    assert od.owning_cheaper is False
    # reserved: paid for every hour of 16 GPUs / (0.5 scheduler x 0.99 provider availability)
    assert r3.break_even_utilization is None
    assert r3.per_useful_gpu_hour == approx(0.5 / (0.5 * 0.99))
    # renting 70,080 useful hours at 1.0: 70,080 x 2.486852 = 174,278.59
    assert r.npv_rent == approx(174_278.59, abs=0.01)
    assert r.npv_saving == approx(174_278.59 - 265_354.47, abs=0.02)
    assert r.payback_years is None and r.discounted_payback_years is None   # never pays back


def _taxed(small_cfg, price=1.0):
    cfg = small_cfg.with_values(finance__residual_fraction=0.1, finance__tax_rate=0.25)
    od = dataclasses.replace(cfg.rentals[0], price=dataclasses.replace(cfg.rentals[0].price, value=price))
    return dataclasses.replace(cfg, rentals=[od, cfg.rentals[1]])


def test_after_tax_case_by_hand(small_cfg):
    """Tax 25 %, resale 10 %, straight-line depreciation (200,000 - 20,000)/3 = 60,000 a year.

    Each year: rent 70,080, opex 26,280; taxable difference 70,080 - 26,280 - 60,000 = -16,200, so owning
    pays 4,050 less tax; net cash flow 70,080 - 26,280 + 4,050 = 47,850; year 3 adds the 20,000 resale.
    NPV = -200,000 + 47,850/1.1 + 47,850/1.21 + 67,850/1.331
        = -200,000 + 43,500 + 39,545.4545 + 50,976.7092 = -65,977.8363
    """
    r = compute(_taxed(small_cfg))
    ys = r.years
    assert [y.depreciation for y in ys[1:]] == approx([60_000] * 3)
    assert [y.book_value for y in ys] == approx([200_000, 140_000, 80_000, 20_000])
    assert [y.taxable_difference for y in ys[1:]] == approx([-16_200] * 3)
    assert [y.tax for y in ys[1:]] == approx([-4_050] * 3)
    assert [y.net_cash_flow for y in ys] == approx([-200_000, 47_850, 47_850, 67_850])
    assert r.npv_saving == approx(-65_977.8363, abs=1e-4)
    # owning after tax: 26,280 - 0.25 x (26,280 + 60,000) = 4,710 a year, year 3 less the 20,000 resale
    # 200,000 + 4,710/1.1 + 4,710/1.21 - 15,290/1.331 = 196,686.7769
    assert r.npv_own == approx(196_686.7769, abs=1e-4)
    assert r.npv_rent == approx(0.75 * 70_080 * sum(D), rel=1e-12)          # 130,708.90
    # levelized: the before-tax price per hour whose after-tax value equals owning's
    assert r.cost_per_owned_gpu_hour == approx(196_686.7769 / (0.75 * 140_160 * sum(D)), rel=1e-9)
    assert r.cost_per_useful_gpu_hour == approx(196_686.7769 / (0.75 * 70_080 * sum(D)), rel=1e-9)


def test_after_tax_npv_is_the_explicit_after_tax_cash_flow_npv(small_cfg):
    """The issue's defect: dividing by (1-t) overstated the NPV by 1/(1-t). Now NPV = explicit flows' NPV."""
    r = compute(_taxed(small_cfg))
    explicit = -200_000 + sum(f * d for f, d in zip([47_850, 47_850, 67_850], D))
    assert r.npv_saving == approx(explicit, rel=1e-9, abs=1e-9)
    assert r.npv_saving != approx(explicit / 0.75, rel=1e-3)                  # not the pre-tax equivalent


def test_irr_and_paybacks_by_hand(small_cfg):
    # at 2.0 per GPU-hour: rent 140,160; taxable 140,160 - 26,280 - 60,000 = 53,880; tax 13,470;
    # net 100,410 a year (120,410 in year 3). Cumulative: -200,000, -99,590, +820: payback 1 + 99,590/100,410
    r = compute(_taxed(small_cfg, price=2.0))
    assert [y.net_cash_flow for y in r.years] == approx([-200_000, 100_410, 100_410, 120_410])
    assert r.payback_years == approx(1 + 99_590 / 100_410)                    # 1.9918 years
    # discounted: 91,281.82 then 82,983.47 (cum -25,734.71), then 90,465.81: 2 + 25,734.71/90,465.81
    assert r.discounted_payback_years == approx(2 + 25_734.7107 / 90_465.8152, abs=1e-6)   # 2.2845
    # IRR: NPV at it is zero (checked against an independent bisection in test_cost_finance)
    flows = [y.net_cash_flow for y in r.years]
    assert sum(f / (1 + r.irr) ** t for t, f in enumerate(flows)) == approx(0, abs=1e-4)
    # x = 1/1.270335 = 0.787194: 100,410 x (x + x^2) + 120,410 x^3 = 79,042 + 62,221 + 58,736 = 200,000
    assert r.irr == approx(0.270335, abs=1e-6)


def test_break_even_is_where_npv_is_zero(small_cfg):
    cfg = _taxed(small_cfg)
    r = compute(cfg)
    u = r.rentals[0].break_even_utilization
    # (NPV_own/(1-t)) / (140,160 x sum of discount factors) = (196,686.78/0.75)/348,557.2 = 0.752386
    assert u == approx(196_686.7769 / 0.75 / (140_160 * sum(D)), rel=1e-9)
    at_be = compute(cfg.with_values(utilization__scheduler=u))
    assert at_be.npv_saving == approx(0, abs=1e-6)


def test_declining_balance_brings_the_tax_shield_forward(small_cfg):
    cfg = _taxed(small_cfg)
    db = dataclasses.replace(cfg, options={"finance.depreciation": "declining-balance"})
    sl, dbr = compute(cfg), compute(db)
    # rate 2/3 of 200,000 = 133,333; then max(2/3 x 66,667, (66,667 - 20,000)/2) = 44,444; then 2,222
    assert [y.depreciation for y in dbr.years[1:]] == approx([133_333.33, 44_444.44, 2_222.22], abs=0.01)
    assert dbr.years[-1].book_value == approx(20_000)
    assert dbr.npv_saving > sl.npv_saving                        # the same shield, sooner
    assert sum(y.tax for y in dbr.years) == approx(sum(y.tax for y in sl.years))


def test_staff_scales_with_nodes_and_rent_side_carries_extras(small_cfg):
    cfg = small_cfg.with_values(operations__staff_fte=0.5, operations__staff_fte_per_node=0.25,
                                operations__staff_cost_per_fte_year=100_000, rental_side__storage_tb=10,
                                rental_side__storage_per_tb_month=20, rental_side__egress_tb_per_month=2,
                                rental_side__egress_per_tb=90, rental_side__staff_fte=0.1)
    r = compute(cfg)
    assert r.staff_fte == 1.0 and r.staff == 100_000                          # 0.5 + 0.25 x 2 nodes
    assert compute(cfg.with_values(cluster__nodes=8)).staff == approx(250_000)  # 0.5 + 0.25 x 8
    y1 = r.years[1]
    assert (y1.rent_storage, y1.rent_egress, y1.rent_staff) == approx((12 * 10 * 20, 12 * 2 * 90, 10_000))
    assert y1.rent_total == approx(70_080 + 2_400 + 2_160 + 10_000)


def test_trajectories(small_cfg):
    cfg = small_cfg.with_values(trajectory__rental_per_year=-0.3, trajectory__power_per_year=0.1,
                                trajectory__fx_per_year=0.5)
    ys = compute(cfg).years
    assert [y.rent_price for y in ys[1:]] == approx([1.0, 0.7, 0.49])          # quoted in USD = report currency
    assert [y.power for y in ys[1:]] == approx([26_280, 28_908, 31_798.8])


def test_hybrid_sizes_owned_capacity_for_base_load(small_cfg):
    from clusterkit.cost.analysis import hybrid_plan

    cfg = small_cfg.with_values(hybrid__peak_share=0.5, hybrid__base_utilization=1.0)
    plan = hybrid_plan(cfg)
    # demand 70,080 useful hours; base load 35,040 at 100 % of 8 x 8760 per node -> 1 node (0.5 -> 1)
    assert plan.nodes == 1 and plan.demand_useful_hours == 70_080
    rows, s = evaluate(cfg, cfg.rentals[0], plan)
    # 1 node delivers 70,080 at 100 %: nothing to rent on top
    assert rows[1].topup_rent == 0 and rows[1].owned_gpu_hours == 70_080
    assert s.per_useful_hour < compute(cfg).cost_per_useful_gpu_hour    # a busier cluster costs less an hour


def test_example_explicit_after_tax_cash_flow():
    """The built-in example, recomputed here line by line from its inputs."""
    cfg = load_config(None, today=dt.date(2026, 11, 30))
    v = cfg.v
    r = compute(cfg)
    n, t, rate = int(v("finance.life_years")), v("finance.tax_rate"), v("finance.cost_of_capital")
    nodes, gpn = v("cluster.nodes"), v("cluster.gpus_per_node")
    c0 = nodes * (v("capex.server_price") + v("capex.network_per_node")) * (1 + v("capex.spares_fraction")) \
        + v("capex.storage") + v("capex.installation")
    salvage = v("finance.residual_fraction") * c0
    dep = (c0 - salvage) / n
    useful = nodes * gpn * 8760 * v("utilization.scheduler") * v("utilization.availability")
    ref = cfg.ref_rental()
    flows = [-c0]
    for y in range(1, n + 1):
        power = nodes * (v("power.gpu_power_w") + v("power.non_gpu_overhead_w")) / 1000 * v("power.pue") * 8760 \
            * v("power.price_per_kwh") * (1 + v("trajectory.power_per_year")) ** (y - 1)
        colo = 12 * v("colocation.per_kw_month") * v("colocation.provisioned_kw_per_node") * nodes \
            * (1 + v("trajectory.colocation_per_year")) ** (y - 1)
        staff = (v("operations.staff_fte") + v("operations.staff_fte_per_node") * nodes) \
            * v("operations.staff_cost_per_fte_year") * (1 + v("trajectory.staff_per_year")) ** (y - 1)
        opex = power + colo + staff + v("operations.support_fraction_per_year") * nodes * v("capex.server_price") \
            + v("operations.failures_per_node_year") * nodes * v("operations.cost_per_failure")
        rent = ref.price.value * (1 + v("trajectory.rental_per_year")) ** (y - 1) * useful \
            + 12 * v("rental_side.storage_tb") * v("rental_side.storage_per_tb_month") \
            + 12 * v("rental_side.egress_tb_per_month") * v("rental_side.egress_per_tb") \
            + v("rental_side.staff_fte") * v("operations.staff_cost_per_fte_year") \
            * (1 + v("trajectory.staff_per_year")) ** (y - 1)
        after_tax = (rent - opex) - t * (rent - opex - dep) + (salvage if y == n else 0)
        flows.append(after_tax)
    assert [y.net_cash_flow for y in r.years] == approx(flows, rel=1e-12)
    explicit_npv = sum(f / (1 + rate) ** y for y, f in enumerate(flows))
    assert r.npv_saving == approx(explicit_npv, rel=1e-9, abs=1e-9)
    assert r.capex == approx(c0) and cfg.v("finance.tax_rate") == 0.25


_inputs = st.fixed_dictionaries({
    "cluster__nodes": st.integers(1, 256), "capex__server_price": st.floats(1e3, 1e8),
    "finance__cost_of_capital": st.floats(0, 0.3), "finance__life_years": st.integers(1, 10),
    "finance__residual_fraction": st.floats(0, 0.5), "finance__tax_rate": st.floats(0, 0.5),
    "power__gpu_power_w": st.floats(0, 8000), "power__price_per_kwh": st.floats(0, 5),
    "utilization__scheduler": st.floats(0.01, 1), "utilization__availability": st.floats(0.01, 1),
    "trajectory__rental_per_year": st.floats(-0.5, 0.2),
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_inputs)
def test_npv_equals_explicit_after_tax_flows_for_any_inputs(small_cfg, values):
    cfg = small_cfg.with_values(**values)
    r = compute(cfg)
    t, rate = values["finance__tax_rate"], values["finance__cost_of_capital"]
    flows = [-r.capex] + [(y.rent_total - y.opex) * (1 - t) + t * y.depreciation + y.resale for y in r.years[1:]]
    scale = sum(abs(f) for f in flows)            # rounding of sums of large numbers that nearly cancel
    assert r.npv_saving == approx(sum(f / (1 + rate) ** i for i, f in enumerate(flows)), rel=1e-9, abs=1e-12 * scale)
    assert r.years[-1].book_value == approx(r.residual_value, rel=1e-9, abs=1e-12 * r.capex)
    od = r.rentals[0]
    if 0 < od.break_even_utilization < math.inf:
        u = od.break_even_utilization / values["utilization__availability"]
        if u <= 1:
            assert compute(cfg.with_values(utilization__scheduler=u)).npv_saving == approx(0, abs=1e-9 * scale)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_inputs, st.floats(1.01, 3))
def test_saving_moves_the_right_way(small_cfg, values, k):
    cfg = small_cfg.with_values(**values)
    base = compute(cfg).npv_saving
    dearer = compute(cfg.with_values(capex__server_price=values["capex__server_price"] * k))
    assert dearer.npv_saving < base                                 # a dearer server saves less
    busier = min(1.0, values["utilization__scheduler"] * k)
    if busier - values["utilization__scheduler"] > 1e-6:
        assert compute(cfg.with_values(utilization__scheduler=busier)).npv_saving > base


def test_break_even_function_is_none_for_reserved(small_cfg):
    rows, s = evaluate(small_cfg, small_cfg.rentals[1])
    assert break_even(small_cfg, small_cfg.rentals[1], rows, s.npv_own) is None
