"""Sensitivity (tornado over every input, two-way table) and scenarios, on the example and by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from clusterkit.cost import analysis
from clusterkit.cost.config import load_config
from clusterkit.cost.model import compute

approx = pytest.approx


@pytest.fixture(scope="module")
def example():
    return load_config(None, today=dt.date(2026, 11, 30))


def test_tornado_tries_every_input_and_keeps_those_moving_the_npv_by_more_than_1_percent(example):
    kept, small = analysis.swings(example)
    base = compute(example).npv_saving
    tried = {b.key for b in kept} | {b.key for b, _ in small}
    for key in ("fx.USD", "colocation.per_kw_month", "utilization.availability", "power.pue",
                "operations.staff_cost_per_fte_year", "operations.failures_per_node_year", "rental.reference",
                "trajectory.rental_per_year", "rental_side.storage_tb"):
        assert key in tried, key
    for b in kept:
        assert max(abs(b.low - base), abs(b.high - base)) > 0.01 * abs(base), b.key
    for b, move in small:
        assert max(abs(b.low - base), abs(b.high - base)) <= 0.01 * abs(base) and move <= 0.01
    spreads = [b.spread for b in kept]
    assert spreads == sorted(spreads, reverse=True)
    kept_keys = {b.key for b in kept}
    assert {"fx.USD", "colocation.per_kw_month", "utilization.availability", "power.pue",
            "operations.staff_cost_per_fte_year"} <= kept_keys
    # repairs cost CNY 80,000 a year here: +-20 % moves the NPV by 0.7 %, under the threshold, and it is said so
    assert dict((b.key, m) for b, m in small)["operations.failures_per_node_year"] == approx(0.0075, abs=0.001)
    costly = example.with_values(operations__cost_per_failure=200_000)
    assert "operations.failures_per_node_year" in {b.key for b in analysis.tornado(costly)}


def test_swings_stay_in_range(example):
    assert analysis.swing_values(example, "utilization.availability") == approx((0.97, 0.776, 1.0))
    assert analysis.swing_values(example, "finance.life_years") == (5, 4, 6)          # whole years
    assert analysis.swing_values(example, "trajectory.rental_per_year") == approx((-0.1, -0.12, -0.08))
    assert analysis.swing_values(example, "power.pue") == approx((1.3, 1.04, 1.56))
    assert analysis.swing_values(example, "fx.USD") == approx((1.0, 0.8, 1.2))
    # the exchange rate moves every amount quoted in USD: server price, rentals
    moved = analysis.with_input(example, "fx.USD", 1.2)
    assert moved.v("capex.server_price") == approx(1.2 * example.v("capex.server_price"))
    assert moved.ref_rental().price.value == approx(1.2 * example.ref_rental().price.value)
    assert moved.v("capex.storage") == example.v("capex.storage")                    # CNY stays


def test_two_way_table(example):
    tw = analysis.two_way(example, utilizations=(0.5, 0.7, 0.9), factors=(0.75, 1.0, 1.25))
    assert tw.prices == approx([0.75 * 27.136788, 27.136788, 1.25 * 27.136788])
    assert tw.values[1][1] == approx(compute(example).npv_saving)                    # the base case
    for row in tw.values:                                                            # dearer rent: owning saves more
        assert row == sorted(row)
    for j in range(3):                                                               # busier: owning saves more
        assert [tw.values[i][j] for i in range(3)] == sorted(tw.values[i][j] for i in range(3))


def test_scenarios(example):
    res = compute(example)
    rows = {s.name: s for s in analysis.scenarios(example, res)}
    own = rows["Own 8 x 8 H100 (this config)"]
    assert own.per_useful_gpu_hour == approx(res.cost_per_useful_gpu_hour) and own.npv_saving == approx(res.npv_saving)
    # one scenario line: H100 rental falls 30 % a year; owning then loses against renting
    falls = rows["H100 rental falls 30% a year"]
    assert falls.npv_saving < 0 < own.npv_saving
    # hybrid: demand 64 x 8760 x 70 % x 97 % = 380,695 useful hours; the base 80 % of it at 90 % on
    # 8 x 8760 x 90 % x 97 % = 61,180 per node -> 4.98 -> 5 nodes, the peak rented on demand
    hybrid = next(s for s in rows.values() if s.kind == "hybrid")
    assert hybrid.name.startswith("Hybrid: own 5 nodes") and hybrid.per_useful_gpu_hour < own.per_useful_gpu_hour
    # staff scales with nodes: 0.5 + 0.0625 x 32 = 2.5 FTE at 32 nodes
    big = compute(example.with_values(cluster__nodes=32))
    assert big.staff_fte == 2.5 and rows["Own 32 nodes (H100)"].npv_cost == approx(big.npv_own)
    # generations per unit of training work: an A100 GPU-hour does half an H100 GPU-hour's work
    a100 = rows["Own 8 x 8 A100 (catalog prices)"]
    assert a100.per_work_unit == approx(2 * a100.per_useful_gpu_hour)
    rent_a100 = next(s for s in rows.values() if s.kind == "generation" and s.name.startswith("Rent"))
    assert rent_a100.per_work_unit == approx(2 * rent_a100.per_useful_gpu_hour)


def test_measured_throughput_changes_the_generation_comparison(example):
    from dataclasses import replace

    from clusterkit.cost.config import Input

    measured = replace(example, inputs={**example.inputs, "generation.throughput.H100":
                                        Input("generation.throughput.H100", 1.6, "x A100", "measured", "history")})
    a100 = next(s for s in analysis.scenarios(measured) if s.name.startswith("Own 8 x 8 A100"))
    assert a100.per_work_unit == approx(1.6 * a100.per_useful_gpu_hour)
