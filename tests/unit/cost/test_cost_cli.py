"""`clusterkit cost report` as a user runs it (a real subprocess of this checkout)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from history_db import make_history


def ck(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "clusterkit", "cost", "report", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_no_config_runs_the_example_and_says_so():
    p = ck()
    assert p.returncode == 0, p.stderr
    assert "built-in example" in p.stderr
    assert "built-in EXAMPLE" in p.stdout
    assert "Break-even effective utilization" in p.stdout
    assert "Measured inputs: none" in p.stdout
    assert "days old" in p.stdout          # the example's prices are old and the report says so


def test_json_and_csv_agree(tmp_path):
    j = json.loads(ck("--format", "json").stdout)
    assert j["example"] is True and j["measured_inputs"] == []
    res = j["result"]
    assert res["cost_per_useful_gpu_hour"] == pytest.approx(res["total_per_year"] /
                                                            res["useful_gpu_hours_per_year"])
    out = tmp_path / "r.csv"
    assert ck("--format", "csv", "--output", str(out)).returncode == 0
    rows = {(r["section"], r["name"]): r for r in csv.DictReader(io.StringIO(out.read_text()))}
    assert float(rows[("result", "cost_per_useful_gpu_hour")]["value"]) == pytest.approx(
        res["cost_per_useful_gpu_hour"])
    assert rows[("input", "capex.server_price")]["date"] == "2023-07-01"
    assert {r["name"].rsplit(".", 1)[0] for (s, _), r in rows.items() if s == "tornado"} >= {
        "utilization.scheduler", "finance.life_years", "capex.server_price", "power.price_per_kwh",
        "finance.cost_of_capital", "rental.reference"}


def test_markdown_has_the_tables():
    md = ck("--format", "md").stdout
    for title in ("## Cost of owning", "## Rental options", "## Sensitivity", "## Scenarios", "## Inputs"):
        assert title in md
    assert "| lambda-h100-on-demand | on-demand |" in md


def test_bad_config_exit_2_one_line(tmp_path, small_toml):
    cfg = tmp_path / "cost.toml"
    cfg.write_text(small_toml.replace("scheduler = 0.5", "scheduler = 1.5"))
    p = ck("--config", str(cfg))
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "utilization.scheduler" in lines[0] and "at most 1" in lines[0]
    assert "Traceback" not in p.stderr


def test_from_history_marks_measured_inputs(tmp_path, small_toml):
    cfg = tmp_path / "cost.toml"
    cfg.write_text(small_toml)
    db = make_history(tmp_path / "h.db", [{"nodes": {"a": ("ok", "pass"), "b": ("ok", "fail")},
                                           "power": {"a": [3000], "b": [5000]}}])
    p = ck("--config", str(cfg), "--from-history", str(db), "--format", "json")
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    assert sorted(j["measured_inputs"]) == ["power.gpu_power_w", "utilization.availability"]
    inputs = {i["key"]: i for i in j["inputs"]}
    assert inputs["power.gpu_power_w"]["value"] == 4000 and inputs["power.gpu_power_w"]["basis"] == "measured"
    assert inputs["power.non_gpu_overhead_w"]["basis"] == "assumed"     # overhead is never measured
    # 2 nodes x (4000 + 0 W) x 1.5 PUE x 8760 h x 1.0
    assert j["result"]["power"] == pytest.approx(2 * 4.0 * 1.5 * 8760)
    assert j["result"]["effective_utilization"] == pytest.approx(0.5 * 0.5)
    table = ck("--config", str(cfg), "--from-history", str(db)).stdout
    assert "Measured inputs: power.gpu_power_w, utilization.availability" in table
    assert "MEASURED" in table


def test_xlsx_needs_output():
    p = ck("--format", "xlsx")
    assert p.returncode == 2 and "--output" in p.stderr


def test_xlsx_written_by_the_cli(tmp_path):
    from openpyxl import load_workbook

    out = tmp_path / "cost.xlsx"
    p = ck("--format", "xlsx", "--output", str(out))
    assert p.returncode == 0, p.stderr
    wb = load_workbook(out)
    assert wb.sheetnames == ["Summary", "Inputs", "Rentals", "Model", "Tornado", "Scenarios"]
    assert str(wb["Summary"]["B3"].value).startswith("=Model!B")      # a live formula, not a number
