"""`clusterkit provision` refuses bad input with exit code 2 and one line, before touching any node."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _provision(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clusterkit", "provision", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("body, extra, message", [
    ("[gpu]\nn1 gpu_model=h100-sxm5-80gb gpu_count=8 fabric_manager_version=570.86.15\n", [],
     "host n1: fabric_manager_version: fabric manager 570.86.15 must equal the driver version 570.172.08"),
    ("[gpu]\nn1 gpu_count=0\n", ["--serial", "0"], "--serial must be at least 1"),
    ("[gpu]\nn1 gpu_count=0\n", ["--limit", "nope*"], "--limit 'nope*' matches no host"),
    ("[bastion]\nb1\n", [], "no host to provision"),
    ("[gpu]\nn1 gpu_count=0\n", ["-e", "justaword"], "-e justaword: expected key=value, inline YAML/JSON or @FILE"),
    ("[gpu]\nn1 gpu_count=0\n", ["--concurrency", "0"], "--forks must be a finite number at least 1"),
])
def test_config_errors_exit_2_with_one_line(tmp_path, body, extra, message):
    inv = tmp_path / "hosts.ini"
    inv.write_text(body)
    r = _provision("-i", str(inv), "--check", "--run-dir", str(tmp_path / "runs"), *extra)
    assert r.returncode == 2, r.stdout + r.stderr
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("clusterkit: error: ") and message in line
    assert not (tmp_path / "runs").exists()   # nothing ran
