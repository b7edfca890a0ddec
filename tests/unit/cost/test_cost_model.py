"""The model against figures worked out by hand (see the arithmetic in each comment)."""

from __future__ import annotations

import pytest

from clusterkit.cost import finance
from clusterkit.cost.analysis import tornado
from clusterkit.cost.model import compute

approx = pytest.approx


def test_crf_hand_computed():
    # 1.08^5 = 1.46932808; 0.08 * 1.46932808 / 0.46932808 = 0.25045645
    assert finance.crf(0.08, 5) == approx(0.25045645, rel=1e-7)
    # 1.1^3 = 1.331; 0.1331 / 0.331 = 0.40211480
    assert finance.crf(0.10, 3) == approx(0.40211480, rel=1e-7)
    assert finance.crf(0.0, 4) == 0.25           # no interest: straight line
    assert finance.annuity_factor(0.10, 3) == approx(1 / 0.40211480, rel=1e-7)   # 2.48685
    with pytest.raises(ValueError):
        finance.crf(0.1, 0)


def test_annualised_capital_with_residual():
    # (1000 - 100 / 1.331) * 0.4021148 = 924.86852 * 0.4021148 = 371.9033
    assert finance.annualised_capital(1000, 100, 0.10, 3) == approx(371.9033, rel=1e-6)


def test_payback():
    assert finance.simple_payback(1000, 250) == 4.0
    assert finance.simple_payback(1000, 0) is None
    assert finance.simple_payback(1000, -5) is None


def test_small_cluster_by_hand(small_cfg):
    r = compute(small_cfg)
    assert r.capex == 200_000                                  # 2 nodes x 100,000
    assert r.annualised_capex == approx(80_422.96, abs=0.01)   # 200,000 x 0.4021148
    assert r.capital_charge == r.annualised_capex             # no tax
    assert r.power == approx(26_280.0)                         # 2 nodes x 1 kW x 1.5 PUE x 8760 h x 1.0
    assert r.opex == approx(26_280.0)
    assert r.total_per_year == approx(106_702.96, abs=0.01)
    assert r.gpu_hours_per_year == 140_160                     # 16 GPUs x 8760 h
    assert r.cost_per_owned_gpu_hour == approx(0.761294, abs=1e-6)   # 106,702.96 / 140,160
    assert r.cost_per_useful_gpu_hour == approx(1.522588, abs=1e-6)  # / 0.5 utilization
    od, r3 = r.rentals
    assert od.break_even_utilization == approx(0.761294, abs=1e-6)   # owned hour / 1.0 per hour
    assert od.owning_cheaper is False                          # 1.52 per useful hour > 1.00
    assert r3.break_even_utilization is None                   # reserved: paid every hour like owning
    assert r3.per_useful_gpu_hour == approx(1.0)               # 0.5 / 0.5 utilization
    assert r.saving_per_useful_gpu_hour == approx(1.0 - 1.522588, abs=1e-6)
    # NPV of owning: level cost x annuity factor = 106,702.96 x 2.486852 = 265,354.5
    assert r.npv_own == approx(265_354.5, abs=0.5)
    # renting 70,080 useful GPU-hours a year at 1.0: 70,080 x 2.486852 = 174,278.6
    assert r.npv_rent == approx(174_278.6, abs=0.5)
    assert r.payback_years == approx(200_000 / (70_080 - 26_280))   # 4.566 years
    assert r.total_cost_of_ownership == approx(200_000 + 3 * 26_280)


def test_break_even_is_where_costs_meet(small_cfg):
    r = compute(small_cfg)
    u = r.rentals[0].break_even_utilization
    at_be = compute(small_cfg.with_values(utilization__scheduler=u))
    assert at_be.cost_per_useful_gpu_hour == approx(1.0)       # equals the on-demand price there


def test_residual_and_tax(small_cfg):
    cfg = small_cfg.with_values(finance__residual_fraction=0.1, finance__tax_rate=0.25)
    r = compute(cfg)
    assert r.residual_value == 20_000
    # (200,000 - 20,000 / 1.331) x 0.4021148 = 184,973.70 x 0.4021148 = 74,380.66
    assert r.annualised_capex == approx(74_380.66, abs=0.01)
    assert r.depreciation == approx(60_000)                    # (200,000 - 20,000) / 3
    # (74,380.66 - 0.25 x 60,000) / 0.75 = 79,174.22
    assert r.capital_charge == approx(79_174.22, abs=0.01)


