"""`clusterkit check --local` and its local runner: timeouts that kill, capped output, the budget,
Slurm exit codes, own-node drain rules; the srun launcher's pieces that need no Slurm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clusterkit.errors import ConfigError
from clusterkit.evidence.bundle import Bundle
from clusterkit.fleet.local import collect_local, node_spec, run_command
from clusterkit.fleet.srun import SrunOptions, _inventory_json, _said_about, select_hosts
from clusterkit.inventory import HostSpec, Inventory
from clusterkit.probes.registry import PHASE_AFTER, PHASE_INFO, PHASE_LOAD, Command
from clusterkit.slurm import NodeState, parse_sinfo, settle_own_node
from tests.node_roots import GPU_LOST_SMI, XID79_DMESG, NodeRoots, SYSTEM_PATH


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ---- the local runner --------------------------------------------------------------------------

def test_a_command_past_its_timeout_is_killed_with_its_children(tmp_path):
    pidfile = tmp_path / "child.pid"
    t = time.monotonic()
    r = run_command(["sh", "-c", f'sleep 30 & echo $! > {pidfile}; wait'], timeout_s=0.5)
    assert time.monotonic() - t < 4
    assert r.status == "timeout" and r.exit_code is None and "killed" in r.message
    child = int(pidfile.read_text())
    for _ in range(50):                      # the SIGKILL reached the whole process group
        if not _alive(child):
            break
        time.sleep(0.05)
    assert not _alive(child)


def test_output_is_capped_while_read_and_stdin_is_fed():
    r = run_command(["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x"], timeout_s=20, max_bytes=1000)
    assert r.status == "ok" and r.exit_code == 0 and r.stdout == b"x" * 1000 and r.truncated
    r = run_command([sys.executable, "-c", "import sys; print(len(sys.stdin.buffer.read()))"], timeout_s=20,
                    stdin=b"y" * 5_000_000)
    assert r.stdout == b"5000000\n" and not r.truncated


def test_missing_tool_failed_tool_and_killed_tool_are_evidence_not_exceptions():
    r = run_command(["clusterkit-no-such-tool", "-q"], timeout_s=5)
    assert r.exit_code == 127 and b"command not found" in r.stderr
    r = run_command(["sh", "-c", "echo partial; echo bad >&2; exit 3"], timeout_s=5)
    assert (r.status, r.exit_code, r.stdout, r.stderr) == ("ok", 3, b"partial\n", b"bad\n")
    r = run_command(["sh", "-c", "kill -9 $$"], timeout_s=5)
    assert r.status == "error" and r.exit_code is None and "signal 9" in r.message


def test_budget_cuts_the_running_command_and_skips_what_does_not_fit(tmp_path):
    spec = HostSpec("n1", "localhost", gpu_count=0)
    cmds = [Command("host/first.txt", ["echo", "one"], timeout_s=10, phase=PHASE_INFO),
            Command("gpu/power-trace.csv", ["sleep", "30"], timeout_s=240, phase=PHASE_LOAD),   # a load test
            Command("host/hangs.txt", ["sleep", "30"], timeout_s=60, phase=PHASE_AFTER),
            Command("host/slow.txt", ["sleep", "30"], timeout_s=60, phase=PHASE_AFTER),
            Command("host/last.txt", ["echo", "two"], timeout_s=10, phase=PHASE_AFTER)]
    t = time.monotonic()
    run = collect_local(spec, cmds, tmp_path, budget_s=2.0)
    assert time.monotonic() - t < 6
    assert run.over_budget == ["gpu/power-trace.csv", "host/last.txt"]
    b = Bundle.open(tmp_path / "n1")
    assert b.outcome == "ok" and b.text("host/first.txt") == "one\n" and not b.exists("host/last.txt")
    rec = {c["path"]: c for c in b.meta["commands"]}
    assert rec["gpu/power-trace.csv"]["status"] == "skipped" and "load test" in rec["gpu/power-trace.csv"]["message"]
    # half the budget is all one command gets: past it, it hung (its own timeout, not the budget's end)
    hangs = rec["host/hangs.txt"]
    assert hangs["status"] == "timeout" and not hangs.get("cut_by_deadline") and 0.9 < hangs["duration_s"] < 1.5
    assert rec["host/slow.txt"]["status"] == "timeout" and rec["host/slow.txt"]["cut_by_deadline"]
    assert rec["host/last.txt"]["status"] == "skipped" and "budget was spent" in rec["host/last.txt"]["message"]
    assert b.meta["transport"]["launcher"] == "local" and b.meta["over_budget"] == run.over_budget
    # the next run in the same directory replaces the bundle: nothing of this run's is left over
    again = collect_local(spec, [Command("host/other.txt", ["echo", "x"], timeout_s=10)], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n1"] and again.root == tmp_path / "n1"
    assert not (tmp_path / "n1" / "host" / "first.txt").exists() and (tmp_path / "n1" / "host" / "other.txt").exists()
    (tmp_path / "mine").mkdir()
    with pytest.raises(ConfigError, match="not a clusterkit bundle"):
        collect_local(HostSpec("mine", "localhost"), [], tmp_path)


def test_the_node_is_found_in_the_inventory_by_slurm_node_or_name(tmp_path):
    inv = tmp_path / "inv.json"
    inv.write_text(json.dumps({"all": {"hosts": {
        "gpu-a": {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8, "slurm_node": "node7"},
        "gpu-b": {}}}}))
    assert node_spec("node7", inv).name == "gpu-a" and node_spec("node7", inv).gpu_count == 8
    assert node_spec("gpu-b", inv).name == "gpu-b"
    assert node_spec("anything", None).name == "anything"
    with pytest.raises(ConfigError, match="no host is this node 'node9'"):
        node_spec("node9", inv)


# ---- the CLI: exit codes for Slurm ---------------------------------------------------------------

def _check(roots: NodeRoots, node: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{roots.root / node / 'bin'}:{SYSTEM_PATH}", SLURMD_NODENAME=node)
    return subprocess.run([sys.executable, "-m", "clusterkit", "check", "--local", *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def roots(tmp_path) -> NodeRoots:
    r = NodeRoots(tmp_path / "nodes", ["good", "xid", "lost", "garbled"])
    r.tool("xid", "dmesg", XID79_DMESG)
    r.tool("lost", "nvidia-smi", GPU_LOST_SMI, exit_code=15)
    r.tool("garbled", "dmesg", "\x00\x01\x02 binary \x00" * 20)
    return r


def test_exit_codes_fit_slurm(roots, tmp_path):
    good = _check(roots, "good")
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.startswith("clusterkit check good: PASS")
    bad = _check(roots, "xid")
    assert bad.returncode == 1
    assert "fail  evidence.fatal_signatures: GPU_XID_79 GPU at PCI 0000:1b:00.0" in bad.stdout
    assert _check(roots, "lost").returncode == 1
    # a check that could not judge (unusable evidence) is reported but fails nothing
    garbled = _check(roots, "garbled")
    assert garbled.returncode == 0 and "error host.kernel_log" in garbled.stdout
    usage = _check(roots, "good", "--budget", "-1")
    assert usage.returncode == 2 and "--budget" in usage.stderr
    no_local = subprocess.run([sys.executable, "-m", "clusterkit", "check"], capture_output=True, text=True, timeout=60)
    assert no_local.returncode == 2 and "--local" in no_local.stderr


def test_a_hung_nvidia_smi_fails_the_node_within_the_budget(roots, tmp_path):
    p = roots.root / "good" / "bin" / "nvidia-smi"
    p.write_text("#!/bin/sh\nexec sleep 120\n")       # a wedged GPU: nvidia-smi never returns
    p.chmod(0o755)
    t = time.monotonic()
    r = _check(roots, "good", "--budget", "6", "--keep-evidence", str(tmp_path / "kept"))
    assert time.monotonic() - t < 30
    assert r.returncode == 1 and "GPU_DRIVER_HUNG" in r.stdout, r.stdout + r.stderr
    cmds = json.loads((tmp_path / "kept" / "good" / "bundle.json").read_text())["commands"]
    hung = [c for c in cmds if c["status"] == "timeout"]
    assert len(hung) == 1 and hung[0]["driver"] == "nvidia" and hung[0]["duration_s"] < 5
    assert any(c["status"] == "skipped" and "hung on this node" in c["message"] for c in cmds)


def test_keep_evidence_and_collect_only_write_the_bundle(roots, tmp_path):
    kept = tmp_path / "kept"
    r = _check(roots, "xid", "--keep-evidence", str(kept), "--format", "json")
    assert r.returncode == 1 and json.loads(r.stdout)["nodes"][0]["host"] == "xid"
    assert "GPU_XID_79" in r.stderr                         # the summary still reaches the log
    assert (kept / "xid" / "host" / "dmesg.txt").read_text() == XID79_DMESG
    only = tmp_path / "shared"
    r = _check(roots, "xid", "--collect-only", str(only))
    assert r.returncode == 0 and r.stdout.startswith("xid: ") and f"-> {only / 'xid'}" in r.stdout
    meta = json.loads((only / "xid" / "bundle.json").read_text())
    assert meta["host"] == "xid" and any(c["path"] == "host/dmesg.txt" for c in meta["commands"])
    assert _check(roots, "xid", "--collect-only", str(only), "--drain").returncode == 2


def test_the_node_suite_skips_load_tests_and_the_subnet_walk(roots):
    from clusterkit.analysis import ProfileResolver
    from clusterkit.fleet.collect import plan_commands
    from clusterkit.suites import load_suite

    spec = HostSpec("n", "n", gpu_model="h100-sxm5-80gb", gpu_count=8, ib_devices=["mlx5_0"], ib_rate_gbps=400)
    paths = {c.path for c in plan_commands([spec], load_suite("node"), ProfileResolver())["n"]}
    assert {"gpu/nvml.json", "fabric/ibstat.txt", "host/dmesg.txt", "host/ipmitool-sdr-psu.txt"} <= paths
    assert not paths & {"gpu/power-trace.csv", "nccl/all_reduce_perf.txt", "gpu/dcgmi-diag.txt",
                        "fabric/iblinkinfo.txt", "fabric/mlxlink-mlx5_0.txt"}


# ---- own-node drain: the burn-in's rules ------------------------------------------------------------

class FakeSlurm:
    """Records calls; the real scontrol/sinfo run in tests/integration/burnin/test_slurm_node_checks.py."""

    def __init__(self, states: dict[str, NodeState]):
        self.states = states
        self.calls: list[tuple] = []

    def nodes(self, *names):
        return {n: st for n, st in self.states.items() if not names or n in names}

    def drain(self, node, reason):
        self.calls.append(("drain", node))
        self.states[node] = NodeState(node, "drained", reason)

    def resume(self, node):
        self.calls.append(("resume", node))
        self.states[node] = NodeState(node, "idle", "")


def test_own_node_is_drained_resumed_only_when_ours_and_never_someone_elses():
    sl = FakeSlurm({"n1": NodeState("n1", "idle", ""), "n2": NodeState("n2", "drained", "RMA 7"),
                    "n3": NodeState("n3", "drained", "clusterkit: GPU_XID_79 old")})
    assert [a.action for a, _ in settle_own_node(sl, "n1", "clusterkit: X y")] == ["drain"]
    assert [a.action for a, _ in settle_own_node(sl, "n2", "clusterkit: X y")] == ["skip"]
    assert [a.action for a, _ in settle_own_node(sl, "n2", None)] == ["skip"]      # healthy, not ours: left
    assert [a.action for a, _ in settle_own_node(sl, "n3", None)] == ["resume"]
    assert [a.action for a, _ in settle_own_node(sl, "n9", "clusterkit: X")] == ["skip"]
    assert sl.calls == [("drain", "n1"), ("resume", "n3")]


# ---- srun launcher pieces ---------------------------------------------------------------------------

def test_states_slurm_would_not_launch_on():
    st = parse_sinfo("a|idle|none\nb|drained|x\nc|idle*|none\nd|mixed|none\ne|down*|y\nf|idle$|none\n"
                     "g|idle~|none\nh|allocated|none\n")
    assert {n for n, s in st.items() if s.launchable} == {"a", "d", "f", "h"}


def test_srun_messages_are_attributed_to_their_node():
    said = ("0: node1: 17 commands -> /x/node1\nsrun: error: node3: task 2: Exited with exit code 127\n"
            "2: clusterkit: command not found\nsrun: error: node13: task 12: Exited with exit code 1\n")
    assert _said_about("node3", said) == ["srun: error: node3: task 2: Exited with exit code 127",
                                          "2: clusterkit: command not found"]
    assert _said_about("node1", said) == ["0: node1: 17 commands -> /x/node1"]     # not node13's lines


def test_nodes_get_their_declared_hardware_and_no_connection_details():
    h = HostSpec("gpu-a", "10.0.0.7", port=2222, user="ops", gpu_model="h100-sxm5-80gb", gpu_count=8,
                 ib_devices=["mlx5_0"], ib_rate_gbps=400, private_key_file="/root/.ssh/id", slurm_node="node7",
                 vars={"ansible_become_password": "hunter2"})
    doc = _inventory_json([h])
    assert doc == {"all": {"hosts": {"gpu-a": {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8, "ib_devices": ["mlx5_0"],
                                               "ib_rate_gbps": 400, "slurm_node": "node7"}}}}
    assert "hunter2" not in json.dumps(doc) and "10.0.0.7" not in json.dumps(doc)


class ListingSlurm:
    def hostnames(self, expr):
        return {"node[1-2]": ["node1", "node2"]}[expr]

    def partition_nodes(self, p):
        return ["node2", "node3"]

    def reservation_nodes(self, r):
        return []


def test_hosts_of_the_step():
    inv = Inventory("inv.ini", [HostSpec("a", "a", slurm_node="node1"), HostSpec("node3", "node3"),
                                HostSpec("c", "c", slurm_node="node9")])
    sl = ListingSlurm()
    assert [h.name for h in select_hosts(inv, SrunOptions(nodelist="node[1-2]"), sl)] == ["a"]
    assert [h.name for h in select_hosts(inv, SrunOptions(partition="gpu"), sl)] == ["node3"]
    assert [h.name for h in select_hosts(inv, SrunOptions(), sl)] == ["a", "node3", "c"]
    bare = select_hosts(None, SrunOptions(partition="gpu"), sl)
    assert [(h.name, h.slurm_node) for h in bare] == [("node2", "node2"), ("node3", "node3")]
    with pytest.raises(ConfigError, match="names no node"):
        select_hosts(None, SrunOptions(reservation="maint"), sl)
    with pytest.raises(ConfigError, match="needs an inventory"):
        select_hosts(None, SrunOptions(), sl)
