"""The burn-tool fallback load really stops and continues its process group on the schedule's edges."""

import sys
import time

from clusterkit.node_scripts.gpu_node import BurnToolLoad, Schedule, default_load


def _state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_burn_tool_follows_the_square_wave(tmp_path):
    tool = tmp_path / "gpu_burn"
    # stands in for gpu_burn: a child process that spins (like one worker per GPU) for argv[1] seconds
    tool.write_text(f"#!{sys.executable}\nimport os, sys, time\nend = time.time() + float(sys.argv[1])\n"
                    "os.fork()\nwhile time.time() < end: pass\n")
    tool.chmod(0o755)
    load = BurnToolLoad(8, tool=str(tool))
    sched = Schedule(time.monotonic() + 0.3, period_s=1.0, duration_s=3.0)
    load.start(sched)
    try:
        seen = {"idle": set(), "load": set()}
        while time.monotonic() < sched.end - 0.05:
            now = time.monotonic()
            if abs(((now - sched.t0) % 0.5) - 0.25) < 0.1:     # mid-half, away from the edges
                seen[sched.phase(now)].add(_state(load.proc.pid))
            time.sleep(0.02)
    finally:
        load.stop()
    assert seen["idle"] == {"T"}                 # stopped during every idle half
    assert seen["load"] and "T" not in seen["load"]
    assert load.proc.poll() is not None and load.errors == []


def test_no_load_generator_is_an_import_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setitem(sys.modules, "torch", None)   # import torch -> ImportError
    try:
        default_load(8)
    except ImportError as e:
        assert "gpu_burn" in str(e)
    else:
        raise AssertionError("expected ImportError")


def test_torch_load_runs_gemms_only_in_load_halves(monkeypatch):
    """TorchGemmLoad's threading and schedule, with a stand-in `torch` (no GPU here): every GPU thread
    initializes before the schedule starts, multiplies only in load halves, and stops at the end."""
    import threading
    import types

    stamps, lock = [], threading.Lock()

    class Mat:
        def __matmul__(self, other):
            with lock:
                stamps.append(time.monotonic())
            return self

    def sync(dev=None):
        time.sleep(0.002)   # a GEMM burst takes time on the GPU

    fake = types.SimpleNamespace(randn=lambda *a, **k: Mat(), bfloat16=None,
                                 cuda=types.SimpleNamespace(is_available=lambda: True, set_device=lambda d: None,
                                                            synchronize=sync))
    monkeypatch.setitem(sys.modules, "torch", fake)
    from clusterkit.node_scripts.gpu_node import TorchGemmLoad

    load = TorchGemmLoad(4)
    load.prepare()
    sched = Schedule(time.monotonic() + 0.1, period_s=0.6, duration_s=1.8)
    load.start(sched)
    time.sleep(2.0)
    load.stop()
    assert stamps and load.errors == [] and not any(t.is_alive() for t in load.threads)
    late = 0.06   # a burst decided just before an edge may be stamped after it on a busy machine
    assert all(sched.loaded(t) or sched.loaded(t - late) for t in stamps)
    assert {int((t - sched.t0) // 0.3) for t in stamps} >= {1, 3, 5}     # every load half was used
