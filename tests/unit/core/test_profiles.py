import pytest

from clusterkit.errors import ConfigError
from clusterkit.profiles import available_profiles, load_profile, profile_for_gpu_name
from clusterkit.suites import available_suites, load_suite


def test_shipped_profiles_and_suites_load():
    names = available_profiles()
    assert {"base", "a100-sxm4-80gb", "h100-sxm5-80gb", "h100-pcie-80gb"} <= set(names)
    for n in names:
        p = load_profile(n)
        assert p.chain[-1] == "base"
    for s in available_suites():
        assert load_suite(s).check_ids


def test_inherits_chain_overrides_parent(tmp_path):
    (tmp_path / "parent.toml").write_text('inherits = "base"\n[host]\nmin_free_disk_gib = 100.0\n')
    (tmp_path / "child.toml").write_text('inherits = "parent"\n[host]\nmax_clock_skew_ms = 50.0\n')
    p = load_profile("child", [tmp_path])
    assert p.chain == ["child", "parent", "base"]
    assert p.get("host.min_free_disk_gib") == 100.0 and p.get("host.max_clock_skew_ms") == 50.0
    assert p.get("host.min_available_memory_gib") == load_profile("base").get("host.min_available_memory_gib")


@pytest.mark.parametrize("body,match", [
    ('[host]\nmin_free_disk_gb = 1.0\n', r"unknown key 'host.min_free_disk_gb'"),
    ('[hots]\nx = 1\n', r"unknown key 'hots.x'"),
    ('[host]\nmin_free_disk_gib = "lots"\n', r"must be float"),
    ('inherits = "nope"\n', r"unknown profile 'nope'"),
    ('inherits = "bad"\n', r"inherits loop"),
    ('[host\n', r"invalid TOML"),
])
def test_profile_errors_are_config_errors_naming_the_file(tmp_path, body, match):
    (tmp_path / "bad.toml").write_text(body)
    with pytest.raises(ConfigError, match=match) as e:
        load_profile("bad", [tmp_path])
    assert "bad" in str(e.value)


def test_unknown_suite_pattern_is_a_config_error(tmp_path):
    s = tmp_path / "mine.toml"
    s.write_text('checks = ["host.*", "gpu.nonexistent_check"]\n')
    with pytest.raises(ConfigError, match="matches no check"):
        load_suite(str(s))
    with pytest.raises(ConfigError, match="unknown suite"):
        load_suite("nightly-typo")


def test_profile_by_gpu_product_name():
    assert profile_for_gpu_name("NVIDIA A100-SXM4-80GB").name == "a100-sxm4-80gb"
    assert profile_for_gpu_name("NVIDIA H100 80GB HBM3").name == "h100-sxm5-80gb"
    assert profile_for_gpu_name("Tesla V100-SXM2-32GB") is None


def test_profile_show_cli_resolves_chain():
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "clusterkit", "profile", "show", "h100-sxm5-80gb", "--format", "json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["chain"] == ["h100-sxm5-80gb", "base"]
    assert d["values"]["host.max_clock_skew_ms"] == load_profile("base").get("host.max_clock_skew_ms")
    r = subprocess.run([sys.executable, "-m", "clusterkit", "profile", "show", "b200"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "unknown profile 'b200'" in r.stderr
