"""Textbook finance formulas used by the cash-flow model (pure functions, no I/O).

Conventions: year 0 is the purchase, years 1..n are end-of-year cash flows, a
rate is per year. docs/cost.md writes every formula out.
"""

from __future__ import annotations

import math
from typing import Sequence

HOURS_PER_YEAR = 8760.0
DEPRECIATION_METHODS = ("straight-line", "declining-balance")


def crf(rate: float, years: float) -> float:
    """Capital recovery factor: the level yearly payment that repays 1 over `years` at `rate`.

    CRF(r, n) = r(1+r)^n / ((1+r)^n - 1); at r = 0 it is 1/n (straight line).
    """
    if years <= 0:
        raise ValueError("years must be > 0")
    if rate == 0:
        return 1.0 / years
    # (1+r)^n - 1 via expm1/log1p: exact enough for tiny rates, where the plain form divides by zero.
    growth_minus_1 = math.expm1(years * math.log1p(rate))
    return rate * (1.0 + growth_minus_1) / growth_minus_1


def discount(rate: float, years: float) -> float:
    """Present value of 1 received after `years`: 1/(1+r)^n."""
    return 1.0 / (1.0 + rate) ** years


def npv(rate: float, flows: Sequence[float]) -> float:
    """Net present value of flows[0] now, flows[1] after one year, ... at `rate`."""
    return sum(f * discount(rate, y) for y, f in enumerate(flows))


def irr(flows: Sequence[float], lo: float = -0.99, hi: float = 10.0, tol: float = 1e-12) -> float | None:
    """Internal rate of return by bisection on NPV; None when NPV has no sign change in (lo, hi).

    An investment profile (money out first, then in) has one root, which is the one found. Bisection
    rather than Newton: it cannot diverge, and 100 halvings of (−99 %, 1000 %) reach 1e-12.
    """
    f_lo, f_hi = _npv_or_inf(lo, flows), _npv_or_inf(hi, flows)
    if f_lo == 0:
        return lo
    if f_lo * f_hi > 0:
        return None
    for _ in range(200):
        mid = (lo + hi) / 2
        f_mid = _npv_or_inf(mid, flows)
        if f_mid == 0 or hi - lo < tol:
            return mid
        if (f_mid > 0) == (f_lo > 0):
            lo, f_lo = mid, f_mid
        else:
            hi = mid
    return (lo + hi) / 2


def _npv_or_inf(rate: float, flows: Sequence[float]) -> float:
    """NPV, or the infinity the latest flow drives it to where (1+r)^t over- or underflows."""
    try:
        return npv(rate, flows)
    except (OverflowError, ZeroDivisionError):
        last = next((f for f in reversed(flows) if f), 0.0)
        return math.copysign(math.inf, last if rate < 0 else flows[0])


def payback(flows: Sequence[float]) -> float | None:
    """Years until the cumulative flows turn non-negative, interpolated within the year; None if never.

    flows[0] is the (negative) outlay at year 0; a year's flow is taken as spread evenly over it.
    """
    cum = flows[0]
    if cum >= 0:
        return 0.0
    for y in range(1, len(flows)):
        f = flows[y]
        if cum + f >= 0 and f > 0:
            return (y - 1) + (-cum) / f
        cum += f
    return None


def discounted_payback(rate: float, flows: Sequence[float]) -> float | None:
    """Payback on the discounted flows."""
    return payback([f * discount(rate, y) for y, f in enumerate(flows)])


def depreciation(cost: float, salvage: float, years: int, method: str = "straight-line",
                 factor: float = 2.0) -> list[float]:
    """Depreciation charge for years 1..n; the book value ends at `salvage` in both methods.

    straight-line: (cost - salvage)/n each year.
    declining-balance: rate = factor/n on the opening book value, switching to straight line over the
    remaining years when that is larger (the usual DDB-with-switch), never below salvage.
    """
    if years < 1 or years != int(years):
        raise ValueError("depreciation life must be a whole number of years >= 1")
    n = int(years)
    if method == "straight-line":
        return [(cost - salvage) / n] * n
    if method != "declining-balance":
        raise ValueError(f"unknown depreciation method {method!r}")
    rate = factor / n
    out, book = [], cost
    for y in range(1, n + 1):
        remaining = book - salvage
        d = max(0.0, min(max(rate * book, remaining / (n - y + 1)), remaining))   # no negative rounding dust
        out.append(d)
        book -= d
    return out


def growth(rate: float, year: int) -> float:
    """Escalation factor of year y (1-based) for an annual change `rate`: (1+rate)^(y-1)."""
    return (1.0 + rate) ** (year - 1)
