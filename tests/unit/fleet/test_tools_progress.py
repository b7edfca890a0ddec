"""Which driver a probe needs (so a hung one is tried once), and the progress line."""

from __future__ import annotations

import pytest

from clusterkit.analysis import ProfileResolver
from clusterkit.fleet.collect import plan_commands
from clusterkit.fleet.progress import FleetProgress, duration
from clusterkit.fleet.tools import needs, tool_of
from clusterkit.inventory import HostSpec
from clusterkit.probes.registry import Command
from clusterkit.suites import load_suite


@pytest.fixture(scope="module")
def planned() -> dict[str, Command]:
    """The real probes of the full suite for an 8-GPU node with a RoCE interface and an HCA."""
    h = HostSpec(name="gpu01", address="10.0.0.1", gpu_model="h100-sxm5-80gb", gpu_count=8, ib_devices=["mlx5_0"],
                 roce_interfaces=["eth2"])
    return {c.path: c for c in plan_commands([h], load_suite("full"), ProfileResolver())["gpu01"]}


def test_every_probe_behind_the_nvidia_driver_is_recognized(planned):
    nvidia = {p for p, c in planned.items() if (needs(c)[1] or None) and needs(c)[1].key == "nvidia"}
    assert {"gpu/nvidia-smi-q.txt", "gpu/query-gpu.csv", "gpu/topo.txt", "gpu/nvml.json", "gpu/nvml-after.json",
            "gpu/power-trace.csv", "gpu/dcgmi-diag.txt", "nccl/all_reduce_perf.txt"} <= nvidia
    bmc = {p for p, c in planned.items() if needs(c)[1] is not None and needs(c)[1].key == "bmc"}
    assert bmc == {"host/ipmitool-sdr-psu.txt", "host/ipmitool-sel.txt", "host/ipmitool-sdr-v.txt",
                   "host/ipmitool-sel-info.txt"}
    # tools that do not go through the GPU driver are never skipped because nvidia-smi hung
    for path in ("host/uname.txt", "host/dmesg.txt", "fabric/counters-before.json", "stack/versions.txt",
                 "gpu/fabricmanager.txt"):
        assert needs(planned[path])[1] is None, path
    assert tool_of(planned["gpu/nvml.json"]) == "nvml"
    assert tool_of(planned["nccl/all_reduce_perf.txt"]) == "all_reduce_perf"     # `env VAR=... sh -c` + script


def test_env_prefix_and_paths_name_the_tool_itself():
    assert tool_of(Command("x", ["env", "-i", "A=1", "B=2", "/usr/bin/nvidia-smi", "-q"])) == "nvidia-smi"
    assert tool_of(Command("x", ["/opt/ipmitool", "sel"])) == "ipmitool"
    assert tool_of(Command("x", ["python3", "-"], stdin=b"print(1)\n")) == "python3"
    assert tool_of(Command("x", [])) == ""


def test_duration_is_short_and_readable():
    assert [duration(s) for s in (0, 44.6, 60, 125, 3725)] == ["0s", "45s", "1m00s", "2m05s", "1h02m"]


def test_progress_names_phase_hosts_eta_and_the_slowest_host_and_step():
    now = [0.0]
    p = FleetProgress(4, clock=lambda: now[0])
    p("", "phase", "collecting")
    for h in ("a", "b", "c"):
        p(h, "connect", "start")
    assert p.eta_s() is None and "ETA ?" in p.line()
    now[0] = 1.0
    p("c", "connect", "ok")
    now[0] = 2.0
    p("a", "host/uname.txt", "start")
    p("b", "gpu/nvidia-smi-q.txt", "start")
    now[0] = 10.0
    p("a", "host/uname.txt", "ok")
    p("a", "done", "ok")
    now[0] = 40.0
    assert p.slowest() == ("b", "gpu/nvidia-smi-q.txt", 38.0)
    line = p.line()
    assert line.startswith("collecting: 1/4 hosts done, 40s elapsed, ETA ")
    assert line.endswith("slowest: b gpu/nvidia-smi-q.txt (38s)")
    # a took 10 s; b and c have run 40 s: overdue, so only d (not started) is left: one more wave of 10 s
    assert p.eta_s() == 10.0
    assert p.host_line("a") == "a done: ok in 10s (1/4 hosts)"
    p("c", "host/dmesg.txt", "start")
    p("b", "done", "timeout")
    assert p.slowest() == ("c", "host/dmesg.txt", 0.0)


def test_without_a_terminal_progress_is_a_line_per_host_and_one_every_interval(capsys):
    import time

    from clusterkit.cli.verify import _LogProgress

    with _LogProgress(FleetProgress(2), every_s=0.05) as view:
        view("", "phase", "collecting")
        view("a", "connect", "start")
        view("b", "gpu/nvidia-smi-q.txt", "start")
        view("a", "done", "ok")
        time.sleep(0.3)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("clusterkit: a done: ok in ") and err[0].endswith("(1/2 hosts)")
    ticks = [x for x in err[1:] if x.startswith("clusterkit: collecting: 1/2 hosts done")]
    assert ticks and "slowest: b gpu/nvidia-smi-q.txt" in ticks[-1]
