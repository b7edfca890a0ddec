"""promtool checks the alert rules and runs their unit tests; every alert has a firing test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration
PROM = Path(__file__).resolve().parents[3] / "prometheus"
TESTS = ("alerts_test.yml", "alerts_stale_test.yml", "alerts_nodes_test.yml")


def promtool() -> str:
    p = shutil.which("promtool")
    if not p:
        pytest.skip("promtool not installed (Debian package prometheus; scripts/apt-packages.d/burnin.txt)")
    return p


def test_promtool_check_rules():
    r = subprocess.run([promtool(), "check", "rules", str(PROM / "alerts.yml")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_promtool_test_rules():
    r = subprocess.run([promtool(), "test", "rules", *TESTS], cwd=PROM, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_alert_has_a_test_where_it_fires_and_one_where_it_does_not():
    alerts = {r["alert"] for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"] for r in g["rules"]}
    tests = [t for f in TESTS for t in yaml.safe_load((PROM / f).read_text())["tests"]]
    fires = {a["alertname"] for t in tests for a in t.get("alert_rule_test", []) if a.get("exp_alerts")}
    assert alerts == fires
    quiet = {a["alertname"] for t in tests for a in t.get("alert_rule_test", []) if not a.get("exp_alerts")}
    # alerts whose negative case is covered by other series in a firing test (wrong code/host/status)
    covered_by_filtering = {"ClusterkitCheckFailed", "ClusterkitLinkFlapping", "ClusterkitBandwidthRegression",
                            "ClusterkitFleetRegression"}
    assert {"ClusterkitNodeUnreachable", "ClusterkitNodeNeverSeen", "ClusterkitNodeCutShort",
            "ClusterkitNodeResultStale"} <= quiet
    assert alerts - quiet <= covered_by_filtering
