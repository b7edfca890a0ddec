"""Provisioning playbooks run for real: ansible-playbook/ansible-runner against real sshd nodes on 127.0.0.1.

The nodes are this machine, so nothing here may change it: hardware roles run in check mode,
real runs are read-only (preflight) or write only under a temporary clusterkit_root (--tags config).
Reboots are forbidden on every node (os_tuning_reboot=false): a reboot the playbooks would do still
shows as its handler, notified and skipped, in the run's event stream.

This machine is Debian; GPU nodes are provisioned on Ubuntu only, so the check-mode runs on GPU
nodes present the node as Ubuntu 22.04 (`-e ansible_distribution=...`, which wins over gathered facts).
"""

from __future__ import annotations

import json
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
              "/etc/apt/sources.list.d/clusterkit-doca.sources", "/usr/share/keyrings/cuda-archive-keyring.gpg",
              "/etc/apt/preferences.d/clusterkit-nvidia", "/usr/local/sbin/clusterkit-disable-acs",
              "/etc/systemd/system/clusterkit-disable-acs.service", "/usr/local/bin/gpu_burn",
              "/etc/systemd/system/nvidia-persistenced.service.d/clusterkit-persistence-mode.conf"]
UBUNTU = {"ansible_distribution": "Ubuntu", "ansible_distribution_version": "22.04"}
# Roles that make up the NVIDIA stack: a host that declares no GPU runs none of their tasks.
NVIDIA_ROLES = {"cuda_repo", "nvidia_driver", "fabric_manager", "nvidia_peermem", "dcgm", "nccl",
                "container_toolkit", "smoke_test"}
REBOOT = "os_tuning : Reboot the node"


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


def _fake_sysfs(root: Path, gpus: int, gpu_id: str, nvswitches: int, ib: list[str], *,
                ib_state: str = "4: ACTIVE", sm_lid: str = "0x1", secure_boot: bool | None = None) -> Path:
    """A sysfs tree as an HGX board shows it: GPUs, NVSwitches, InfiniBand devices (port 1 in
    `ib_state`, knowing the subnet manager at `sm_lid`), and the SecureBoot EFI variable."""
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
        port = root / "class" / "infiniband" / name / "ports" / "1"
        port.mkdir(parents=True)
        (port / "state").write_text(ib_state + "\n")
        (port / "sm_lid").write_text(sm_lid + "\n")
    if secure_boot is not None:
        efivars = root / "firmware" / "efi" / "efivars"
        efivars.mkdir(parents=True)
        # 4 attribute bytes (NV+BS+RT), then the value
        (efivars / "SecureBoot-8be4df61-93ca-11d2-aa0d-e2a14f7a0da2").write_bytes(b"\x06\x00\x00\x00" + bytes([secure_boot]))
    (root / "class" / "net" / "lo").mkdir(parents=True)
    (root / "module").mkdir()
    return root


