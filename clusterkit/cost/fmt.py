"""Human number formats shared by every renderer: CNY 1.6 M, 59.5 %, 3.4 years, never."""

from __future__ import annotations

import math

from clusterkit.cost.config import Input, input_kind

PERCENT_KINDS = ("frac", "util", "change", "tax")


def money(x: float | None, cur: str) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    a = abs(x)
    if a >= 1e9:
        return f"{cur} {x / 1e9:.3g} B"
    if a >= 1e6:
        return f"{cur} {x / 1e6:.3g} M"
    if a >= 1e4:
        return f"{cur} {x:,.0f}"
    return f"{cur} {x:,.2f}"


def pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.1%}"


def years(x: float | None) -> str:
    return "never" if x is None else f"{x:.1f} years"


def break_even(x: float | None) -> str:
    """An effective or scheduler utilization that owning needs; above 100 % it never gets there."""
    if x is None:
        return "n/a (reserved)"
    if x > 1:
        return "never"
    if x <= 0:
        return "any"
    return pct(x)


def number(x: float) -> str:
    if x == int(x) and abs(x) < 1e15:
        return f"{x:,.0f}"
    return f"{x:,.4g}"


def value_of(key: str, x: float, cur: str) -> str:
    """An input value in its own terms: a share as a percentage, money with its currency."""
    kind = input_kind(key)
    if kind in PERCENT_KINDS or key.endswith(("availability", ".trajectory")):
        return pct(x)
    if kind == "money" or key.startswith("rental.") and not key.endswith("availability"):
        return money(x, cur)
    if key.startswith("fx."):
        return f"x{x:.2f}"
    return number(x)


def input_value(i: Input, cur: str) -> str:
    unit = i.unit.replace(f"{cur} ", "")
    kind = input_kind(i.key)
    if kind in PERCENT_KINDS:
        return f"{pct(i.value)} {unit}".strip()
    if kind == "money" or i.unit.startswith(f"{cur} "):
        return f"{money(i.value, cur)} {unit}".strip()
    return f"{number(i.value)} {unit}".strip()
