"""`promtool check metrics` on what a real exporter serves for a history holding every kind of result: the
full simulated suite, a burn-in trend, a node not reached, and a finding stored under an earlier code."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from clusterkit import prom_names
from clusterkit.exporter import FIXED_FAMILIES
from clusterkit.history import History
from clusterkit.pipeline import simulate_run
from clusterkit.results import CheckResult, Finding, NodeResult, RunResult

pytestmark = pytest.mark.integration
# unit spellings the conventions replace with base units, and type words
ABBREVIATED = {"ms", "s", "us", "ns", "sec", "gib", "gb", "gbps", "mb", "kb", "w", "c", "dbm", "hz", "pct",
               "percent", "total", "counter", "gauge", "h", "m", "d"}


def _history(db):
    with History(db) as h:
        h.record_run(simulate_run(nodes=8, seed=3, suite="full"))
        rid = h.start_run("burnin")
        h.record_check(rid, None, CheckResult("burnin.trend", "warn", "sliding", metrics={
            "busbw_large_gbps_regression_percent": 6.5, "effective_ber_max_regression_percent": -2.0}))
        old = Finding("IB_PORT_RATE_LOW", "fail", "mlx5_0 port 1", "at 200 Gb/s, declared 400")   # stored before the merge
        h.record_check(rid, "gpu99", CheckResult.from_findings("fabric.ports", [old], "ok"))
        h.record_node(rid, "gpu98", "unreachable", "error")
        h.finish_run(rid, "fail")


def test_promtool_accepts_the_exporters_output(tmp_path, start_exporter):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus; see scripts/apt-packages.d/burnin.txt)")
    db = tmp_path / "history.db"
    _history(db)
    text = start_exporter(db).scrape()
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == r.stderr == "", r.stdout + r.stderr

    families = set(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert {t for _, t in families} == {"gauge"}
    names = {n for n, _ in families}
    declared = {s.family for _, s in prom_names.declared_series()}
    assert names <= declared | set(FIXED_FAMILIES), names - declared - set(FIXED_FAMILIES)   # no generic family
    for n in names:
        words = n.split("_")[1:]
        assert not set(words) & ABBREVIATED, n
    assert "clusterkit_nccl_busbw_large_bytes_per_second{" in text
    assert 'clusterkit_trend_regression_ratio{host="_cluster",check="burnin.trend",metric="busbw_large_gbps"} 0.065' in text
    assert 'code="FABRIC_PORT_RATE_LOW"' in text and "IB_PORT_RATE_LOW" not in text
    assert 'clusterkit_node_up{host="gpu98"} 0' in text
