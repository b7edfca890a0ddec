import json
import subprocess
import sys
from pathlib import Path

import pytest

from clusterkit.errors import ConfigError
from clusterkit.inventory import load_inventory

REPO = Path(__file__).resolve().parents[3]


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clusterkit", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_ranges_group_vars_and_children_resolve_like_ansible(tmp_path):
    inv = tmp_path / "inv.ini"
    inv.write_text(
        "[a100]\ngpu[01:03] gpu_model=a100-sxm4-80gb\n\n[a100:vars]\ngpu_count=8\nib_devices=mlx5_0,mlx5_1\n"
        "ib_rate_gbps=200\n\n[gpu:children]\na100\n\n[gpu:vars]\nansible_user=ops\nansible_port=2222\n"
        "ansible_ssh_common_args='-o ProxyJump=jump@10.0.0.1:2200 -o ConnectTimeout=5'\n")
    hosts, problems = load_inventory(inv)
    assert problems == []
    assert [h.name for h in hosts.hosts] == ["gpu01", "gpu02", "gpu03"]
    h = hosts.hosts[1]
    assert (h.gpu_count, h.ib_devices, h.ib_rate_gbps, h.user, h.port) == (8, ["mlx5_0", "mlx5_1"], 200, "ops", 2222)
    assert h.jump_host == "jump@10.0.0.1:2200"
    assert set(h.groups) == {"a100", "gpu"}


def test_yaml_inventory(tmp_path):
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  children:\n    h100:\n      hosts:\n        h1:\n          ansible_host: 10.1.0.5\n"
                   "          gpu_model: h100-sxm5-80gb\n          gpu_count: 8\n          roce_interfaces: [eth2, eth3]\n"
                   "          roce_rate_gbps: 400\n")
    hosts, problems = load_inventory(inv)
    assert problems == []
    assert hosts.hosts[0].address == "10.1.0.5" and hosts.hosts[0].roce_interfaces == ["eth2", "eth3"]


@pytest.mark.parametrize("indent", [None, 1, 2])
def test_a_json_inventory_is_read_as_json_however_it_is_indented(tmp_path, indent):
    """Pretty-printed JSON (as the srun launcher writes) is not an INI file of hosts named `{`."""
    f = tmp_path / "inventory.json"
    f.write_text(json.dumps({"all": {"hosts": {"n1": {"slurm_node": "node1"}, "n2": {}}}}, indent=indent))
    inv, problems = load_inventory(f)
    assert [h.name for h in inv.hosts] == ["n1", "n2"] and not problems
    assert inv.hosts[0].slurm_node == "node1"


def test_problems_name_file_host_and_variable(tmp_path):
    inv = tmp_path / "bad.ini"
    inv.write_text("[gpu]\nn1 gpu_model=a100-sxm4-80gb gpu_count=eight\nn2 gpu_model=b200-sxm gpu_count=8\n"
                   "n3 gpu_count=4\nn4 ib_devices=mlx5_0\n")
    _, problems = load_inventory(inv, strict=False)
    got = {(p.host, p.variable) for p in problems}
    assert {("n1", "gpu_count"), ("n2", "gpu_model"), ("n3", "gpu_model"), ("n4", "ib_rate_gbps")} <= got
    assert all(p.file == str(inv) for p in problems)
    with pytest.raises(ConfigError, match=r"bad\.ini: host n1: gpu_count"):
        load_inventory(inv)


def test_inventory_check_cli_exit_codes(tmp_path):
    bad = tmp_path / "bad.ini"
    bad.write_text("[gpu]\nn1 gpu_model=a100-sxm4-80gb gpu_count=many\n")
    r = _cli("inventory", "check", "-i", str(bad))
    assert r.returncode == 2
    assert f"{bad}: host n1: gpu_count" in r.stderr and "Traceback" not in r.stderr
    r = _cli("inventory", "check", "-i", str(REPO / "inventory.example.ini"))
    assert r.returncode == 0, r.stderr


def test_unparseable_and_missing_inventory_exit_2(tmp_path):
    garbage = tmp_path / "garbage.ini"
    garbage.write_text("[gpu\nthis is = = not ini\n")
    for path in (garbage, tmp_path / "missing.ini"):
        r = _cli("verify", "-i", str(path))
        assert r.returncode == 2, r.stderr
        assert str(path) in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_inventory_show_json_resolves_hosts():
    r = _cli("inventory", "show", "-i", str(REPO / "inventory.example.ini"), "--format", "json")
    assert r.returncode == 0, r.stderr
    hosts = {h["name"]: h for h in json.loads(r.stdout)}
    assert hosts["h100-02"]["gpu_model"] == "h100-sxm5-80gb" and hosts["h100-02"]["jump_host"] == "ops@203.0.113.10"
    assert hosts["a100-01"]["ib_rate_gbps"] == 200
