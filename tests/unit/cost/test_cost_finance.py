"""Finance formulas against hand-worked figures and against independent computations."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterkit.cost import finance

from xlsx_functions import HI, LO, bisect_irr

approx = pytest.approx


def test_crf_hand_computed():
    # 1.08^5 = 1.46932808; 0.08 * 1.46932808 / 0.46932808 = 0.25045645
    assert finance.crf(0.08, 5) == approx(0.25045645, rel=1e-7)
    # 1.1^3 = 1.331; 0.1331 / 0.331 = 0.40211480
    assert finance.crf(0.10, 3) == approx(0.40211480, rel=1e-7)
    assert finance.crf(0.0, 4) == 0.25           # no interest: straight line
    with pytest.raises(ValueError):
        finance.crf(0.1, 0)


def test_npv_hand_computed():
    # -100 + 60/1.1 + 60/1.21 = -100 + 54.545454 + 49.586777 = 4.132231
    assert finance.npv(0.10, [-100, 60, 60]) == approx(4.132231, abs=1e-6)
    assert finance.npv(0.0, [-100, 60, 60]) == 20
    # a level annuity's NPV is payment / CRF: 60 x 1.735537 = 104.132231
    assert finance.npv(0.10, [0, 60, 60]) == approx(60 / finance.crf(0.10, 2), rel=1e-12)


def test_irr_against_closed_forms():
    # one period: -100 + 110/(1+r) = 0  ->  r = 10 %
    assert finance.irr([-100, 110]) == approx(0.10, abs=1e-10)
    # two periods: -100 + 60x + 60x^2 = 0 with x = 1/(1+r): x = (-60 + sqrt(60^2 + 4*60*100)) / (2*60)
    x = (-60 + math.sqrt(60 ** 2 + 4 * 60 * 100)) / 120
    assert finance.irr([-100, 60, 60]) == approx(1 / x - 1, abs=1e-10)       # 13.0662 %
    # a perpetuity-like long annuity approaches payment/price: 1000 years of 10 on 100 -> 10 %
    assert finance.irr([-100] + [10] * 1000) == approx(0.10, abs=1e-9)
    # no sign change: no IRR
    assert finance.irr([-100, -5, -5]) is None
    assert finance.irr([100, 5]) is None


@settings(max_examples=150, deadline=None)
@given(st.floats(1e3, 1e7), st.lists(st.floats(0, 5e6), min_size=1, max_size=10))
def test_irr_matches_independent_bisection(outlay, inflows):
    flows = [-outlay] + inflows
    if sum(inflows) <= 0:
        assert finance.irr(flows) is None or finance.npv(finance.irr(flows), flows) == approx(0, abs=1e-3)
        return
    got = finance.irr(flows)
    want = bisect_irr(flows)
    if got is None:       # the root lies outside (-99 %, 1000 %): outside the independent search's range too
        assert want is None
        return
    if want is not None and LO + 0.01 < want < HI - 0.1:
        assert got == approx(want, abs=1e-8)
    assert finance.npv(got, flows) == approx(0, abs=1e-6 * outlay)


def test_payback_hand_computed():
    assert finance.payback([-100, 30, 30, 30, 30]) == approx(3 + 10 / 30)      # 3.333 years
    assert finance.payback([-100, 30, 30]) is None                               # never within the life
    assert finance.payback([0, 5]) == 0.0
    # discounted at 10 %: 27.2727, 24.7934, 22.5394, 20.4904 -> after 4 years -4.9041: never
    assert finance.discounted_payback(0.10, [-100, 30, 30, 30, 30]) is None
    # -100 + 50/1.1 + 50/1.21 = -13.2231, then 50/1.331 = 37.5657: 2 + 13.2231/37.5657 = 2.3520
    assert finance.discounted_payback(0.10, [-100, 50, 50, 50]) == approx(2.3520, abs=1e-4)


def test_depreciation_straight_line_and_double_declining():
    assert finance.depreciation(1000, 100, 5) == [180.0] * 5
    # rate 2/5 = 40 % of the opening book value, switching to straight line when larger, ending at salvage:
    # 400 (book 600), 240 (360), 144 (216), 86.4 (129.6), then only 29.6 is left above salvage
    ddb = finance.depreciation(1000, 100, 5, "declining-balance", 2.0)
    assert ddb == approx([400, 240, 144, 86.4, 29.6])
    assert sum(ddb) == approx(900)
    # 150 %: rate 30 %: 300 (700), 210 (490), 147 (343: 0.3 x 490 > 390/3), then straight line
    # (343 - 100)/2 = 121.5 beats 0.3 x 343 = 102.9 for the last two years
    assert finance.depreciation(1000, 100, 5, "declining-balance", 1.5) == approx([300, 210, 147, 121.5, 121.5])
    with pytest.raises(ValueError):
        finance.depreciation(1000, 0, 2.5)
    with pytest.raises(ValueError):
        finance.depreciation(1000, 0, 3, "sum-of-years")


@settings(max_examples=100, deadline=None)
@given(st.floats(1, 1e8), st.floats(0, 0.9), st.integers(1, 30), st.floats(1, 3))
def test_declining_balance_ends_at_salvage(cost, share, years, factor):
    deps = finance.depreciation(cost, cost * share, years, "declining-balance", factor)
    assert sum(deps) == approx(cost * (1 - share), rel=1e-9)
    assert all(d >= 0 for d in deps)
    assert all(a >= b - 1e-9 * cost for a, b in zip(deps, deps[1:]))     # never rises
