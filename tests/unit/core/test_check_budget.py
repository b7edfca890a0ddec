"""Each check runs under a time budget: past it, that check reports `error: took longer than N s`
(CHECK_TIMEOUT) and the others run on, in the main process and in the analysis workers."""

from __future__ import annotations

import time

import pytest

from clusterkit import analysis
from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.checks.registry import CHECKS, CheckSpec
from clusterkit.evidence.bundle import Bundle
from clusterkit.suites import Suite
from tests.support.slow_checks import SLOW_HOST, hangs_in_a_regex, swallows_exceptions

KLOG = "[    1.000000] Linux version 6.1.0\n"


@pytest.fixture
def slow_suite(monkeypatch):
    monkeypatch.setenv(analysis.BUDGET_ENV, "0.5")
    for cid, func in (("test.regex", hangs_in_a_regex), ("test.loop", swallows_exceptions)):
        monkeypatch.setitem(CHECKS, cid, CheckSpec(cid, func, "node", (), {}, "test"))
    return Suite("budget", ["test.regex", "test.loop", "host.kernel_log"])


def _nodes(n: int) -> list[Bundle]:
    names = [f"node-{i:02d}" for i in range(n - 1)] + [SLOW_HOST]
    return [Bundle.virtual(h, {"host/dmesg.txt": KLOG}) for h in names]


def _check(run, host, cid):
    node = next(n for n in run.nodes if n.host == host)
    return next(c for c in node.checks if c.id == cid)


def test_a_check_past_its_budget_is_an_error_and_the_rest_run(slow_suite):
    t0 = time.monotonic()
    run = analyze_bundles(_nodes(3), slow_suite, profiles=ProfileResolver())
    assert time.monotonic() - t0 < 30   # two budgets, not forever
    for cid in ("test.regex", "test.loop"):
        c = _check(run, SLOW_HOST, cid)
        assert c.status == "error" and c.summary.startswith("took longer than 0.5 s"), c
        assert c.findings[0].code == "CHECK_TIMEOUT"
        assert _check(run, "node-00", cid).status == "pass"
    assert _check(run, SLOW_HOST, "host.kernel_log").status == "pass"


def test_the_budget_holds_in_the_analysis_workers(slow_suite, monkeypatch, caplog):
    monkeypatch.setenv("CLUSTERKIT_ANALYSIS_WORKERS", "2")
    caplog.set_level("WARNING", logger="clusterkit.workers")
    bundles = _nodes(analysis.PARALLEL_MIN_NODES)
    delivered: list[str] = []
    run = analyze_bundles(bundles, slow_suite, profiles=ProfileResolver(), on_node=lambda n: delivered.append(n.host))
    c = _check(run, SLOW_HOST, "test.regex")
    assert c.status == "error" and c.findings[0].code == "CHECK_TIMEOUT"
    assert sorted(delivered) == sorted(b.host for b in bundles)   # every node reported once, as it finished
    assert not caplog.records, [r.getMessage() for r in caplog.records]  # all from the workers, none redone here


def test_a_nonsense_budget_falls_back_to_the_default(monkeypatch):
    for v in ("nan", "-1", "0", "inf", "x"):
        monkeypatch.setenv(analysis.BUDGET_ENV, v)
        assert analysis.check_budget_s() == analysis.CHECK_BUDGET_S
