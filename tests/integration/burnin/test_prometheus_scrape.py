"""The real Prometheus scrapes the exporter; results are queried through its HTTP API."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterkit.history import History
from tests.burnin_helpers import FLAP, ROW_REMAP, node, run

pytestmark = pytest.mark.integration
ALERTS = Path(__file__).resolve().parents[3] / "prometheus" / "alerts.yml"


def test_prometheus_scrapes_exporter_and_fires_alerts(tmp_path, start_exporter, start_prometheus):
    db = tmp_path / "history.db"
    with History(db) as h:
        h.record_run(run([node("gpu01", busbw=231.0), node("gpu02", busbw=175.5, fail=[ROW_REMAP, FLAP])]),
                     kind="burnin")
    exp = start_exporter(db)
    prom = start_prometheus([exp.target], rules=ALERTS)

    up = prom.query_until('up{job="clusterkit"} == 1')
    assert up[0]["metric"]["instance"] == exp.target
    # the check's GB/s as the base unit, bytes per second
    bw = prom.query_until('clusterkit_nccl_busbw_large_bytes_per_second{check="nccl.allreduce"}', lambda r: len(r) == 2)
    assert {r["metric"]["host"]: float(r["value"][1]) for r in bw} == {"gpu01": 231e9, "gpu02": 175.5e9}
    failed = prom.query_until('clusterkit_check_status{status="fail"} == 1')
    assert {(r["metric"]["host"], r["metric"]["check"]) for r in failed} == {("gpu02", "gpu.health")}
    ok = prom.query_until("min(clusterkit_scrape_collector_success)")
    assert float(ok[0]["value"][1]) == 1.0

    # The rules loaded by the real server evaluate against the scraped series.
    firing = prom.query_until('ALERTS{alertstate="firing"}',
                              lambda r: {"ClusterkitCheckFailed", "ClusterkitGpuRowRemapPending",
                                         "ClusterkitLinkFlapping"} <= {x["metric"]["alertname"] for x in r})
    names = {(x["metric"]["alertname"], x["metric"].get("host")) for x in firing}
    assert ("ClusterkitGpuRowRemapPending", "gpu02") in names
    assert not any(h == "gpu01" for _, h in names)

    # A newer passing result reaches Prometheus on the next scrape: collected at scrape time.
    with History(db) as h:
        h.record_run(run([node("gpu02", busbw=229.0)]), kind="burnin")
    prom.query_until('clusterkit_nccl_busbw_large_bytes_per_second{host="gpu02"}',
                     lambda r: r and float(r[0]["value"][1]) == 229e9)
    prom.query_until('clusterkit_check_status{status="fail"} == 1', lambda r: r == [])
