"""Version coherence rules: the shipped table, per-host overrides, drift between nodes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterkit.errors import ConfigError
from clusterkit.inventory import load_inventory
from clusterkit.versions import (COMPONENT_VARS, coherence_problems, default_path, effective_versions,
                                 host_version_problems, load_table)

ROLES = Path(__file__).resolve().parents[3] / "playbooks" / "roles"


def _inv(tmp_path: Path, body: str):
    p = tmp_path / "hosts.ini"
    p.write_text(body)
    inv, problems = load_inventory(p, strict=False)
    assert problems == []
    return inv


def test_every_shipped_stack_is_coherent_for_every_gpu_model():
    table = load_table()
    for name in table.stacks:
        for model in table.gpu_models:
            assert host_version_problems({"clusterkit_stack": name}, table, model) == [], (name, model)


def test_every_profiled_gpu_model_can_be_provisioned():
    profiles = {p.stem for p in (ROLES.parents[1] / "checks" / "profiles").glob("*.toml")} - {"base"}
    assert profiles and profiles <= set(load_table().gpu_models)


def test_role_defaults_pin_each_component_from_the_stack():
    """The override variable Python knows for each component is the one the role pins from."""
    defaults = {}
    for f in ROLES.glob("*/defaults/main.yml"):
        defaults.update(yaml.safe_load(f.read_text()) or {})
    for comp, var in COMPONENT_VARS.items():
        assert var in defaults, var
        assert re.search(rf"clusterkit_stacks\[.*\]\.{comp}\b", str(defaults[var])), (var, defaults[var])


def test_example_inventory_is_coherent():
    inv, _ = load_inventory(Path(__file__).resolve().parents[3] / "inventory.example.ini")
    assert coherence_problems(inv.hosts) == []


def test_fabric_manager_must_equal_the_driver(tmp_path):
    inv = _inv(tmp_path, "[gpu]\nn1 gpu_model=h100-sxm5-80gb gpu_count=8 nvidia_driver_version=570.195.03\n")
    [p] = coherence_problems(inv.hosts, source="hosts.ini")
    assert (p.host, p.variable) == ("n1", "fabric_manager_version")
    assert "570.172.08 must equal the driver version 570.195.03" in p.message
    assert "system not yet initialized" in p.message


def test_driver_older_than_cuda_and_gpu_model_minimums(tmp_path):
    inv = _inv(tmp_path, "[gpu]\nn1 gpu_model=h100-sxm5-80gb gpu_count=8 "
                         "nvidia_driver_version=520.61.05 fabric_manager_version=520.61.05\n")
    msgs = [p.message for p in coherence_problems(inv.hosts)]
    assert any("older than 570.26, the minimum for CUDA 12.8" in m for m in msgs)
    assert any("older than 525.60.13, the first driver for H100 SXM5 80GB" in m for m in msgs)


def test_h100_with_proprietary_modules_and_inbox_stack(tmp_path):
    inv = _inv(tmp_path, "[gpu]\nn1 gpu_model=h100-sxm5-80gb gpu_count=8 nvidia_driver_kernel_modules=proprietary "
                         "network_stack_flavor=inbox\n"
                         "n2 gpu_model=a100-sxm4-80gb gpu_count=8 nvidia_driver_kernel_modules=proprietary\n")
    probs = coherence_problems(inv.hosts)
    assert {(p.host, p.variable) for p in probs} == {("n1", "nvidia_driver_kernel_modules")}
    assert len(probs) == 2   # open modules for H100, and dma-buf for the inbox stack


def test_unknown_stack_names_the_known_ones(tmp_path):
    inv = _inv(tmp_path, "[gpu]\nn1 clusterkit_stack=r999\n")
    [p] = coherence_problems(inv.hosts)
    assert p.variable == "clusterkit_stack" and "unknown stack 'r999'" in p.message
    assert "r570-cuda12.8" in p.message


def test_dcgm_without_a_build_for_the_cuda_major(tmp_path):
    inv = _inv(tmp_path, "[gpu]\nn1 clusterkit_stack=r580-cuda13.0 dcgm_version=3.3.9\n")
    [p] = coherence_problems(inv.hosts)
    assert p.variable == "dcgm_version" and "no build for CUDA 13" in p.message


def test_drift_between_nodes_names_the_odd_one(tmp_path):
    inv = _inv(tmp_path, "[gpu]\nn[1:3] gpu_model=a100-sxm4-80gb gpu_count=8\n"
                         "n4 gpu_model=a100-sxm4-80gb gpu_count=8 clusterkit_stack=r535-cuda12.2\n"
                         "[bastion]\nb1\n")
    [p] = coherence_problems(inv.hosts)
    assert p.host == "n4"
    assert "driver 535.247.01" in p.message and "3 other host(s)" in p.message


def test_override_reaches_effective_versions():
    table = load_table()
    stack, v = effective_versions({"nccl_version": "2.27.3", "clusterkit_stack": "r570-cuda12.8"}, table)
    assert stack == "r570-cuda12.8" and v["nccl"] == "2.27.3" and v["driver"] == table.stacks[stack]["driver"]


def test_malformed_table_is_a_config_error(tmp_path):
    doc = yaml.safe_load(default_path().read_text())
    doc["clusterkit_stacks"]["r570-cuda12.8"]["cuda"] = 12.8   # unquoted: YAML makes it a float
    bad = tmp_path / "versions.yml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"stack 'r570-cuda12.8': 'cuda' must be a quoted version"):
        load_table(bad)
    bad.write_text("clusterkit_stacks: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_table(bad)


def test_inventory_check_cli_reports_incoherent_versions(tmp_path):
    import subprocess
    import sys

    p = tmp_path / "hosts.ini"
    p.write_text("[gpu]\nn1 gpu_model=h100-sxm5-80gb gpu_count=8 fabric_manager_version=570.86.15\n")
    r = subprocess.run([sys.executable, "-m", "clusterkit", "inventory", "check", "-i", str(p)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert f"{p}: host n1: fabric_manager_version: fabric manager 570.86.15 must equal the driver version" in r.stderr


_value = st.one_of(st.none(), st.text(max_size=12), st.integers(-5, 10**6), st.floats(allow_nan=True),
                   st.booleans(), st.lists(st.text(max_size=5), max_size=3))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(COMPONENT_VARS.values()) + [
    "clusterkit_stack", "nvidia_driver_kernel_modules", "network_stack_flavor"]), _value),
       st.sampled_from([None, "h100-sxm5-80gb", "a100-sxm4-80gb", "nonsense"]))
def test_any_host_vars_give_messages_not_tracebacks(hv, model):
    out = host_version_problems(hv, load_table(), model)
    assert all(isinstance(var, str) and isinstance(msg, str) and msg for var, msg in out)


def test_a_stack_without_the_source_of_a_version_is_refused(tmp_path):
    doc = yaml.safe_load(default_path().read_text())
    del doc["clusterkit_stacks"]["r570-cuda12.8"]["sources"]["nccl"]
    p = tmp_path / "versions.yml"
    p.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="stack 'r570-cuda12.8': 'sources' must say where each version comes from; missing: nccl"):
        load_table(p)
