"""Trend check over history: a metric sliding against the node's own recent past and the fleet.

This is not a bundle check (a bundle has no past): the burn-in runner reads the
history and calls `evaluate_trends`, and the results are stored with the run
they evaluate. The watched metrics and how far each may regress are profile
data in `[burnin]`, declared here so a typo there is a config error.

Method: a Theil-Sen line (median of pairwise slopes, robust to a single bad
night) through the node's samples in the window gives the slide from the
window's start to now. A node is flagged only when it slid more than allowed
AND sits below the fleet's current median by the fleet margin; a slide the
whole fleet shares (a driver or firmware change) is one cluster finding, not
a page per node.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from clusterkit.checks.registry import declare_profile_keys
from clusterkit.profiles import Profile
from clusterkit.results import CheckResult, Finding

CHECK_ID = "burnin.trend"

declare_profile_keys({
    "burnin.trend_window_days": float,
    "burnin.trend_min_samples": int,
    "burnin.trend_fleet_margin_percent": float,
    "burnin.trend_min_fleet_nodes": int,
    # metric name -> allowed regression in percent of the window's starting value
    "burnin.trend_higher_is_better_max_drop_percent": dict,
    "burnin.trend_lower_is_better_max_rise_percent": dict,
    # metrics spanning orders of magnitude (error rates): the line is fitted to log10 of the values
    "burnin.trend_log_scale_metrics": list,
})


@dataclass(frozen=True)
class Watch:
    metric: str
    higher_is_better: bool
    max_regression_percent: float
    log_scale: bool = False


@dataclass(frozen=True)
class Sample:
    host: str
    check_id: str
    metric: str
    t_days: float     # time of the sample in days (any epoch; only differences matter)
    value: float


def watches(profile: Profile) -> list[Watch]:
    log = set(profile.get("burnin.trend_log_scale_metrics") or [])
    out = [Watch(m, True, float(p), m in log) for m, p in
           (profile.get("burnin.trend_higher_is_better_max_drop_percent") or {}).items()]
    out += [Watch(m, False, float(p), m in log) for m, p in
            (profile.get("burnin.trend_lower_is_better_max_rise_percent") or {}).items()]
    return out


def theil_sen(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(slope, intercept) of the Theil-Sen line; needs two distinct x values."""
    slopes = [(y2 - y1) / (x2 - x1) for i, (x1, y1) in enumerate(points)
              for (x2, y2) in points[i + 1:] if x2 != x1]
    if not slopes:
        raise ValueError("need two samples at different times")
    m = statistics.median(slopes)
    b = statistics.median(y - m * x for x, y in points)
    return m, b


@dataclass
class _Trend:
    host: str
    check_id: str
    start: float
    now: float
    span_days: float
    n: int

    def regression_percent(self, w: Watch) -> float:
        """How much worse `now` is than `start`, in percent of start (negative: better)."""
        change = (self.now - self.start) / abs(self.start) * 100.0
        return -change if w.higher_is_better else change


def _trend(samples: list[Sample], log_scale: bool = False) -> _Trend | None:
    pts = sorted((s.t_days, s.value) for s in samples)
    if len({x for x, _ in pts}) < 2:
        return None
    if log_scale:
        if any(v <= 0 for _, v in pts):
            pts = [(x, max(v, 1e-300)) for x, v in pts]  # a zero error rate: as good as it gets
        pts = [(x, math.log10(v)) for x, v in pts]
    m, b = theil_sen(pts)
    t0, t1 = pts[0][0], pts[-1][0]
    start, now = m * t0 + b, m * t1 + b
    if log_scale:
        start, now = 10 ** start, 10 ** now
    if start == 0:
        return None
    return _Trend(samples[0].host, samples[0].check_id, start, now, t1 - t0, len(pts))


