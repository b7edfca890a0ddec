"""Every metric the checks emit has a declared Prometheus series (clusterkit/prom_names.py)."""

from __future__ import annotations

import ast
from pathlib import Path

from clusterkit import prom_names
from clusterkit.exporter import FIXED_FAMILIES
from clusterkit.pipeline import simulate_run

CHECKS = Path(__file__).resolve().parents[3] / "clusterkit" / "checks"
TEXT_METRICS = {"judged_by", "loaded_driver"}      # strings: not series


def _static_metric_names() -> set[str]:
    """String keys of the `metrics` dicts the check modules build."""
    out: set[str] = set()
    for p in CHECKS.glob("*.py"):
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.Assign):
                for t in n.targets:
                    if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and "metric" in t.value.id \
                            and isinstance(t.slice, ast.Constant):
                        out.add(t.slice.value)
                    if isinstance(t, ast.Name) and "metric" in t.id and isinstance(n.value, ast.Dict):
                        out |= {k.value for k in n.value.keys if isinstance(k, ast.Constant)}
    return out


def test_every_metric_the_checks_emit_has_a_declared_series():
    names = _static_metric_names() - TEXT_METRICS
    for seed in (0, 3):
        run = simulate_run(nodes=8, seed=seed, suite="full")
        for c in [c for n in run.nodes for c in n.checks] + run.cluster_checks:
            names |= {k for k, v in c.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert len(names) > 50
    assert sorted(n for n in names if not prom_names.declared(n)) == []
    assert prom_names.declared("symbol_error_delta_max") and prom_names.declared("busbw_large_gbps_regression_percent")


def test_declared_families_are_valid_unique_and_apart_from_the_fixed_ones():
    by_family: dict[str, set] = {}
    for metric, s in prom_names.declared_series():
        assert s.family.startswith("clusterkit_") and s.family == s.family.lower(), metric
        assert s.family not in FIXED_FAMILIES and s.family != prom_names.GENERIC, metric
        by_family.setdefault(s.family, set()).add(s.labels)
    # metrics sharing a family are told apart by their labels
    shared = {f: labs for f, labs in by_family.items() if len(labs) > 1}
    assert set(shared) == {"clusterkit_host_probes", "clusterkit_gpu_dcgm_diag_tests"}
    assert prom_names.series("nope_x").family == prom_names.GENERIC
    assert prom_names.series("nope_x").labels == (("metric", "nope_x"),)
    assert abs(prom_names.series("tx_power_dbm_min").convert(0.0) - 0.001) < 1e-12      # 0 dBm is 1 mW


def test_renamed_list_names_every_earlier_series():
    before = dict(prom_names.renamed())
    assert before["clusterkit_busbw_large_gbps"] == "clusterkit_nccl_busbw_large_bytes_per_second"
    assert before["clusterkit_link_flaps_total"] == "clusterkit_fabric_link_flaps"
    assert before["clusterkit_<counter>_delta_max"] == 'clusterkit_fabric_error_increase_max{counter="<counter>"}'
    assert len(before) == len(prom_names.EXACT) + len(prom_names.PATTERNS)
