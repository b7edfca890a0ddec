"""TREND_REGRESSION: a node sliding against its own past and the fleet; robust to one bad night."""

from __future__ import annotations

import random

import pytest

import clusterkit.checks.burnin  # noqa: F401  (declares the [burnin] profile keys)
from clusterkit.checks.burnin import Sample, evaluate_trends, theil_sen
from clusterkit.profiles import Profile


def profile(**over) -> Profile:
    v = {
        "burnin.trend_window_days": 7.0,
        "burnin.trend_min_samples": 4,
        "burnin.trend_fleet_margin_percent": 3.0,
        "burnin.trend_min_fleet_nodes": 3,
        "burnin.trend_higher_is_better_max_drop_percent": {"busbw_large_gbps": 5.0},
        "burnin.trend_lower_is_better_max_rise_percent": {"effective_ber_max": 900.0},
        "burnin.trend_log_scale_metrics": ["effective_ber_max"],
    }
    v.update({f"burnin.{k}": x for k, x in over.items()})
    return Profile("t", v)


def nightly(hosts: dict[str, callable], metric="busbw_large_gbps", nights=8, check="nccl.allreduce", seed=1):
    """samples for day 0..nights-1; hosts: host -> f(day) value; +-0.4% noise."""
    rng = random.Random(seed)
    samples, current = [], {}
    for h, f in hosts.items():
        for d in range(nights):
            v = f(d) * (1 + rng.uniform(-0.004, 0.004))
            samples.append(Sample(h, check, metric, float(d), v))
        current[(h, check, metric)] = v
    return samples, current


def findings(results, code="TREND_REGRESSION"):
    return {(r.host, f.code): f for r in results for f in r.findings if f.code == code}


def test_theil_sen_ignores_one_outlier():
    pts = [(float(x), 10.0 + 2 * x) for x in range(8)]
    pts[3] = (3.0, 500.0)
    m, b = theil_sen(pts)
    assert m == pytest.approx(2.0) and b == pytest.approx(10.0)


def test_node_sliding_8_percent_over_a_week_is_flagged_alone():
    hosts = {f"gpu0{i}": (lambda d: 230.0) for i in range(1, 6)}
    hosts["gpu03"] = lambda d: 230.0 * (1 - 0.08 * d / 7)
    res = evaluate_trends(*nightly(hosts), profile())
    got = findings(res)
    assert list(got) == [("gpu03", "TREND_REGRESSION")]
    f = got[("gpu03", "TREND_REGRESSION")]
    assert f.observed["regression_percent"] == pytest.approx(8.0, abs=0.7)
    assert f.observed["fleet_median"] == pytest.approx(230.0, rel=0.01)
    assert f.severity == "warn" and "busbw_large_gbps" in f.component and "gpu03" in f.action
    assert {r.host: r.status for r in res} == {"gpu01": "pass", "gpu02": "pass", "gpu03": "warn",
                                                "gpu04": "pass", "gpu05": "pass"}
    r3 = next(r for r in res if r.host == "gpu03")
    assert r3.metrics["busbw_large_gbps_regression_percent"] == pytest.approx(8.0, abs=0.7)


def test_one_bad_night_is_not_a_trend():
    hosts = {f"gpu0{i}": (lambda d: 230.0) for i in range(1, 6)}
    hosts["gpu02"] = lambda d: 200.0 if d == 7 else 230.0   # tonight only: the absolute checks judge it
    assert findings(evaluate_trends(*nightly(hosts), profile())) == {}


def test_slide_within_the_allowed_percent_is_not_flagged():
    hosts = {f"gpu0{i}": (lambda d: 230.0) for i in range(1, 6)}
    hosts["gpu04"] = lambda d: 230.0 * (1 - 0.03 * d / 7)
    assert findings(evaluate_trends(*nightly(hosts), profile())) == {}


def test_node_that_slid_but_is_still_at_the_fleet_median_is_not_flagged():
    hosts = {f"gpu0{i}": (lambda d: 230.0) for i in range(1, 6)}
    hosts["gpu05"] = lambda d: 250.0 * (1 - 0.08 * d / 7)  # started high, now ~230: as good as the fleet
    res = evaluate_trends(*nightly(hosts), profile())
    assert findings(res) == {}
    assert "within 3% of the fleet" in next(r for r in res if r.host == "gpu05").summary


def test_fleet_wide_slide_is_one_cluster_finding_not_a_page_per_node():
    hosts = {f"gpu0{i}": (lambda d: 230.0 * (1 - 0.08 * d / 7)) for i in range(1, 7)}
    res = evaluate_trends(*nightly(hosts), profile())
    assert findings(res) == {}
    fleet = findings(res, "TREND_FLEET_REGRESSION")
    assert list(fleet) == [(None, "TREND_FLEET_REGRESSION")]
    assert fleet[(None, "TREND_FLEET_REGRESSION")].observed["nodes"] == 6


def test_lower_is_better_metric_rising_is_flagged():
    hosts = {f"gpu0{i}": (lambda d: 1e-14) for i in range(1, 5)}
    hosts["gpu02"] = lambda d: 1e-14 * (10 ** (d / 3.5))   # 100x over the week
    res = evaluate_trends(*nightly(hosts, metric="effective_ber_max", check="fabric.ber"), profile())
    assert list(findings(res)) == [("gpu02", "TREND_REGRESSION")]


def test_too_few_samples_says_so_and_passes():
    hosts = {f"gpu0{i}": (lambda d: 230.0 * (1 - 0.2 * d)) for i in range(1, 4)}
    res = evaluate_trends(*nightly(hosts, nights=3), profile())
    assert findings(res) == {}
    assert all(r.status == "pass" and "3 sample(s), need 4" in r.summary for r in res if r.host)


def test_small_fleet_flags_on_own_baseline_and_says_fleet_is_missing():
    hosts = {"a": lambda d: 230.0, "b": lambda d: 230.0 * (1 - 0.1 * d / 7)}
    f = findings(evaluate_trends(*nightly(hosts), profile()))[("b", "TREND_REGRESSION")]
    assert "fleet comparison needs 3 nodes" in f.message and f.observed["fleet_median"] is None


def test_unwatched_metrics_are_ignored():
    hosts = {f"gpu0{i}": (lambda d: 230.0 * (1 - 0.2 * d)) for i in range(1, 5)}
    assert evaluate_trends(*nightly(hosts, metric="something_else"), profile()) == []


from hypothesis import given, settings, strategies as st  # noqa: E402

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.floats(0, 30), finite,
                               st.sampled_from(["busbw_large_gbps", "effective_ber_max"])), max_size=40))
def test_any_history_gives_results_never_a_traceback(rows):
    samples = [Sample(h, "x.y", m, t, v) for h, t, v, m in rows]
    current = {(s.host, "x.y", s.metric): s.value for s in samples}
    for r in evaluate_trends(samples, current, profile()):
        assert r.status in ("pass", "warn")
        for f in r.findings:
            nums = [v for v in f.observed.values() if isinstance(v, float)]
            assert all(v == v for v in nums)  # no NaN reaches a finding
