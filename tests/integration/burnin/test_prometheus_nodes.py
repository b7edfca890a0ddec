"""The real Prometheus sees nodes that are not current: unreachable, cut short, never seen."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterkit.history import History
from clusterkit.results import NodeResult
from tests.burnin_helpers import node, run

pytestmark = pytest.mark.integration
ALERTS = Path(__file__).resolve().parents[3] / "prometheus" / "alerts.yml"


def test_unreachable_and_cut_short_nodes_are_series_and_alerts(tmp_path, start_exporter, start_prometheus):
    db = tmp_path / "history.db"
    with History(db) as h:
        h.record_run(run([node("gpu01"), node("gpu02"), node("gpu03")]), kind="verify")
        cut = node("gpu03")
        cut.outcome = "timeout"
        h.record_run(run([node("gpu01"), NodeResult("gpu02", "unreachable", message="no route to host"), cut]),
                     kind="verify")
    inv = tmp_path / "hosts.ini"
    inv.write_text("[gpu]\ngpu01 ansible_host=10.0.0.1\ngpu04 ansible_host=10.0.0.4\n")
    exp = start_exporter(db, "--inventory", str(inv))
    prom = start_prometheus([exp.target], rules=ALERTS)

    down = prom.query_until("clusterkit_node_up == 0", lambda r: len(r) == 2)
    assert {r["metric"]["host"] for r in down} == {"gpu02", "gpu04"}         # gpu04: never seen, still a series
    stale = prom.query_until('clusterkit_node_status{status="stale"} == 1')
    assert [r["metric"]["host"] for r in stale] == ["gpu02"]                 # its old "pass" is not current
    firing = prom.query_until('ALERTS{alertstate="firing"}',
                              lambda r: {"ClusterkitNodeUnreachable", "ClusterkitNodeCutShort"}
                              <= {x["metric"]["alertname"] for x in r})
    names = {(x["metric"]["alertname"], x["metric"]["host"]) for x in firing}
    assert ("ClusterkitNodeUnreachable", "gpu02") in names and ("ClusterkitNodeCutShort", "gpu03") in names
    assert not any(h == "gpu01" for _, h in names)
