"""Textbook finance formulas used by the model (pure functions, no I/O)."""

from __future__ import annotations

import math

HOURS_PER_YEAR = 8760.0


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


def annuity_factor(rate: float, years: float) -> float:
    """Present value of 1 paid at the end of each year for `years` years (= 1/CRF)."""
    return 1.0 / crf(rate, years)


def annualised_capital(capex: float, residual: float, rate: float, years: float) -> float:
    """Level yearly charge that recovers `capex` less the discounted `residual` value."""
    return (capex - residual * discount(rate, years)) * crf(rate, years)


def simple_payback(capex: float, yearly_saving: float) -> float | None:
    """Years until undiscounted savings repay the capex; None when they never do."""
    if yearly_saving <= 0:
        return None
    return capex / yearly_saving
