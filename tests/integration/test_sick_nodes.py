"""`clusterkit verify` on a fleet with sick nodes, against real sshd servers on loopback.

One run of the quick suite (probe timeout 2 s, deadline 20 s) over:
- node01, node02: healthy;
- gpuhang: `nvidia-smi` hangs (a wedged GPU): a fake one that sleeps, first on the node's PATH;
- allhang: every command the suite runs hangs (each tool on its PATH sleeps);
- endless: every command prints without end (sshd ForceCommand);
- mute: accepts TCP and never speaks SSH.
What a user relies on: the healthy nodes are not held up beyond one probe timeout, each sick node
is analyzed on what it gave, and the report puts the worst problems first with their action.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from clusterkit.fleet.collect import SYNC_SLACK_S
from clusterkit.render.table import render_table
from clusterkit.results import RunResult
from tests.support.sshd import SshdCluster

pytestmark = pytest.mark.integration

PROBE_TIMEOUT_S = 2.0
DEADLINE_S = 20.0
# every tool the quick suite runs on a node without GPUs declared (and `env`, `timeout`'s helpers)
SUITE_TOOLS = ("uname", "cat", "date", "df", "dmesg", "sh", "python3", "nvidia-smi", "ipmitool", "dmidecode",
               "ibstat", "ibstatus", "iblinkinfo", "dcgmi", "ethtool", "mlxlink", "env")


def _fake_bin(d: Path, names: tuple[str, ...]) -> Path:
    """Tools that hang (killed by the node's `timeout` wrapper, which stays the real one)."""
    d.mkdir(parents=True)
    for n in names:
        (d / n).write_text("#!/bin/sh\nexec /bin/sleep 60\n")
        (d / n).chmod(0o755)
    os.symlink("/usr/bin/timeout", d / "timeout")
    return d


class MuteServer:
    """Accepts TCP connections and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture(scope="module")
def sick_run(sshd_available, tmp_path_factory):
    root = tmp_path_factory.mktemp("sick")
    mute = MuteServer()
    with SshdCluster(root / "sshd") as c:
        c.start(2)
        home = f"SetEnv HOME={c.home} "
        gpu = _fake_bin(root / "gpu-bin", ("nvidia-smi",))
        c.start(1, prefix="gpuhang", extra_config=home + f"PATH={gpu}:/usr/local/bin:/usr/bin:/bin")
        every = _fake_bin(root / "every-bin", SUITE_TOOLS)
        c.start(1, prefix="allhang", extra_config=home + f"PATH={every}")
        c.start(1, prefix="endless", extra_config="ForceCommand /bin/sh -c 'while :; do echo endless output "
                                                  "from a broken tool; /bin/sleep 0.01; done'")
        names = {n.name: n for n in c.nodes}
        inv = c.write_inventory(root / "hosts.ini")
        with inv.open("a") as f:
            f.write(f"mute01 ansible_host=127.0.0.1 ansible_port={mute.port} ansible_user=root\n")
        evidence = root / "evidence"
        r = subprocess.run([sys.executable, "-m", "clusterkit", "verify", "-i", str(inv), "--known-hosts",
                            str(c.known_hosts), "--format", "json", "--connect-timeout", "5", "--probe-timeout",
                            str(PROBE_TIMEOUT_S), "--deadline", str(DEADLINE_S), "--keep-evidence", str(evidence)],
                           capture_output=True, text=True, timeout=180)
    mute.close()
    assert r.returncode == 1, r.stderr[-3000:]
    run = RunResult.from_dict(json.loads(r.stdout))
    return {"run": run, "nodes": {n.host: n for n in run.nodes}, "evidence": evidence, "stderr": r.stderr,
            "names": sorted(names) + ["mute01"]}


def _meta(run: dict, host: str) -> dict:
    return json.loads((run["evidence"] / host / "bundle.json").read_text())


def _checks(run: dict, host: str) -> dict:
    return {c.id: c for c in run["nodes"][host].checks}


def test_healthy_nodes_are_not_held_up_beyond_one_probe_timeout(sick_run):
    for host in ("node01", "node02"):
        n = sick_run["nodes"][host]
        assert n.outcome == "ok" and n.status == "pass", (host, n.message)
        cmds = _meta(sick_run, host)["commands"]
        assert {c["status"] for c in cmds} == {"ok"}
        span = max(c["local_end_epoch"] for c in cmds) - min(c["local_start_epoch"] for c in cmds)
        busy = sum(c["duration_s"] for c in cmds)
        # the only wait: the load window's start, for a late host's command in flight (one probe timeout)
        assert span - busy <= PROBE_TIMEOUT_S + SYNC_SLACK_S + 3.0, (host, span, busy)
        assert "missed_sync" not in _meta(sick_run, host)


def test_a_hung_nvidia_smi_is_tried_once_and_the_node_analyzed_on_the_rest(sick_run):
    n = sick_run["nodes"]["gpuhang03"]
    assert n.outcome == "timeout" and "nvidia-smi" in n.message and "GPU or driver wedged" in n.message
    cmds = {c["path"]: c for c in _meta(sick_run, "gpuhang03")["commands"]}
    hung = [c for c in cmds.values() if c["status"] == "timeout"]
    assert [c["path"] for c in hung] == ["gpu/nvidia-smi-q.txt"] and hung[0]["driver"] == "nvidia"
    assert "timeout after 2 s" in hung[0]["message"]
    skipped = {p for p, c in cmds.items() if c["status"] == "skipped"}
    assert {"gpu/query-gpu.csv", "gpu/topo.txt", "gpu/dcgmi-diag.txt"} <= skipped
    assert all("nvidia-smi -q` hung" in cmds[p]["message"] for p in skipped)
    checks = _checks(sick_run, "gpuhang03")
    (driver,) = [f for f in checks["host.probes"].findings if f.code == "GPU_DRIVER_HUNG"]
    assert driver.severity == "fail" and driver.message.startswith("nvidia-smi hangs: GPU or driver wedged")
    # the rest of its evidence is judged: the host checks pass on it
    assert {c: checks[c].status for c in ("host.reachable", "host.kernel_log", "host.disk")} == \
        {"host.reachable": "pass", "host.kernel_log": "pass", "host.disk": "pass"}
    assert n.status == "fail"


def test_a_node_where_everything_hangs_is_bounded_by_the_deadline_and_left_out_of_the_window(sick_run):
    n = sick_run["nodes"]["allhang04"]
    assert n.outcome == "timeout"
    meta = _meta(sick_run, "allhang04")
    cmds = meta["commands"]
    ran = [c for c in cmds if c["status"] not in ("not_run", "skipped")]
    assert ran and all(c["status"] == "timeout" for c in ran)
    assert max(c["duration_s"] for c in ran) <= PROBE_TIMEOUT_S + 1.5
    assert max(c["local_end_epoch"] for c in ran) - min(c["local_start_epoch"] for c in ran) <= DEADLINE_S + 3
    not_run = [c["path"] for c in cmds if c["status"] == "not_run"]
    assert not_run and "host/dmesg.txt" in not_run, "the deadline came first: the rest is recorded as not run"
    assert meta["missed_sync"] and "left out of the start of the load window" in meta["missed_sync"][0]
    codes = {f.code for f in _checks(sick_run, "allhang04")["host.probes"].findings}
    assert {"PROBE_TIMEOUT", "COLLECTION_CUT_SHORT", "LOAD_WINDOW_MISSED"} <= codes
    skipped = {c.id: c.summary for c in n.checks if c.status == "skip"}
    assert "not collected: host/dmesg.txt (not run: " in skipped["host.kernel_log"]


def test_a_node_printing_without_end_is_cut_at_its_timeouts(sick_run):
    n = sick_run["nodes"]["endless05"]
    assert n.outcome == "timeout"
    cmds = _meta(sick_run, "endless05")["commands"]
    timed_out = [c for c in cmds if c["status"] == "timeout"]
    assert timed_out and max(c["duration_s"] for c in timed_out) <= PROBE_TIMEOUT_S + 1.5
    kept = (sick_run["evidence"] / "endless05" / "host" / "uname.txt").read_text()
    assert kept.startswith("endless output from a broken tool\n")      # what it printed is evidence
    assert n.checks, "analyzed on what it printed"


def test_a_mute_node_is_unreachable_and_in_what_to_fix_with_its_action(sick_run):
    n = sick_run["nodes"]["mute01"]
    assert n.outcome == "unreachable" and "no SSH banner" in n.message and not n.checks
    text = render_table(sick_run["run"], width=None)
    line = next(x for x in text.splitlines() if "NODE_UNREACHABLE" in x)
    assert "mute01" in line and "no SSH banner" in line
    assert "action: check that the node is powered on" in text.split(line + "\n", 1)[1].splitlines()[0]


def test_report_lists_sick_nodes_first_with_their_worst_problem(sick_run):
    text = render_table(sick_run["run"], width=160)
    rows = [x for x in text.splitlines() if x.startswith("│ ") and x[2:].split()[0] in sick_run["names"]]
    order = [r[2:].split()[0] for r in rows]
    assert order[-2:] == ["node01", "node02"], order          # passing nodes last
    gpu_row = next(r for r in rows if r[2:].startswith("gpuhang03"))
    assert "GPU_DRIVER_HUNG" in gpu_row
    heads = [x.split() for x in text.split("What to fix", 1)[1].splitlines() if x[:7].strip() in ("FAIL", "ERROR",
                                                                                              "WARN")]
    # the worst problems of the run first: a GPU tool that hung (on every node where one did: the first
    # driver probe of the hanging and the endless node hung too), then the node not reached
    assert [(h[1], h[3] if h[2] != "NODE_UNREACHABLE" else h[2]) for h in heads[:4]] == [
        ("allhang04", "GPU_DRIVER_HUNG"), ("endless05", "GPU_DRIVER_HUNG"), ("gpuhang03", "GPU_DRIVER_HUNG"),
        ("mute01", "NODE_UNREACHABLE")]


def test_progress_says_what_it_waits_for_when_stderr_is_not_a_terminal(sick_run):
    lines = [x for x in sick_run["stderr"].splitlines() if x.startswith("clusterkit: ")]
    done = [x for x in lines if " done: " in x]
    assert len(done) == len(sick_run["names"])
    assert any(x.startswith("clusterkit: mute01 done: unreachable") for x in done)
    assert done[-1].endswith(f"({len(sick_run['names'])}/{len(sick_run['names'])} hosts)")
