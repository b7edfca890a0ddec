"""The GPU/power probes' real commands, run on this machine (no NVIDIA GPU, no BMC), as collect runs them on a node.

Commands run as planned (argv, stdin = the node script, timeout); their output is stored by the fleet's
rules (stdout when exit 0 or non-empty; `files-json` expanded; exit 127 = not installed, no file). The
verdict for this GPU-less machine must be: every gpu.*/power.* check `skip: no NVIDIA GPU`."""

import json
import os
import subprocess

import pytest

from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.evidence.bundle import Bundle, BundleWriter
from clusterkit.probes.registry import PROBES, ProbeEnv
from clusterkit.profiles import load_profile
from clusterkit.suites import load_suite

pytestmark = pytest.mark.integration


def _run_locally(cmd):
    try:
        p = subprocess.run(cmd.argv, input=cmd.stdin, capture_output=True, timeout=cmd.timeout_s)
        return p.returncode, p.stdout, p.stderr
    except FileNotFoundError:
        return 127, b"", f"{cmd.argv[0]}: command not found".encode()


def test_gpu_less_machine_collects_and_every_gpu_check_skips(tmp_path):
    if os.path.exists("/dev/nvidia0"):
        pytest.skip("this machine has an NVIDIA GPU")
    env = ProbeEnv("local", None, load_profile("base"), {"step_duration_s": 2})
    w = BundleWriter(tmp_path / "local", "local", declared={"gpu_count": 0})
    for name, probe in sorted(PROBES.items()):
        if not name.startswith(("gpu.", "power.")) or name == "gpu.dcgmi_diag":
            continue
        for cmd in probe.plan(env):
            if cmd.root and os.geteuid() != 0:
                continue
            rc, out, err = _run_locally(cmd)
            if rc != 127 and (rc == 0 or out.strip()):
                if cmd.output == "files-json":
                    for path, text in json.loads(out).items():
                        w.write(path, text)
                else:
                    w.write(cmd.path, out)
            w.record(cmd.path, " ".join(cmd.argv), rc, 0.0, stderr=err.decode(errors="replace"))
    w.finish()
    b = Bundle.open(tmp_path / "local")
    nvml = json.loads(b.text("gpu/nvml.json"))
    assert nvml["gpus"] == [] and nvml["error"]["kind"] in ("library_not_found", "driver_not_loaded")
    trace = b.text("gpu/power-trace.csv")
    assert "# error: NVML unavailable" in trace
    r = analyze_bundles([b], load_suite("full"), profiles=ProfileResolver())
    got = {c.id: (c.status, c.summary) for c in r.nodes[0].checks if c.id.startswith(("gpu.", "power."))}
    assert len(got) >= 13 and set(got.values()) == {("skip", "no NVIDIA GPU")}, got
