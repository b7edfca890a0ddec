"""`clusterkit cost report` and `clusterkit cost init` as a user runs them (real subprocesses of this checkout)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from history_db import make_history


def ck(*args, cwd=None, verb="report"):
    return subprocess.run([sys.executable, "-m", "clusterkit", "cost", verb, *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_no_config_runs_the_example_and_says_so():
    p = ck()
    assert p.returncode == 0, p.stderr
    assert "built-in example" in p.stderr and "clusterkit cost init" in p.stderr
    assert "built-in EXAMPLE" in p.stdout
    assert "NPV of owning instead of renting, after 25.0% tax" in p.stdout and "IRR" in p.stdout
    assert "Break-even against it: effective utilization" in p.stdout
    assert "Measured inputs: none" in p.stdout
    assert "HISTORICAL price dated 2024-08-22" in p.stdout       # the network price is old, and said so
    assert "e+0" not in p.stdout                                   # no 1.6e+06 anywhere: CNY 1.6 M


def test_json_and_csv_agree(tmp_path):
    j = json.loads(ck("--format", "json").stdout)
    assert j["example"] is True and j["measured_inputs"] == []
    res = j["result"]
    years = res["years"]
    assert len(years) == 6 and years[0]["capex"] == pytest.approx(res["capex"])
    assert res["npv_saving"] == pytest.approx(sum(y["net_cash_flow"] * y["discount_factor"] for y in years))
    out = tmp_path / "r.csv"
    assert ck("--format", "csv", "--output", str(out)).returncode == 0
    rows = {(r["section"], r["name"]): r for r in csv.DictReader(io.StringIO(out.read_text()))}
    for key in ("npv_saving", "irr", "cost_per_useful_gpu_hour", "discounted_payback_years"):
        assert float(rows[("result", key)]["value"]) == pytest.approx(res[key])
    assert float(rows[("cash_flow", "year3.net_cash_flow")]["value"]) == pytest.approx(years[3]["net_cash_flow"])
    assert rows[("input", "capex.server_price")]["date"] == "2026-03-31"
    swung = {r["name"].rsplit(".", 1)[0] for (s, _), r in rows.items() if s == "tornado"}
    assert {"utilization.scheduler", "rental.reference", "capex.server_price", "fx.USD", "colocation.per_kw_month",
            "utilization.availability", "power.pue", "operations.staff_cost_per_fte_year"} <= swung
    assert any(s == "two_way" for s, _ in rows)


def test_markdown_has_the_tables():
    md = ck("--format", "md").stdout
    for title in ("## Summary", "## Cash flow year by year", "## Rental options", "## Sensitivity",
                  "## NPV saving of owning: scheduler utilization", "## Scenarios", "## Inputs"):
        assert title in md
    assert "| lambda-h100-on-demand | on-demand |" in md
    assert "| H100 rental falls 30% a year |" in md
    assert "| Availability | 77.6% / 97.0% / 100.0% |" in md          # percentages as percentages


def test_break_even_above_100_percent_says_never(tmp_path, small_toml):
    cfg = tmp_path / "cost.toml"
    # at 1,000,000 a node owning 16 GPUs costs far more than renting them: break-even beyond 100 %
    cfg.write_text(small_toml.replace("server_price = 100000", "server_price = 1000000"))
    p = ck("--config", str(cfg))
    assert p.returncode == 0, p.stderr
    line = next(x for x in p.stdout.splitlines() if "Break-even against it" in x)
    assert "effective utilization never, scheduler utilization never" in line
    assert "%" not in line.split("at ")[0]                          # no "228.6 %" claim
    j = json.loads(ck("--config", str(cfg), "--format", "json").stdout)
    assert j["result"]["rentals"][0]["break_even_utilization"] > 1


def test_bad_config_exit_2_one_line(tmp_path, small_toml):
    cfg = tmp_path / "cost.toml"
    cfg.write_text(small_toml.replace("scheduler = 0.5", "scheduler = 1.5"))
    p = ck("--config", str(cfg))
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "utilization.scheduler" in lines[0] and "at most 1" in lines[0]
    assert "Traceback" not in p.stderr


def test_currency_reports_through_the_dated_fx_table():
    cny = json.loads(ck("--format", "json").stdout)
    usd = json.loads(ck("--format", "json", "--currency", "usd").stdout)
    rate = next(r for r in usd["fx_rates"] if r["currency"] == "USD")
    assert usd["currency"] == "USD" and rate["date"] == "2026-05-08" and "ecb.europa.eu" in rate["source"]
    assert usd["result"]["npv_saving"] == pytest.approx(cny["result"]["npv_saving"] / rate["per_unit"], rel=1e-12)
    assert usd["result"]["irr"] == pytest.approx(cny["result"]["irr"], rel=1e-12)
    storage = {i["key"]: i for i in usd["inputs"]}["capex.storage"]
    assert storage["orig_currency"] == "CNY" and "CNY 1,500,000" in storage["original"]
    p = ck("--currency", "XYZ")
    assert p.returncode == 2 and "--currency: unknown currency 'XYZ'" in p.stderr


def test_init_writes_a_commented_config_to_start_from(tmp_path):
    path = tmp_path / "site" / "cost.toml"
    p = ck(str(path), verb="init")
    assert p.returncode == 0, p.stderr
    text = path.read_text()
    assert text.count("#") > 40 and "[rental_side]" in text and "[[scenario]]" in text
    assert 'description = "My cluster' in text
    again = ck(str(path), verb="init")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert ck(str(path), "--force", verb="init").returncode == 0
    r = ck("-c", str(path), "--format", "json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["example"] is False and "built-in example" not in r.stderr


def test_from_history_marks_measured_inputs(tmp_path, small_toml):
    cfg = tmp_path / "cost.toml"
    cfg.write_text(small_toml)
    db = make_history(tmp_path / "h.db", [{"cycles": [{"h": 0, "nodes": {"a": "pass", "b": "pass"}},
                                                      {"h": 10, "nodes": {"a": "pass", "b": "fail"}},
                                                      {"h": 20, "nodes": {"a": "pass", "b": "pass"}}],
                                           "power": {"a": [3000] * 3, "b": [5000] * 3}}])
    p = ck("--config", str(cfg), "--from-history", str(db), "--format", "json")
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    assert sorted(j["measured_inputs"]) == ["power.gpu_power_w", "utilization.availability"]
    inputs = {i["key"]: i for i in j["inputs"]}
    assert inputs["power.gpu_power_w"]["value"] == 4000 and inputs["power.gpu_power_w"]["basis"] == "measured"
    assert inputs["power.non_gpu_overhead_w"]["basis"] == "assumed"     # overhead is never measured
    # b failed at 10 h: the cell 5-15 h, 10 of 40 node-hours
    assert inputs["utilization.availability"]["value"] == pytest.approx(30 / 40)
    assert "2 GPU nodes from 2026-11-01 00:00 to 2026-11-01 20:00 UTC" in inputs["utilization.availability"]["source"]
    assert j["result"]["power"] == pytest.approx(2 * 4.0 * 1.5 * 8760)
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
    assert wb.sheetnames[:2] == ["Summary", "Cash flow"] and "Scenarios" in wb.sheetnames
    assert str(wb["Summary"]["B2"].value).startswith("=Model!")      # a live formula, not a number
