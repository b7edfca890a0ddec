"""Provisioning playbooks run for real: ansible-playbook/ansible-runner against real sshd nodes on 127.0.0.1.

The nodes are this machine, so nothing here may change it: hardware roles run in check mode,
real runs are read-only (preflight) or write only under a temporary clusterkit_root (--tags config).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from clusterkit.fleet.collect import FleetOptions
from clusterkit.fleet.provision import provision, run_playbook

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "playbooks" / "site.yml"
NODE_PYTHON = "/usr/bin/python3"   # the nodes' python: the system one, with python3-apt for apt in check mode
# What a provisioning run would write on a real node; none of it may appear on this machine.
LIVE_FILES = ["/etc/nccl.conf", "/etc/modprobe.d/clusterkit-blacklist-nouveau.conf",
              "/etc/default/grub.d/90-clusterkit.cfg", "/etc/apt/sources.list.d/clusterkit-cuda.sources",
              "/etc/apt/preferences.d/clusterkit-nvidia", "/usr/local/sbin/clusterkit-disable-acs",
              "/etc/systemd/system/clusterkit-disable-acs.service"]


@pytest.fixture(scope="module")
def node_python():
    r = subprocess.run([NODE_PYTHON, "-c", "import apt"], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"{NODE_PYTHON} with python3-apt is needed on the nodes (apt-get install python3-apt)")
    return NODE_PYTHON


def _inventory(cluster, path: Path, host_vars: dict[str, dict], order: list[str] | None = None) -> Path:
    nodes = [cluster.node(n) for n in (order or list(host_vars))]
    base = {"ansible_python_interpreter": NODE_PYTHON, "os_tuning_reboot": "false"}
    return cluster.write_inventory(path, nodes, known_hosts=cluster.known_hosts,
                                   host_vars={n: {**base, **hv} for n, hv in host_vars.items()})


def _fake_sysfs(root: Path, gpus: int, gpu_id: str, nvswitches: int, ib: list[str]) -> Path:
    """A sysfs tree as an HGX board shows it: GPUs, NVSwitches, InfiniBand devices."""
    def dev(addr: str, pci_id: str, cls: str) -> None:
        d = root / "bus" / "pci" / "devices" / addr
        d.mkdir(parents=True)
        vendor, device = pci_id.split(":")
        (d / "vendor").write_text(f"0x{vendor}\n")
        (d / "device").write_text(f"0x{device}\n")
        (d / "class").write_text(f"{cls}\n")

    for i in range(gpus):
        dev(f"0000:{0x18 + i:02x}:00.0", gpu_id, "0x030200")
    for i in range(nvswitches):
        dev(f"0000:{0x80 + i:02x}:00.0", "10de:22a3", "0x068000")
    dev("0000:00:1f.0", "8086:1234", "0x060100")   # not NVIDIA: ignored
    for name in ib:
        (root / "class" / "infiniband" / name).mkdir(parents=True)
    (root / "class" / "net" / "lo").mkdir(parents=True)
    (root / "module").mkdir()
    return root


def _clean_env() -> dict[str, str]:
    # clusterkit.inventory narrows ANSIBLE_INVENTORY_* for its own loader; the tools get the defaults.
    return {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}


def test_site_playbook_syntax_check():
    r = subprocess.run(["ansible-playbook", "--syntax-check", "-i", str(REPO / "inventory.example.ini"), str(SITE)],
                       capture_output=True, text=True, timeout=120, env=_clean_env())
    assert r.returncode == 0, r.stdout + r.stderr


def test_ansible_lint_production_profile_is_clean():
    if shutil.which("ansible-lint") is None:
        pytest.skip("ansible-lint not installed (pip install ansible-lint; it is in the test extra)")
    r = subprocess.run(["ansible-lint", "--offline", "--nocolor", "--profile", "production", "playbooks/"],
                       cwd=REPO, capture_output=True, text=True, timeout=300, env=_clean_env())
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in r.stdout + r.stderr


def test_preflight_and_argument_specs_on_real_nodes(sshd_cluster, node_python, tmp_path):
    """One real run, three verdicts: no GPU although declared, a bad role variable, a board short of a GPU."""
    sysfs = _fake_sysfs(tmp_path / "sys", gpus=7, gpu_id="10de:2330", nvswitches=4, ib=["mlx5_0"])
    inv = _inventory(sshd_cluster, tmp_path / "hosts.ini", {
        "node01": {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8},
        "node02": {"gpu_count": 0, "os_tuning_cpu_governor": "turbo"},
        "node03": {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8, "ib_devices": "mlx5_0,mlx5_1",
                   "preflight_sysfs_root": str(sysfs)},
    })
    run = run_playbook(inv, tmp_path / "run", ["node01", "node02", "node03"], check=True, tags="os_tuning",
                       timeout_s=240)
    s = run.summaries
    assert run.status == "failed"
    assert [s[h].outcome for h in ("node01", "node02", "node03")] == ["failed", "failed", "failed"]
    [m1] = s["node01"].messages
    assert "preflight failed on node01: no NVIDIA GPU detected: the inventory declares 8 x h100-sxm5-80gb" in m1
    # node02 passed preflight (no GPU declared, none found) and stopped at the role's argument spec
    [m2] = s["node02"].messages
    assert "os_tuning" in m2 and "os_tuning_cpu_governor" in m2 and "turbo" in m2
    assert "preflight" not in m2
    [m3] = s["node03"].messages
    assert "detected 7 GPU(s), the inventory declares 8" in m3 and "0000:18:00.0" in m3
    assert "InfiniBand device mlx5_1 is declared but not present (present: mlx5_0" in m3
    assert "no NVIDIA GPU" not in m3 and "NVSwitch" not in m3
    assert all(x.changed == 0 for x in s.values())
    log = run.stdout_path.read_text()
    assert "no NVIDIA GPU detected" in log   # the runner's log is kept


def test_provision_check_prints_plan_and_summary_and_changes_nothing(sshd_cluster, node_python, tmp_path):
    present = [f for f in LIVE_FILES if os.path.exists(f)]
    if present:
        pytest.skip(f"this machine already has {present}: cannot prove the check run leaves it unchanged")
    inv = _inventory(sshd_cluster, tmp_path / "hosts.ini", {"node02": {"gpu_count": 0}})
    r = subprocess.run([sys.executable, "-m", "clusterkit", "provision", "-i", str(inv), "--check", "--diff",
                        "--run-dir", str(tmp_path / "runs"), "--timeout", "400"],
                       capture_output=True, text=True, timeout=450)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "node02 plan:" in out and "task(s) would change" in out
    assert "os_tuning : Blacklist nouveau" in out
    assert "+blacklist nouveau" in out            # the diff of the file it would write
    assert "would install nvidia-driver" in out and "570.172.08" in out
    assert "would build nccl-tests" in out
    row = next(line for line in out.splitlines() if line.startswith("│ node02"))
    assert "changed" in row.split("│")[2]
    assert "health gate: skipped (check mode changed nothing)" in out
    assert "check ok" in r.stderr
    assert [f for f in LIVE_FILES if os.path.exists(f)] == []
    [pdd] = list((tmp_path / "runs").iterdir())
    assert pdd.is_absolute() and (pdd / "artifacts" / "provision" / "stdout").is_file()


def test_config_run_in_a_staging_root_is_idempotent(sshd_cluster, node_python, tmp_path):
    inv = _inventory(sshd_cluster, tmp_path / "hosts.ini", {
        "node03": {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8, "nccl_socket_ifname": "eth0",
                   "preflight_sysfs_root": str(_fake_sysfs(tmp_path / "sys", 8, "10de:2330", 4, []))}})
    root = tmp_path / "root"
    extra = {"clusterkit_root": str(root)}
    first = run_playbook(inv, tmp_path / "run1", ["node03"], tags="config", extravars=extra, timeout_s=240)
    assert first.status == "successful", first.summaries["node03"].messages
    assert first.summaries["node03"].changed > 5
    conf = (root / "etc/nccl.conf").read_text()
    assert "NCCL_SOCKET_IFNAME=eth0" in conf and "NCCL_NVLS_ENABLE=1" in conf
    assert "iommu=pt" in (root / "etc/default/grub.d/90-clusterkit.cfg").read_text()
    assert "Pin: version 570.172.08-*" in (root / "etc/apt/preferences.d/clusterkit-nvidia").read_text()
    acs = root / "usr/local/sbin/clusterkit-disable-acs"
    assert acs.stat().st_mode & stat.S_IXUSR
    assert subprocess.run(["sh", "-n", str(acs)]).returncode == 0
    second = run_playbook(inv, tmp_path / "run2", ["node03"], tags="config", extravars=extra, timeout_s=240)
    assert second.status == "successful"
    assert second.summaries["node03"].changed == 0, [p.task for p in second.summaries["node03"].plan]
    # a fresh private data dir per run: the second run's env has nothing the first one wrote
    assert first.private_data_dir != second.private_data_dir


def test_rolling_batches_stop_at_the_first_failing_health_gate(sshd_cluster, node_python, tmp_path):
    """serial=1: node02 passes its gate, node03 fails it (its host key is wrong), node01 never starts."""
    inv = _inventory(sshd_cluster, tmp_path / "hosts.ini",
                     {"node02": {"gpu_count": 0}, "node03": {"gpu_count": 0}, "node01": {"gpu_count": 0}},
                     order=["node02", "node03", "node01"])
    wrong = sshd_cluster.write_known_hosts(tmp_path / "verify_known_hosts", wrong_key_for=("node03",))
    # The gate is the real verify over SSH; its suite is the host and stack families, whose checks mean the same on
    # this machine as on a node (the GPU/fabric families need hardware these nodes do not have).
    suite = tmp_path / "gate.toml"
    suite.write_text('description = "host gate"\nchecks = ["host.*", "stack.*"]\n')
    result = provision(inv, tmp_path / "runs", serial=1, tags="preflight", timeout_s=240, verify_suite=str(suite),
                       verify_kwargs={"fleet_options": FleetOptions(known_hosts=wrong, connect_timeout_s=5)})
    assert [b.hosts for b in result.batches] == [["node02"], ["node03"]]
    assert result.pending == [["node01"]]
    first, second = result.batches
    assert first.status == second.status == "successful"
    assert not first.verify.failed()
    [gate] = first.verify.nodes
    stack = next(c for c in gate.checks if c.id == "stack.versions")
    assert stack.status == "skip" and "no NVIDIA stack package installed" in stack.summary
    assert second.verify.failed()
    assert [n.outcome for n in second.verify.nodes] != ["ok"]
    assert result.failed()
