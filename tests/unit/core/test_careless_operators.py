"""Operators make mistakes: reused evidence directories, broken history databases, `nan` in
an option, host names that are paths. Each gives a clear answer; none loses a result or
writes outside the output directory."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from clusterkit.fleet.collect import FleetOptions, collect_planned
from clusterkit.inventory import HostSpec


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clusterkit", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_a_reused_keep_evidence_directory_never_mixes_runs(tmp_path):
    keep = tmp_path / "evidence"
    first = _cli("verify", "--simulate", "--nodes", "4", "--seed", "1", "--keep-evidence", str(keep),
                 "--format", "json")
    assert first.returncode in (0, 1), first.stderr
    assert len(json.loads(first.stdout)["nodes"]) == 4
    second = _cli("verify", "--simulate", "--nodes", "2", "--seed", "2", "--keep-evidence", str(keep),
                  "--format", "json")
    assert second.returncode in (0, 1), second.stderr
    assert len(json.loads(second.stdout)["nodes"]) == 2          # not the 4 of the first run
    assert "is not empty; this run's evidence goes to" in second.stderr
    runs = [p for p in keep.iterdir() if p.name.startswith("run-")]
    assert len(runs) == 1 and len([p for p in runs[0].iterdir() if p.name != "_cluster"]) == 2
    assert stat.S_IMODE(runs[0].stat().st_mode) == 0o700


@pytest.mark.parametrize("bad", ["garbage", "directory"])
def test_the_report_is_written_before_the_history_and_a_history_failure_is_a_warning(tmp_path, bad):
    db = tmp_path / "history.db"
    if bad == "garbage":
        db.write_bytes(b"this is not an SQLite database, but it is 512 bytes long" * 10)
    else:
        db.mkdir()
    out = tmp_path / "report.json"
    r = _cli("verify", "--simulate", "--nodes", "2", "--history", str(db), "--format", "json", "-o", str(out))
    assert r.returncode in (0, 1), r.stderr                      # the run's verdict, not a config error
    assert len(json.loads(out.read_text())["nodes"]) == 2       # the report is there
    assert "warning: the result was not stored in the history" in r.stderr and str(db) in r.stderr


@pytest.mark.parametrize("option,value", [("--connect-timeout", "nan"), ("--connect-timeout", "inf"),
                                          ("--connect-timeout", "-1"), ("--deadline", "nan"),
                                          ("--deadline", "-5"), ("--forks", "-3")])
def test_numeric_options_reject_nan_infinity_and_negatives(tmp_path, option, value):
    inv = tmp_path / "inv.ini"
    inv.write_text("[gpu]\nn1 ansible_host=127.0.0.1 ansible_port=1\n")
    r = _cli("collect", "-i", str(inv), "--out", str(tmp_path / "out"), option, value, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert f"{option} must be a finite number" in r.stderr
    assert not (tmp_path / "out").exists()


def test_inventory_check_reports_names_that_could_escape_or_collide(tmp_path):
    inv = tmp_path / "inv.yml"
    inv.write_text(
        "all:\n  hosts:\n"
        "    ../../escape1: {ansible_host: 10.0.0.1}\n"
        "    /tmp/x: {ansible_host: 10.0.0.2}\n"
        "    _cluster: {ansible_host: 10.0.0.3}\n"
        "    gpu01: {gpu_model: ../../../tmp/x, gpu_count: 8}\n"
        "    gpu02: {ib_devices: '-h', ib_rate_gbps: 200, roce_interfaces: 'eth0;reboot', roce_rate_gbps: 100}\n"
        "    gpu03: {slurm_node: 'gpu[01-64]'}\n"
        "    gpu04: {ansible_host: 10.0.0.4}\n")
    r = _cli("inventory", "check", "-i", str(inv), timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    for host, var in (("../../escape1", "host name"), ("/tmp/x", "host name"), ("_cluster", "host name"),
                      ("gpu01", "gpu_model"), ("gpu02", "ib_devices"), ("gpu02", "roce_interfaces"),
                      ("gpu03", "slurm_node")):
        assert f"host {host}: {var}:" in r.stderr, (host, var, r.stderr)
    assert "gpu04" not in r.stderr
    v = _cli("verify", "-i", str(inv), timeout=60)
    assert v.returncode == 2 and "../../escape1" in v.stderr


@pytest.mark.parametrize("name", ["../escape", "/tmp/abs", "_cluster", ".hidden", "a/b"])
def test_no_host_name_leaves_the_output_directory(tmp_path, name):
    """Behind the inventory check, the bundle path itself refuses such names."""
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="cannot name a bundle directory"):
        collect_planned([HostSpec(name=name, address="127.0.0.1", port=1)], {}, out,
                        FleetOptions(known_hosts=tmp_path / "kh", accept_new_host_keys=True, connect_timeout_s=1))
    assert not any(p for p in tmp_path.rglob("*") if p.is_dir() and p.name in ("escape", "abs", "_cluster"))
    assert not Path("/tmp/abs").exists()