def test_opex_lines(small_cfg):
    cfg = small_cfg.with_values(colocation__per_kw_month=100, colocation__provisioned_kw_per_node=10,
                                colocation__per_rack_month=50, colocation__racks=2, operations__staff_fte=0.5,
                                operations__staff_cost_per_fte_year=100_000, operations__support_fraction_per_year=0.1,
                                operations__failures_per_node_year=0.5, operations__cost_per_failure=1000,
                                capex__network_per_node=10_000, capex__storage=5_000, capex__installation=1_000)
    r = compute(cfg)
    assert r.capex == 2 * 110_000 + 6_000
    assert r.colocation == 12 * (100 * 10 * 2 + 50 * 2)          # 25,200
    assert r.staff == 50_000
    assert r.support == 0.1 * 2 * 100_000                        # of server capex only
    assert r.failures == 0.5 * 2 * 1000
    assert r.opex == approx(26_280 + 25_200 + 50_000 + 20_000 + 1000)


def test_tornado_by_hand(small_cfg):
    bars = {b.key: b for b in tornado(small_cfg)}            # +-20% by default
    u = bars["utilization.scheduler"]
    assert (u.low_input, u.high_input) == approx((0.4, 0.6))
    assert u.low == approx(1 - 106_702.96 / (140_160 * 0.4), abs=1e-6)   # -0.903235
    assert u.high == approx(1 - 106_702.96 / (140_160 * 0.6), abs=1e-6)  # -0.268823
    p = bars["rental.reference"]
    assert (p.low, p.high) == approx((0.8 - 1.522588, 1.2 - 1.522588), abs=1e-6)
    k = bars["power.price_per_kwh"]
    # power 21,024 / 31,536 -> total 101,446.96 / 111,958.96 over 70,080 useful hours
    assert (k.low, k.high) == approx((1 - 1.447588, 1 - 1.597588), abs=1e-6)
    life = bars["finance.life_years"]
    assert (life.low_input, life.high_input) == approx((2.4, 3.6))
    # life 2.4 y: 1.1^2.4 = 1.257010; CRF = 0.1257010 / 0.257010 = 0.489074 -> capital 97,814.7
    assert life.low == approx(1 - (200_000 * 0.489074 + 26_280) / 70_080, abs=1e-5)   # -0.770758
    spreads = [b.spread for b in tornado(small_cfg)]
    assert spreads == sorted(spreads, reverse=True)


def test_tornado_keeps_utilization_at_most_one(small_cfg):
    cfg = small_cfg.with_values(utilization__scheduler=0.95)
    u = next(b for b in tornado(cfg) if b.key == "utilization.scheduler")
    assert u.high_input == 1.0


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_inputs = st.fixed_dictionaries({
    "cluster__nodes": st.integers(1, 256), "capex__server_price": st.floats(1e3, 1e8),
    "finance__cost_of_capital": st.floats(0, 0.3), "finance__life_years": st.floats(1, 10),
    "finance__residual_fraction": st.floats(0, 0.5), "finance__tax_rate": st.floats(0, 0.5),
    "power__gpu_power_w": st.floats(0, 8000), "power__price_per_kwh": st.floats(0, 5),
    "utilization__scheduler": st.floats(0.01, 1), "utilization__availability": st.floats(0.01, 1),
})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_inputs)
def test_break_even_holds_for_any_inputs(small_cfg, values):
    cfg = small_cfg.with_values(**values)
    r = compute(cfg)
    od = r.rentals[0]
    # at the break-even utilization, a useful owned GPU-hour costs exactly the on-demand price
    assert r.cost_per_owned_gpu_hour / od.break_even_utilization == approx(od.price_per_gpu_hour, rel=1e-9)
    assert od.owning_cheaper == (r.effective_utilization > od.break_even_utilization) or \
        r.effective_utilization == approx(od.break_even_utilization)
    assert r.npv_saving == approx(r.npv_rent - r.npv_own)
    assert r.capital_charge >= 0 and r.cost_per_useful_gpu_hour >= r.cost_per_owned_gpu_hour


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_inputs, st.floats(1.01, 3))
def test_saving_moves_the_right_way(small_cfg, values, k):
    cfg = small_cfg.with_values(**values)
    base = compute(cfg).saving_per_useful_gpu_hour
    dearer = compute(cfg.with_values(capex__server_price=values["capex__server_price"] * k))
    assert dearer.saving_per_useful_gpu_hour < base                      # a dearer server saves less
    busier = min(1.0, values["utilization__scheduler"] * k)
    if busier - values["utilization__scheduler"] > 1e-9:  # below that the saving moves less than float rounding
        assert compute(cfg.with_values(utilization__scheduler=busier)).saving_per_useful_gpu_hour > base