def evaluate_trends(samples: list[Sample], current: dict[tuple[str, str, str], float],
                    profile: Profile) -> list[CheckResult]:
    """Trend results for the hosts of the run being evaluated.

    `samples`: history of the watched metrics inside the window (one per run), the current run included.
    `current`: (host, check_id, metric) -> the value in the run being evaluated.
    Returns one `burnin.trend` result per host that has a watched metric, plus
    one cluster result if the whole fleet regressed.
    """
    min_n = int(profile.get("burnin.trend_min_samples", 4))
    margin = float(profile.get("burnin.trend_fleet_margin_percent", 3.0))
    min_fleet = int(profile.get("burnin.trend_min_fleet_nodes", 3))
    window = float(profile.get("burnin.trend_window_days", 7.0))
    per_host: dict[str, tuple[list[Finding], dict[str, Any], list[str]]] = {}
    fleet_findings: list[Finding] = []
    for w in watches(profile):
        groups: dict[tuple[str, str], list[Sample]] = {}
        for s in samples:
            if s.metric != w.metric:
                continue
            groups.setdefault((s.host, s.check_id), []).append(s)
        cur = {(h, c): v for (h, c, m), v in current.items() if m == w.metric}
        for check_id in sorted({c for _, c in cur}):
            fleet_values = [v for (h, c), v in cur.items() if c == check_id]
            fleet_median = statistics.median(fleet_values) if len(fleet_values) >= min_fleet else None
            trends: dict[str, _Trend] = {}
            for (host, c), _v in sorted(cur.items()):
                if c != check_id:
                    continue
                findings, metrics, notes = per_host.setdefault(host, ([], {}, []))
                series = groups.get((host, c), [])
                t = _trend(series, w.log_scale) if len(series) >= min_n else None
                if t is None:
                    notes.append(f"{w.metric}: {len(series)} sample(s), need {min_n}")
                    continue
                trends[host] = t
                reg = t.regression_percent(w)
                metrics[f"{w.metric}_regression_percent"] = round(reg, 3)
                if reg < w.max_regression_percent:
                    notes.append(f"{w.metric} {_fmt_change(reg)} over {t.span_days:.1f} d")
                    continue
                behind = None
                if fleet_median not in (None, 0):
                    behind = ((fleet_median - t.now) if w.higher_is_better else (t.now - fleet_median)) \
                        / abs(fleet_median) * 100.0
                    if behind < margin:
                        notes.append(f"{w.metric} regressed {reg:.1f}% but is within {margin:g}% of the fleet")
                        continue
                fleet_txt = (f"; {behind:.1f}% {'below' if w.higher_is_better else 'above'} the fleet median "
                             f"{fleet_median:.4g}" if behind is not None else
                             f"; fleet comparison needs {min_fleet} nodes")
                findings.append(Finding(
                    "TREND_REGRESSION", "warn", f"{w.metric} ({check_id})",
                    f"{w.metric} on {host} regressed {reg:.1f}% over {t.span_days:.1f} days "
                    f"({t.start:.4g} -> {t.now:.4g}, {t.n} samples){fleet_txt}",
                    observed={"regression_percent": round(reg, 2), "baseline": t.start, "now": t.now,
                              "span_days": round(t.span_days, 2), "samples": t.n,
                              "fleet_median": fleet_median},
                    limit={"max_regression_percent": w.max_regression_percent,
                           "fleet_margin_percent": margin, "window_days": window},
                    unit="percent",
                    action=(f"look for a part degrading on {host} before {w.metric} crosses its absolute limit: "
                            f"`clusterkit history --host {host} --check {check_id}` shows the slide; check the "
                            "fabric/GPU findings of the same nights (link errors, throttling, PCIe width), "
                            "and drain the node if the slide continues"),
                ))
            regs = [t.regression_percent(w) for t in trends.values()]
            if len(regs) >= min_fleet and statistics.median(regs) >= w.max_regression_percent:
                med = statistics.median(regs)
                fleet_findings.append(Finding(
                    "TREND_FLEET_REGRESSION", "warn", f"{w.metric} ({check_id}) on {len(regs)} nodes",
                    f"{w.metric} regressed on the whole fleet: median {med:.1f}% over the window",
                    observed={"median_regression_percent": round(med, 2), "nodes": len(regs)},
                    limit={"max_regression_percent": w.max_regression_percent}, unit="percent",
                    action=("a fleet-wide slide points at a shared cause: compare driver, firmware, NCCL and "
                            "fabric configuration changes made during the window"),
                ))
    out: list[CheckResult] = []
    for host, (findings, metrics, notes) in sorted(per_host.items()):
        ok = "no regression: " + "; ".join(notes) if notes else "no regression"
        r = CheckResult.from_findings(CHECK_ID, findings, ok, metrics)
        r.host = host
        out.append(r)
    if fleet_findings:
        out.append(CheckResult.from_findings(CHECK_ID, fleet_findings, "no fleet-wide regression"))
    return out


def _fmt_change(reg: float) -> str:
    return f"regressed {reg:.1f}%" if reg > 0 else f"improved {-reg:.1f}%"
