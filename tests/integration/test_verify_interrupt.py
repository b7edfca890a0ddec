"""SIGINT and SIGTERM during `clusterkit verify`: the run stops at once and still reports what it has.

The child starts with SIGINT ignored, as a background job of a non-interactive shell does:
clusterkit installs its own handlers, so Ctrl-C and `kill -INT` work however it was launched."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.sshd import SshdCluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fleet(sshd_available, tmp_path_factory):
    """node01 healthy; hang02 with an nvidia-smi that never answers. The suite has no load tests,
    so node01 is done while hang02 still waits on nvidia-smi (no load window to wait at)."""
    root = tmp_path_factory.mktemp("intr")
    (root / "suite.toml").write_text('checks = ["host.*", "gpu.inventory"]\n')
    fake = root / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\nexec /bin/sleep 120\n")
    (fake / "nvidia-smi").chmod(0o755)
    with SshdCluster(root / "sshd") as c:
        c.start(1)
        c.start(1, prefix="hang", extra_config=f"SetEnv HOME={c.home} PATH={fake}:/usr/local/bin:/usr/bin:/bin")
        yield c, c.write_inventory(root / "hosts.ini"), root / "suite.toml"


def _start(fleet, tmp_path: Path, *args: str) -> subprocess.Popen:
    c, inv, suite = fleet
    return subprocess.Popen(
        [sys.executable, "-m", "clusterkit", "verify", "-i", str(inv), "--known-hosts", str(c.known_hosts),
         "--suite", str(suite),
         "--connect-timeout", "5", "--probe-timeout", "60", "--keep-evidence", str(tmp_path / "evidence"), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))


def _wait_for_healthy_node(p: subprocess.Popen) -> list[str]:
    """Read progress until node01 is done (hang02 is then stuck in nvidia-smi)."""
    seen = []
    for line in p.stderr:
        seen.append(line)
        if line.startswith("clusterkit: node01 done"):
            return seen
    raise AssertionError("no progress line for node01: " + "".join(seen))


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_and_the_report_covers_what_was_collected(fleet, tmp_path, sig, code):
    report = tmp_path / "report.json"
    p = _start(fleet, tmp_path, "--format", "json", "--output", str(report))
    _wait_for_healthy_node(p)
    time.sleep(0.5)
    t0 = time.monotonic()
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert time.monotonic() - t0 < 15, "the hung nvidia-smi (120 s) must not be waited for"
    assert p.returncode == code, err
    name = signal.Signals(sig).name
    assert f"clusterkit: {name}: stopping" in err and "Traceback" not in err
    run = json.loads(report.read_text())
    assert run["interrupted"] == name
    nodes = {n["host"]: n for n in run["nodes"]}
    assert nodes["node01"]["outcome"] == "ok"
    hang = nodes["hang02"]
    assert hang["outcome"] == "interrupted" and name in hang["message"]
    assert "gpu/nvidia-smi-q.txt" in hang["message"]        # which probes were cut short
    checks = {c["id"]: c for c in hang["checks"]}            # analyzed: what is missing says why
    assert checks["host.reachable"]["summary"] == (f"not collected: host/uname.txt (not run: collection "
                                                   f"interrupted ({name}))")
    cut = [f for f in checks["host.probes"]["findings"] if f["code"] == "COLLECTION_CUT_SHORT"]
    assert cut and "gpu/nvidia-smi-q.txt" in cut[0]["message"]
    meta = json.loads((tmp_path / "evidence" / "hang02" / "bundle.json").read_text())
    cmds = {c["path"]: c for c in meta["commands"]}
    assert cmds["gpu/nvidia-smi-q.txt"]["status"] == "not_run"
    assert cmds["gpu/nvidia-smi-q.txt"]["message"].startswith("cut short after")
    ran = [c for c in meta["commands"] if c["status"] not in ("not_run", "skipped")]
    assert ran and all(c["local_end_epoch"] > 0 for c in ran)   # what ran before the signal is kept as it ran


def test_the_table_says_the_run_was_stopped(fleet, tmp_path):
    p = _start(fleet, tmp_path, "--format", "table")
    _wait_for_healthy_node(p)
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert "Collection stopped by SIGTERM: 1 host cut short (hang02)" in out
    assert "COLLECTION_CUT_SHORT" in out


def test_a_second_signal_aborts_at_once():
    """The first signal asks for a report; the second ends the process there and then (the report path
    of a real run is too quick to hit reliably, so the handlers are driven directly)."""
    script = """
import os, signal, sys, time
from clusterkit.cli.verify import _stoppable
with _stoppable() as stop:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)
    print("first:", stop.requested, stop.reason, flush=True)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)
print("not reached", flush=True)
"""
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert p.stdout == "first: True SIGINT\n"
    assert p.returncode == 130
    assert "SIGINT: stopping" in p.stderr and "SIGINT again: aborted, no report" in p.stderr
