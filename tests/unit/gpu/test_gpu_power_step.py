"""Power-step traces with known verdicts: clean, in-phase brake across the node, one GPU braking, one GPU dropping out.

Traces are synthesized in the sampler's format (a function of time per GPU),
so each case states exactly what happened and what the verdict must be."""

import json
import subprocess
import sys

import pytest

from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.checks._power_analysis import StepParams, analyze_trace
from clusterkit.evidence.bundle import Bundle
from clusterkit.parsers.power_trace import parse_power_trace
from clusterkit.plugins import load_all
from clusterkit.probes.gpu import node_script
from clusterkit.suites import Suite

load_all()
COLS = "t_s,gpu,phase,power_w,sm_clock_mhz,clock_event_reasons,temp_c,error"
PARAMS = StepParams(700.0, 0.75, 0.75, 0.25, 1.0, 15.0, 10.0)


def trace(n=8, period=4.0, duration=24.0, hz=20.0, brake=lambda i, t, se: False, lost=None, source="instant",
          power=lambda i: 690.0, limit=700.0, uptime0=5000.0):
    """brake(i, t, seconds since the load edge) -> bool; lost = {gpu: t}."""
    head = ["# clusterkit power-trace v1", f"# power_source: {source}", f"# uptime_start_s: {uptime0 - 1}",
            f"# uptime_t0_s: {uptime0}",
            f"# uptime_end_s: {uptime0 + duration}"]
    head += [f"# gpu: {i},00000000:{0x18 + 0x11 * i:02X}:00.0,SN{i:03d},NVIDIA H100 80GB HBM3,{limit}" for i in range(n)]
    rows, half, gone = [], period / 2, set()
    for k in range(int(duration * hz)):
        t = k / hz
        phase = "load" if int(t // half) % 2 else "idle"
        se = t - (t // half) * half
        for i in range(n):
            if i in gone:
                continue
            if lost and i in lost and t >= lost[i]:
                rows.append(f"{t:.3f},{i},{phase},,,,,GPU_LOST")
                gone.add(i)
                continue
            if phase == "idle":
                rows.append(f"{t:.3f},{i},idle,70,345,0x1,34,")
            elif brake(i, t, se):
                rows.append(f"{t:.3f},{i},load,300,900,0x88,55,")
            else:
                rows.append(f"{t:.3f},{i},load,{power(i)},1980,0x4,60,")
    return "\n".join(head + [COLS] + rows) + "\n"


def step_check(text, extra=None, declared=None):
    files = {"gpu/power-trace.csv": text, **(extra or {})}
    b = Bundle.virtual("n1", files, {"host": "n1", "declared": declared or {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8}})
    r = analyze_bundles([b], Suite("t", ["power.step"]), profiles=ProfileResolver())
    return r.nodes[0].checks[0]


def test_clean_trace_passes_with_figures():
    c = step_check(trace())
    assert c.status == "pass", c.summary
    assert c.metrics["power_step_min_load_w"] == 690.0 and c.metrics["power_step_gpus"] == 8
    assert c.metrics["power_step_sample_hz"] == pytest.approx(20.0, abs=0.1)
    assert "instant power" in c.summary


def test_in_phase_brake_is_node_power_delivery_not_gpu_fault():
    sdr = "PS1 Status | C8h | ok | 10.1 | Presence detected\nPS2 Status | C9h | ok | 10.2 | Presence detected, Power Supply AC lost\n"
    bios = "BIOS Information\n\tVersion: 1.9.2\n"
    c = step_check(trace(brake=lambda i, t, se: se < 0.4), {"host/ipmitool-sdr-psu.txt": sdr, "host/dmidecode-bios.txt": bios})
    fails = [f for f in c.findings if f.severity == "fail"]
    assert [f.code for f in fails] == ["POWER_NODE_DELIVERY"]          # no per-GPU fail
    node = fails[0]
    assert node.component.startswith("node power delivery")
    assert "8 of 8 GPUs" in node.message and node.observed == 6          # 6 load edges in 24 s at a 4 s period
    assert "PS2 Status: Power Supply AC lost" in node.action and "BIOS 1.9.2" in node.action
    assert "Do not RMA GPUs" in node.action
    assert not any(f.code == "POWER_BRAKE_UNDER_LOAD" for f in c.findings)


def test_one_gpu_braking_alone_points_at_that_gpu():
    c = step_check(trace(brake=lambda i, t, se: i == 5 and se < 0.6))
    assert c.status == "fail"
    assert [(f.code, f.component) for f in c.findings] == [("POWER_BRAKE_UNDER_LOAD", "GPU 5 (0000:6d:00.0, SN SN005)")]
    assert "this GPU" in c.findings[0].action


def test_one_gpu_dropping_out_with_xid79():
    dmesg = ("[ 5012.500000] NVRM: Xid (PCI:0000:4b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.\n"
             "[ 5012.510000] NVRM: GPU 0000:4b:00.0: GPU has fallen off the bus.\n")
    c = step_check(trace(lost={3: 12.6}), {"host/dmesg.txt": dmesg})
    drops = [f for f in c.findings if f.code == "POWER_GPU_DROPPED"]
    assert c.status == "fail" and len(drops) == 1
    assert drops[0].component.startswith("GPU 3 (0000:4b:00.0") and "Xid 79" in drops[0].observed
    assert "12.5 s" in drops[0].message                                  # the kernel log's instant, not the sampler's
    assert not any(f.code == "POWER_NODE_DELIVERY" for f in c.findings)
    assert not any(f.code == "POWER_TRACE_SLOW" for f in c.findings)     # a dropped GPU is not a slow sampler


def test_all_gpus_dropping_together_is_node_power():
    # every GPU lost within 0.2 s of each other: the node lost power, not four bad GPUs
    c = step_check(trace(n=4, lost={0: 10.1, 1: 10.1, 2: 10.2, 3: 10.3}),
                   declared={"gpu_model": "h100-sxm5-80gb", "gpu_count": 4})
    fails = [f for f in c.findings if f.severity == "fail"]
    assert [f.code for f in fails] == ["POWER_NODE_DELIVERY"] and "4 of 4 GPUs dropped out together" in fails[0].message
    assert sorted(f.code for f in c.findings if f.severity == "info" and f.code == "POWER_GPU_DROPPED") == ["POWER_GPU_DROPPED"] * 4


def test_low_power_and_average_source_and_own_limit():
    c = step_check(trace(power=lambda i: 480.0 if i == 2 else 690.0, source="average"))
    low = [f for f in c.findings if f.code == "POWER_LOAD_BELOW_TARGET"]
    assert [(f.component.split(" (")[0], f.observed, f.limit) for f in low] == [("GPU 2", 480.0, 525.0)]
    assert any(f.code == "POWER_TRACE_AVERAGED" and f.severity == "info" for f in c.findings)
    # A GPU capped at 500 W is judged against 0.75 x 500 (power.limits warns about the cap itself)
    c = step_check(trace(power=lambda i: 450.0, limit=500.0))
    assert c.status == "pass", c.summary


def test_analysis_is_pure_and_windowed():
    tr = parse_power_trace(trace(n=2, brake=lambda i, t, se: (i == 0 and 0.0 <= se < 0.3) or (i == 1 and 1.2 <= se < 1.5)))
    a = analyze_trace(tr, PARAMS)
    assert not a.in_phase_instants            # both brake, never in the same instant: two GPU findings, not the node
    assert [len(a.gpus[i].brakes) for i in (0, 1)] == [6, 6]


def _node(args):
    r = subprocess.run([sys.executable, "-", *args], input=node_script(), capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return json.loads(r.stdout)


def test_node_script_end_to_end_with_fake_backend_in_phase_brake():
    """The script `collect` sends (nvml_backend.py + gpu_node.py) really runs the schedule and the sampler."""
    files = _node(["power-step", "--fake", "8", "--period", "3", "--duration", "6", "--hz", "25",
                   "--fake-fault", "brake_in_phase"])
    files.update(_node(["snapshot", "--fake", "8"]))
    tr = parse_power_trace(files["gpu/power-trace.csv"])
    assert tr.power_source == "instant" and tr.meta["load"] == "fake" and len(tr.gpus) == 8
    assert all(g.pcie_under_load == (5, 5, 16, 16) for g in tr.gpus.values())
    c = step_check(files["gpu/power-trace.csv"], {"gpu/nvml.json": files["gpu/nvml.json"]})
    assert [f.code for f in c.findings if f.severity == "fail"] == ["POWER_NODE_DELIVERY"]
    assert c.metrics["power_step_sample_hz"] >= 20


def test_node_script_without_nvml_reports_instead_of_crashing():
    files = _node(["power-step", "--fake", "2", "--fake-fault", "missing=driver_not_loaded", "--duration", "1"])
    c = step_check(files["gpu/power-trace.csv"])
    assert c.status == "error" and "NVML unavailable" in c.summary
    snap = json.loads(_node(["snapshot"])["gpu/nvml.json"])
    assert snap["gpus"] == [] and snap["error"]["kind"] in ("library_not_found", "driver_not_loaded")


def test_clock_sag_and_hw_thermal_on_one_gpu():
    text = trace(n=4)
    lines = text.split("\n")
    out = []
    for ln in lines:
        parts = ln.split(",")
        if len(parts) == 8 and parts[1] == "1" and parts[2] == "load" and 7.5 <= float(parts[0]) < 7.8:
            parts[4], parts[5] = "1500", "0x0"          # clock drops without a power-cap reason: a sag
        if len(parts) == 8 and parts[1] == "2" and parts[2] == "load" and 11.5 <= float(parts[0]) < 11.7:
            parts[5] = "0x44"                           # HW thermal slowdown
        out.append(",".join(parts))
    c = step_check("\n".join(out), declared={"gpu_model": "h100-sxm5-80gb", "gpu_count": 4})
    got = {(f.code, f.severity, f.component.split(" (")[0]) for f in c.findings}
    assert got == {("POWER_CLOCK_SAG", "warn", "GPU 1"), ("POWER_HW_THERMAL_UNDER_LOAD", "fail", "GPU 2")}
    sag = next(f for f in c.findings if f.code == "POWER_CLOCK_SAG")
    assert sag.observed == 24.2 and sag.limit == 15.0


def test_loose_trace_takes_the_target_from_its_gpu_names():
    b = Bundle.virtual("trace.csv", {"gpu/power-trace.csv": trace(n=2, power=lambda i: 480.0)}, {"host": "trace.csv"})
    c = analyze_bundles([b], Suite("t", ["power.step"]), profiles=ProfileResolver(), loose=True).nodes[0].checks[0]
    low = [(f.observed, f.limit) for f in c.findings if f.code == "POWER_LOAD_BELOW_TARGET"]
    assert low == [(480.0, 525.0), (480.0, 525.0)]    # H100 80GB HBM3 -> h100-sxm5-80gb: 0.75 x 700 W
    assert not any(f.code == "POWER_TARGET_UNKNOWN" for f in c.findings)


def test_brakes_between_samples_seen_by_nvml_counters():
    """Brakes shorter than the sampling interval: only NVML's cumulative event-time counters grow."""
    files = _node(["power-step", "--fake", "4", "--period", "2", "--duration", "4", "--hz", "20",
                   "--fake-fault", "brake_hidden"])
    tr = parse_power_trace(files["gpu/power-trace.csv"])
    assert all(g.event_time_delta_ns["hw_power_brake"] == 40_000_000 for g in tr.gpus.values())  # 2 load edges x 20 ms
    assert not any((s.reasons or 0) & 0x80 for s in tr.samples)
    c = step_check(files["gpu/power-trace.csv"], declared={"gpu_model": "h100-sxm5-80gb", "gpu_count": 4})
    hidden = [f for f in c.findings if f.code == "POWER_BRAKE_BETWEEN_SAMPLES"]
    assert len(hidden) == 1 and hidden[0].component.startswith("node power delivery") and hidden[0].severity == "warn"
    assert "GPU 0: 40 ms" in hidden[0].evidence
    # one GPU alone: named, not the node
    one = trace(n=4).replace("# power_source: instant", "# power_source: instant\n# event_time_delta_ns: 2,hw_power_brake,5000000")
    c = step_check(one, declared={"gpu_model": "h100-sxm5-80gb", "gpu_count": 4})
    assert [(f.code, f.component.split(" (")[0], f.observed) for f in c.findings] == [("POWER_BRAKE_BETWEEN_SAMPLES", "GPU 2", 5.0)]