def _events(private_data_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """host -> [("role : task", outcome)] in the order the run went, from ansible-runner's job events
    (outcome ok, changed, skipped, failed, unreachable; handlers included)."""
    out: dict[str, list[tuple[str, str]]] = {}
    files = sorted((private_data_dir / "artifacts" / "provision" / "job_events").glob("*.json"),
                   key=lambda f: json.loads(f.read_text()).get("counter", 0))
    for f in files:
        e = json.loads(f.read_text())
        d = e.get("event_data") or {}
        if not e.get("event", "").startswith("runner_on_") or not d.get("host") or e["event"] == "runner_on_start":
            continue
        outcome = e["event"][len("runner_on_"):]
        if outcome == "ok" and (d.get("res") or {}).get("changed"):
            outcome = "changed"
        label = f"{d['role']} : {d.get('task', '').strip()}" if d.get("role") else d.get("task", "").strip()
        out.setdefault(d["host"], []).append((label, outcome))
    return out


def _ran(events: list[tuple[str, str]]) -> list[str]:
    return [label for label, outcome in events if outcome != "skipped"]


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
    sysfs = _fake_sysfs(tmp_path / "sys", gpus=7, gpu_id="10de:2330", nvswitches=4, ib=["mlx5_0"],
                        ib_state="2: INIT", sm_lid="0x0", secure_boot=True)
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
    # unsigned DKMS modules would not load; no SM configured the port, so no InfiniBand traffic
    assert "Secure Boot is on: the NVIDIA and DOCA kernel modules are built by DKMS and unsigned" in m3
    assert "no InfiniBand subnet manager answers on mlx5_0 (port 1 2: INIT, SM lid 0x0)" in m3
    assert all(x.changed == 0 for x in s.values())
    log = run.stdout_path.read_text()
    assert "no NVIDIA GPU detected" in log   # the runner's log is kept


def test_check_run_plans_what_each_node_needs_and_changes_nothing(sshd_cluster, node_python, tmp_path):
    """One `clusterkit provision --check --diff` of the whole site.yml on three nodes (one run: they are slow):
    node01, H100 HGX on r580 with InfiniBand: DOCA is planned, then the reboot that loads its modules,
    then the driver and the reboot a first driver install needs; fabric manager names without a branch.
    node02, no GPU declared: none of the NVIDIA roles' tasks run, only the host tools for verify.
    node03, A100 HGX: the printed plan and diffs.
    All on r580 (one inventory, one stack); the r570 names are covered by the package tests."""
    present = [f for f in LIVE_FILES if os.path.exists(f)]
    if present:
        pytest.skip(f"this machine already has {present}: cannot prove the check run leaves it unchanged")
    inv = _inventory(sshd_cluster, tmp_path / "hosts.ini", {
        "node01": {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8, "clusterkit_stack": "r580-cuda13.0",
                   "ib_devices": "mlx5_0", "ib_rate_gbps": 400,
                   "preflight_sysfs_root": str(_fake_sysfs(tmp_path / "sys1", 8, "10de:2330", 4, ["mlx5_0"]))},
        "node02": {"gpu_count": 0, "clusterkit_stack": "r580-cuda13.0"},
        "node03": {"gpu_model": "a100-sxm4-80gb", "gpu_count": 8, "clusterkit_stack": "r580-cuda13.0",
                   "preflight_sysfs_root": str(_fake_sysfs(tmp_path / "sys3", 8, "10de:20b2", 6, []))},
    })
    extra = [a for k, v in UBUNTU.items() for a in ("-e", f"{k}={v}")]
    r = subprocess.run([sys.executable, "-m", "clusterkit", "provision", "-i", str(inv), "--check", "--diff",
                        "--run-dir", str(tmp_path / "runs"), "--timeout", "500", *extra],
                       capture_output=True, text=True, timeout=560)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    # what a person reads: node03's plan with file diffs, the summary, the skipped gate
    plan3 = out[out.index("node03 plan:"):]
    assert "tasks would change" in plan3.splitlines()[0]
    assert "os_tuning : Blacklist nouveau" in plan3 and "+blacklist nouveau" in plan3
    assert "would install nvidia-driver-580-open=580.95.05-*, nvidia-dkms-580-open=580.95.05-*" in plan3  # 560+: open
    assert "would build nccl-tests" in plan3 and "would build gpu-burn" in plan3
    # our CUDA source keeps its key where cuda-keyring does: installing cuda-keyring later adds no second Signed-By
    assert "+Signed-By: /usr/share/keyrings/cuda-archive-keyring.gpg" in plan3
    row = next(line for line in out.splitlines() if line.startswith("│ node03"))
    assert "changed" in row.split("│")[2]
    assert "health gate: skipped (check mode changed nothing)" in out
    assert "check ok" in r.stderr
    assert [f for f in LIVE_FILES if os.path.exists(f)] == []
    [pdd] = [d for d in (tmp_path / "runs").iterdir() if d.is_dir()]
    assert pdd.is_absolute() and (pdd / "artifacts" / "provision" / "stdout").is_file()
    ev = _events(pdd)

    # node02 declares no GPU: every task of the NVIDIA roles is skipped
    cpu = _ran(ev["node02"])
    assert [t for t in cpu if t.split(" : ")[0] in NVIDIA_ROLES] == []
    assert "node_tools : Install the tools verify's probes run" in cpu
    assert "nvidia" not in out[out.index("node02 plan:"):out.index("node03 plan:")]
    # its only reboot is os_tuning's own (kernel arguments), before any later role
    labels2 = [label for label, _ in ev["node02"]]
    tools = labels2.index("node_tools : Install the tools verify's probes run")
    assert all(i < tools for i, label in enumerate(labels2) if label == REBOOT)

    # node01: DOCA, its reboot, then the driver, then the driver's reboot (notified; reboots are off here)
    labels = [label for label, _ in ev["node01"]]
    doca = labels.index("network_stack : Plan the network stack (its repository is not configured yet)")
    driver = labels.index("nvidia_driver : Plan the driver (the CUDA repository is not configured yet)")
    reboots = [i for i, label in enumerate(labels) if label == REBOOT]
    assert any(doca < i < driver for i in reboots), labels[doca:driver + 1]
    assert any(i > driver for i in reboots)
    plan1 = out[out.index("node01 plan:"):out.index("node02 plan:")]
    # from branch 580 the fabric manager packages have no branch suffix
    assert "would install nvidia-fabricmanager=580.95.05-*, libnvidia-nscq=580.95.05-*" in plan1
    assert "nvidia-fabricmanager-580" not in out
    assert "datacenter-gpu-manager-4-cuda13=1:4.4.1-*" in plan1
    assert "libnccl2=2.28.3-*+cuda13.0" in plan1
    assert "network_stack : Plan the network stack" not in " ".join(_ran(ev["node03"]))   # no RDMA declared


def _plain_inventory(cluster, path: Path, names: list[str]) -> Path:
    """Hosts with address, port and user only: the key, known_hosts and host-key policy come from
    clusterkit's options, as on a site whose inventory names none of them."""
    lines = ["[gpu]"] + [f"{n.name} ansible_host={n.address} ansible_port={n.port} ansible_user={n.user} "
                         f"ansible_python_interpreter={NODE_PYTHON} gpu_count=0" for n in map(cluster.node, names)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fleet_options_and_extra_vars_reach_ansible(sshd_cluster, node_python, tmp_path):
    inv = _plain_inventory(sshd_cluster, tmp_path / "hosts.ini", ["node01", "node02"])
    base = [sys.executable, "-m", "clusterkit", "provision", "-i", str(inv), "--check", "--tags", "preflight",
            "--private-key", str(sshd_cluster.client_key), "--timeout", "120"]
    empty = tmp_path / "empty_known_hosts"
    empty.touch()
    refused = subprocess.run(base + ["--run-dir", str(tmp_path / "refused"), "--known-hosts", str(empty)],
                             capture_output=True, text=True, timeout=200)
    assert refused.returncode == 1, refused.stdout[-2000:] + refused.stderr[-2000:]
    rows = [line for line in refused.stdout.splitlines() if line.startswith("│ node0")]
    assert len(rows) == 2 and all("unreachable" in r for r in rows), refused.stdout
    [pdd] = [d for d in (tmp_path / "refused").iterdir() if d.is_dir()]
    log = (pdd / "artifacts" / "provision" / "stdout").read_text()
    assert "Host key verification failed" in log, log[-3000:]
    assert empty.read_text() == ""       # nothing was accepted into it
    # the hosts to run again, for --limit @failed.txt
    assert (tmp_path / "refused" / "failed.txt").read_text().split() == ["node01", "node02"]
    assert f"--limit @{tmp_path / 'refused' / 'failed.txt'}" in refused.stderr

    ok = subprocess.run(base + ["--run-dir", str(tmp_path / "ok"), "--known-hosts", str(sshd_cluster.known_hosts),
                                "-f", "2", "-vv", "-e", "preflight_min_free_gib=999999"],
                        capture_output=True, text=True, timeout=200)
    # connected (known host, --identity's key), then preflight read the -e value: no disk has that much
    assert ok.returncode == 1, ok.stdout[-2000:] + ok.stderr[-2000:]
    assert "less than the 999999 GiB needed" in ok.stdout
    assert "unreachable" not in "".join(line for line in ok.stdout.splitlines() if line.startswith("│ node0"))
    [pdd] = [d for d in (tmp_path / "ok").iterdir() if d.is_dir()]
    command = json.loads((pdd / "artifacts" / "provision" / "command").read_text())["command"]
    assert command[command.index("--forks") + 1] == "2" and "-vv" in command
    assert "999999" not in " ".join(command)          # -e values go through runner's extravars file


def test_diff_names_the_destination_and_each_batch_is_reported_once(sshd_cluster, node_python, tmp_path):
    """`provision --check --diff`: every diff is headed by the file on the node (here under a staging
    root), never by Ansible's temporary copy, and the batch's report is printed once."""
    inv = _inventory(sshd_cluster, tmp_path / "hosts.ini", {
        "node03": {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8, "nccl_socket_ifname": "eth0",
                   "preflight_sysfs_root": str(_fake_sysfs(tmp_path / "sys", 8, "10de:2330", 4, []))}})
    root = tmp_path / "root"
    extra = [x for k, v in {"clusterkit_root": str(root), **UBUNTU}.items() for x in ("-e", f"{k}={v}")]
    r = subprocess.run([sys.executable, "-m", "clusterkit", "provision", "-i", str(inv), "-C", "-D", "-t", "config",
                        "--run-dir", str(tmp_path / "runs"), "--timeout", "240", *extra],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    heads = [line.strip() for line in r.stdout.splitlines() if line.strip().startswith(("--- ", "+++ "))]
    assert f"--- {root}/etc/nccl.conf (before)" in heads and f"+++ {root}/etc/nccl.conf (after)" in heads, heads
    assert not [h for h in heads if ".ansible/tmp" in h or "ansible-tmp" in h or "ansible-local" in h], heads
    assert r.stdout.count("batch 1: ansible-runner") == 1 and r.stderr.count("clusterkit: check ok") == 1
    assert not (tmp_path / "runs" / "failed.txt").exists()       # nothing failed: no file to rerun from
    assert not root.exists() or not (root / "etc" / "nccl.conf").exists()   # check mode wrote nothing


def _apt_reads_sources(root: Path) -> subprocess.CompletedProcess:
    """Real apt reading the sources under a staging root, as apt-get update would on the node."""
    for d in ("var/lib/dpkg", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dpkg/status").touch()
    return subprocess.run(["apt-cache", "-o", f"Dir={root}", "policy"], capture_output=True, text=True, timeout=60)


def test_config_run_in_a_staging_root_is_idempotent(sshd_cluster, node_python, tmp_path):
    """A node that already has cuda-keyring's source (vendor images do): the run reuses it, so apt still
    reads its sources; persistence mode is on through a drop-in; a second run changes nothing."""
    if shutil.which("apt-cache") is None:
        pytest.skip("apt-cache not installed")
    inv = _inventory(sshd_cluster, tmp_path / "hosts.ini", {
        "node03": {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8, "nccl_socket_ifname": "eth0",
                   "preflight_sysfs_root": str(_fake_sysfs(tmp_path / "sys", 8, "10de:2330", 4, []))}})
    root = tmp_path / "root"
    keyring_list = root / "etc/apt/sources.list.d/cuda-ubuntu2204-x86_64.list"
    keyring_list.parent.mkdir(parents=True)
    # what cuda-keyring 1.1 installs (NVIDIA's CUDA installation guide, network repository)
    keyring_list.write_text("deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] "
                            "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/ /\n")
    assert _apt_reads_sources(root).returncode == 0
    extra = {"clusterkit_root": str(root), **UBUNTU}
    first = run_playbook(inv, tmp_path / "run1", ["node03"], tags="config", extravars=extra, timeout_s=240)
    assert first.status == "successful", first.summaries["node03"].messages
    assert first.summaries["node03"].changed > 5
    apt = _apt_reads_sources(root)
    assert apt.returncode == 0 and "Conflicting values set for option Signed-By" not in apt.stderr, apt.stderr
    assert not (root / "etc/apt/sources.list.d/clusterkit-cuda.sources").exists()
    conf = (root / "etc/nccl.conf").read_text()
    assert "NCCL_SOCKET_IFNAME=eth0" in conf and "NCCL_NVLS_ENABLE=1" in conf
    assert "iommu=pt" in (root / "etc/default/grub.d/90-clusterkit.cfg").read_text()
    assert "Pin: version 570.172.08-*" in (root / "etc/apt/preferences.d/clusterkit-nvidia").read_text()
    dropin = (root / "etc/systemd/system/nvidia-persistenced.service.d/clusterkit-persistence-mode.conf").read_text()
    exec_lines = [line for line in dropin.splitlines() if line.startswith("ExecStart=")]
    assert exec_lines == ["ExecStart=", "ExecStart=/usr/bin/nvidia-persistenced --verbose"]   # reset, then no --no-persistence-mode
    for tool in ("usr/local/sbin/clusterkit-disable-acs", "usr/local/bin/gpu_burn"):
        path = root / tool
        assert path.stat().st_mode & stat.S_IXUSR
        assert subprocess.run(["sh", "-n", str(path)]).returncode == 0
    assert "exec ./gpu_burn" in (root / "usr/local/bin/gpu_burn").read_text()
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
