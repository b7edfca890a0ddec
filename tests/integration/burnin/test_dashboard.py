"""The Grafana dashboard: valid JSON, every query parses as PromQL (promtool) and uses exported names."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
DASH = ROOT / "dashboards" / "clusterkit-burnin.json"


def exprs() -> list[str]:
    d = json.loads(DASH.read_text())
    return [t["expr"] for p in d["panels"] for t in p["targets"]]


def test_dashboard_queries_are_valid_promql(tmp_path):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool not installed (Debian package prometheus)")
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:q{i}", "expr": e}
                                                        for i, e in enumerate(exprs())]}]}
    f = tmp_path / "dash_rules.yml"
    f.write_text(yaml.safe_dump(rules))
    r = subprocess.run([promtool, "check", "rules", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dashboard_uses_only_documented_metric_names():
    documented = set(re.findall(r"`(clusterkit_[a-z0-9_]+)", (ROOT / "docs" / "metrics.md").read_text()))
    used = {m for e in exprs() for m in re.findall(r"clusterkit_[a-z0-9_]+", e)}
    assert used and used <= documented, used - documented
