"""`clusterkit explain`, `checks list`, `--checks`/`--skip`, and analyze using the suite a bundle was collected
with: all read from the registries the checks use."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from clusterkit import codes
from clusterkit.codes.explain import explain_code
from clusterkit.suites import load_suite

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[3]



def test_explain_knows_every_declared_code_and_every_earlier_name():
    names = [c for e in codes.catalog() for c in (*e.codes, *e.aliases) if "<" not in c]
    names += ["IB_SYMBOL_ERROR_INCREASED", "GPU_XID_79", "GPU_XID_99999"]
    for name in names:
        d = explain_code(name)
        assert d is not None, name
        assert d["meaning"] and d["action"] and d["docs"].startswith("docs/findings"), name
        assert d["checks"] or d["emitter"] or d["any_check"], name


def test_explain_an_earlier_name_shows_its_successor_thresholds_from_the_profiles_and_a_real_example(ck):
    code, out, _ = ck("explain", "ib_port_rate_low")
    assert code == 0
    assert out.startswith("FABRIC_PORT_RATE_LOW  (fail / warn)")
    assert "IB_PORT_RATE_LOW is an earlier name of FABRIC_PORT_RATE_LOW" in out
    base = tomllib.loads((ROOT / "checks/profiles/base.toml").read_text())["fabric"]["port_rate_far_below_fraction"]
    assert f"fabric.port_rate_far_below_fraction: base = {base!r}" in out
    assert "fabric.ports" in out and "fabric/ibstat.txt  (ibstat)" in out
    assert "Example:" in out and "(real output: http" in out
    d = json.loads(ck("explain", "IB_SYMBOL_ERROR_INCREASED", "--format", "json")[1])
    assert d["code"] == "IB_SYMBOL_ERROR_INCREASED" and d["documented_as"] == "IB_<COUNTER>_INCREASED"
    assert [t["key"] for t in d["thresholds"]] == ["fabric.max_symbol_error_delta"]
    assert d["thresholds"][0]["set_in"][0]["file"].endswith("base.toml")


def test_explain_an_xid_gives_the_catalogues_meaning(ck):
    code, out, _ = ck("explain", "GPU_XID_79")
    assert code == 0 and "Xid:        GPU has fallen off the bus (fail)" in out and "gpu.xid_ignore" in out


def test_explain_a_check_lists_what_it_reads_and_finds(ck):
    code, out, _ = ck("explain", "fabric.ports")
    assert code == 0 and "ibstat" in out and "FABRIC_PORT_RATE_LOW" in out
    assert "fabric.port_rate_far_below_fraction" in out


def test_explain_an_unknown_code_is_a_usage_error_with_suggestions(ck):
    code, _, err = ck("explain", "GPU_XID")
    assert code == 2 and "did you mean GPU_XID_<n>" in err
    code, _, err = ck("explain", "NO_SUCH_THING_AT_ALL")
    assert code == 2 and "clusterkit checks list" in err


def test_checks_list_is_the_suites_checks_with_what_they_find(ck):
    code, out, _ = ck("checks", "list", "--suite", "quick", "--format", "json")
    rows = json.loads(out)
    assert code == 0 and [r["id"] for r in rows] == load_suite("quick").check_ids
    ports = next(r for r in rows if r["id"] == "fabric.ports")
    assert "ibstat" in ports["needs"] and "FABRIC_PORT_RATE_LOW" in ports["finds"]
    assert all(codes.declared(c) for r in rows for c in r["finds"] if "<" not in c)
    code, out, _ = ck("checks", "list", "--checks", "gpu.*", "--skip", "gpu.xid", "--format", "json")
    ids = [r["id"] for r in json.loads(out)]
    assert ids and all(i.startswith("gpu.") for i in ids) and "gpu.xid" not in ids
    code, out, _ = ck("checks", "list")
    assert code == 0 and "fabric.ports" in out and "power.step" in out


def test_checks_and_skip_select_what_verify_runs(ck):
    code, out, _ = ck("verify", "--simulate", "--nodes", "2", "--checks", "host.*,stack.versions",
                      "--skip", "host.kernel_log", "--format", "json")
    d = json.loads(out)
    ran = {c["id"] for n in d["nodes"] for c in n["checks"]} | {c["id"] for c in d["cluster_checks"]}
    assert ran and all(i.startswith("host.") or i == "stack.versions" for i in ran) and "host.kernel_log" not in ran


def test_analyze_applies_the_suite_and_checks_the_bundles_were_collected_with(ck, tmp_path):
    quick, picked = tmp_path / "quick", tmp_path / "picked"
    ck("verify", "--simulate", "--nodes", "2", "--keep-evidence", str(quick), "--format", "json")
    ck("verify", "--simulate", "--nodes", "2", "--checks", "host.*", "--keep-evidence", str(picked),
       "--format", "json")
    meta = json.loads((quick / "sim-h100-01" / "bundle.json").read_text())
    assert meta["suite"] == "quick" and meta["checks"] == load_suite("quick").check_ids

    def ran(*args: str) -> tuple[str, set[str]]:
        d = json.loads(ck("analyze", *args, "--format", "json")[1])
        return d["suite"], {c["id"] for n in d["nodes"] for c in n["checks"]} | {c["id"] for c in d["cluster_checks"]}

    suite, ids = ran(str(quick))
    assert suite == "quick" and ids <= set(load_suite("quick").check_ids) and "power.step" not in ids
    suite, ids = ran(str(quick), "--suite", "full")          # --suite overrides
    assert suite == "full" and "power.step" in ids
    suite, ids = ran(str(picked))
    assert ids and all(i.startswith("host.") for i in ids)
    # bundles of one suite collected for other checks: every check one of them was collected for
    suite, ids = ran(str(quick / "sim-h100-01"), str(picked / "sim-h100-02"))
    assert suite == "quick" and "gpu.ecc" in ids and "power.step" not in ids
