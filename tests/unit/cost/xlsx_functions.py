"""An IRR written here, independently of clusterkit/cost/finance.py (plain bisection of the NPV polynomial):
the finance tests check clusterkit's against it, and it is the IRR() pycel lacks for recomputing the cost
workbook (loaded with ExcelCompiler(plugins=["xlsx_functions"]))."""

from __future__ import annotations

LO, HI = -0.9, 5.0


def bisect_irr(flows: list[float]) -> float | None:
    def npv(r: float) -> float:
        return sum(c / (1 + r) ** t for t, c in enumerate(flows))

    lo, hi = LO, HI
    if (npv(lo) > 0) == (npv(hi) > 0):
        return None
    for _ in range(300):
        mid = (lo + hi) / 2
        if (npv(mid) > 0) == (npv(lo) > 0):
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def irr(values, guess=None):
    flows = [float(v) for row in values for v in (row if isinstance(row, (list, tuple)) else [row])]
    got = bisect_irr(flows)
    return "#NUM!" if got is None else got
