"""Excel functions pycel lacks, for recomputing the cost workbook (loaded with ExcelCompiler(plugins=...)).

IRR is written here, independently of clusterkit/cost/finance.py: plain bisection of the NPV polynomial.
"""

from __future__ import annotations


def irr(values, guess=None):
    flows = [float(v) for row in values for v in (row if isinstance(row, (list, tuple)) else [row])]

    def npv(r: float) -> float:
        return sum(c / (1 + r) ** t for t, c in enumerate(flows))

    lo, hi = -0.9, 5.0
    if (npv(lo) > 0) == (npv(hi) > 0):
        return "#NUM!"
    for _ in range(300):
        mid = (lo + hi) / 2
        if (npv(mid) > 0) == (npv(lo) > 0):
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
