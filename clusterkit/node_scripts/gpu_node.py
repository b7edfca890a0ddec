"""On-node GPU collector, run as `python3 - <verb> [options]` with this script on stdin.

clusterkit/probes/gpu.py sends clusterkit/probes/nvml_backend.py's source
followed by this file, so the node runs the same NVML code the tests import.
Verbs (stdout is JSON {bundle path: text}, the `files-json` output):
  snapshot   [--out gpu/nvml.json]                 -> gpu/nvml.json
  power-step --period S --duration S --hz N        -> gpu/power-trace.csv (+ .columns.json)
Both take `--fake N [--fake-fault brake_in_phase|brake_gpu=I|lost_gpu=I]` to
run against the fake backend (tests, benchmarks; never on a real node).
No `from __future__` here: it would not be first in the joined script.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

try:
    NvmlBackend  # type: ignore[used-before-def]  # defined when appended to nvml_backend.py
    columns_json  # type: ignore[used-before-def]  # and trace_columns.py
except NameError:
    from clusterkit.node_scripts.trace_columns import columns_json  # noqa: F401
    from clusterkit.probes.nvml_backend import (  # noqa: F401
        FakeBackend, GpuLost, NvmlBackend, NvmlUnavailable, PynvmlBackend, read_snapshot,
    )

TRACE_COLUMNS = "t_s,gpu,phase,power_w,sm_clock_mhz,clock_event_reasons,temp_c,error"


class Schedule:
    """Square wave shared by the load and the sampler: idle half, load half, ... from t0."""

    def __init__(self, t0: float, period_s: float, duration_s: float):
        self.t0, self.half, self.end = t0, period_s / 2.0, t0 + duration_s

    def phase(self, t: float) -> str:
        if t < self.t0 or t >= self.end:
            return "idle"
        return "load" if int((t - self.t0) // self.half) % 2 == 1 else "idle"

    def loaded(self, t: float) -> bool:
        return self.phase(t) == "load"

    def next_edge(self, t: float) -> float:
        if t < self.t0:
            return self.t0
        return self.t0 + (int((t - self.t0) // self.half) + 1) * self.half


class TorchGemmLoad:
    """One thread per GPU multiplying bf16 matrices during load halves; idle otherwise."""

    name = "torch-gemm"

    def __init__(self, count: int, size: int = 8192):
        os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # CUDA index = NVML index
        import torch  # noqa: F401  (ImportError -> no load generator)

        if not torch.cuda.is_available():
            raise ImportError("PyTorch is installed without CUDA")

        self.torch, self.count, self.size = torch, count, size
        self.stop_flag = threading.Event()
        self.go = threading.Event()       # set by start(): the schedule exists
        self.sched = None
        self.threads = []
        self.errors = []
        self.ready = threading.Semaphore(0)

    def prepare(self, timeout_s: float = 120.0) -> None:
        """CUDA context and matrices on every GPU BEFORE the schedule starts: a context takes seconds to
        create, and the GPUs would otherwise join the first load half at different instants."""
        for dev in range(self.count):
            t = threading.Thread(target=self._run, args=(dev,), daemon=True)
            t.start()
            self.threads.append(t)
        end = time.monotonic() + timeout_s
        for _ in range(self.count):
            if not self.ready.acquire(timeout=max(0.0, end - time.monotonic())):
                self.errors.append("a GPU did not finish CUDA initialization in time")
                break

    def _run(self, dev: int) -> None:
        torch = self.torch
        try:
            try:
                torch.cuda.set_device(dev)
                a = torch.randn(self.size, self.size, device=f"cuda:{dev}", dtype=torch.bfloat16)
                b = torch.randn(self.size, self.size, device=f"cuda:{dev}", dtype=torch.bfloat16)
                torch.cuda.synchronize(dev)
            finally:
                self.ready.release()
            self.go.wait()
            sched = self.sched
            while not self.stop_flag.is_set() and sched is not None:
                now = time.monotonic()
                if now >= sched.end:
                    break
                if sched.loaded(now):
                    for _ in range(4):
                        a @ b
                    torch.cuda.synchronize(dev)  # short bursts so the load stops on the edge
                else:
                    self.stop_flag.wait(min(0.005, max(0.0, sched.next_edge(now) - now)))
        except Exception as e:  # a GPU that falls off the bus raises here: the sampler records it
            self.errors.append(f"GPU {dev}: {type(e).__name__}: {e}")

    def start(self, sched: Schedule) -> None:
        if not self.threads:
            self.prepare()
        self.sched = sched
        self.go.set()

    def stop(self) -> None:
        self.stop_flag.set()
        self.go.set()
        for t in self.threads:
            t.join(timeout=10)


class BurnToolLoad:
    """Fallback without PyTorch: a CUDA burn tool (gpu_burn) started once for the whole test, its process
    group stopped (SIGSTOP) during idle halves and continued (SIGCONT) during load halves, so every GPU
    still steps at the same instants (restarting the tool per half would cost a CUDA init each time)."""

    name = "gpu-burn"

    def __init__(self, count: int, tool: "str | None" = None):
        self.tool = tool or shutil.which("gpu_burn") or shutil.which("gpu-burn")
        if not self.tool:
            raise ImportError("neither PyTorch nor a gpu_burn binary on PATH")
        self.stop_flag = threading.Event()
        self.errors = []
        self.proc = None
        self.thread = None

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            self.errors.append(f"{self.tool} exited early (code {self.proc.poll()})")

    def _drive(self, sched: Schedule) -> None:
        state = "idle"
        while not self.stop_flag.is_set():
            now = time.monotonic()
            if now >= sched.end or self.proc.poll() is not None:
                break
            want = sched.phase(now)
            if want != state:
                self._signal(signal.SIGCONT if want == "load" else signal.SIGSTOP)
                state = want
            self.stop_flag.wait(min(0.005, max(0.0, sched.next_edge(now) - now)))

    def start(self, sched: Schedule) -> None:
        seconds = int(sched.end - time.monotonic()) + 5
        self.proc = subprocess.Popen([self.tool, str(seconds)], cwd=os.path.dirname(self.tool) or None,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self._signal(signal.SIGSTOP)   # idle until the first load edge
        self.thread = threading.Thread(target=self._drive, args=(sched,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_flag.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        if self.proc is not None and self.proc.poll() is None:
            for sig in (signal.SIGCONT, signal.SIGTERM):
                self._signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(timeout=5)


def default_load(count: int):
    """PyTorch GEMM when importable, else a CUDA burn tool; ImportError when neither exists."""
    try:
        return TorchGemmLoad(count)
    except ImportError:
        return BurnToolLoad(count)


class FakeLoad:
    name = "fake"

    def __init__(self, backend: "FakeBackend"):
        self.backend, self.errors = backend, []

    def start(self, sched: Schedule) -> None:
        self.backend.load_at = sched.loaded

    def stop(self) -> None:
        self.backend.load_at = lambda t: False


def _uptime() -> "float | None":
    try:
        with open("/proc/uptime") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _fmt(v: object) -> str:
    return "" if v is None else str(v)


def _trace_files(text: str) -> dict:
    """The trace as people read it, and its columns form for analysis (clusterkit/node_scripts/trace_columns.py)."""
    return {"gpu/power-trace.csv": text, "gpu/power-trace.columns.json": columns_json(text)}


def power_step(backend, load_factory, period_s: float, duration_s: float, hz: float, lead_in_s: float = 1.0) -> dict:
    """Run the synchronized square wave and sample every GPU at `hz`; returns {bundle path: text}."""
    head = ["# clusterkit power-trace v1", f"# period_s: {period_s}", f"# duration_s: {duration_s}",
            f"# sample_hz_requested: {hz}"]
    try:
        backend.init()
    except NvmlUnavailable as e:
        return _trace_files("\n".join(head + [f"# error: NVML unavailable ({e})", TRACE_COLUMNS]) + "\n")
    try:
        n = backend.device_count()
        metas = []
        for i in range(n):
            try:
                s = backend.snapshot(i)
            except GpuLost:
                s = {}
            metas.append(s)
            head.append(f"# gpu: {i},{_fmt(s.get('pci_bus_id'))},{_fmt(s.get('serial'))},"
                        f"{_fmt(s.get('name')).replace(',', ' ')},{_fmt(s.get('power_limit_w'))}")
        sources = {backend.power_source(i) for i in range(n)}
        head.append(f"# power_source: {'instant' if sources == {'instant'} else 'average'}")
        try:
            load = load_factory(n)
        except ImportError as e:
            return _trace_files("\n".join(head + [f"# error: no load generator ({e}); install PyTorch or gpu_burn",
                                                   TRACE_COLUMNS]) + "\n")
        head.append(f"# load: {load.name}")
        if hasattr(load, "prepare"):
            load.prepare()
        sched = Schedule(time.monotonic() + lead_in_s, period_s, duration_s)
        up, mono = _uptime(), time.monotonic()
        head.append(f"# uptime_start_s: {_fmt(up)}")
        if up is not None:  # node uptime at the trace's t = 0, to place kernel-log Xids on the trace's time axis
            head.append(f"# uptime_t0_s: {up + (sched.t0 - mono):.3f}")
        rows = []
        lost = set()
        pcie_done = False
        interval = 1.0 / hz
        cpu0, wall0 = time.process_time(), time.monotonic()
        overruns = 0
        def event_times() -> dict:
            out = {}
            for i in range(n):
                if i not in lost:
                    try:
                        out[i] = backend.event_time_ns(i)
                    except GpuLost:
                        pass
            return out

        events0 = event_times()
        load.start(sched)
        try:
            tick = sched.t0 - min(lead_in_s, 0.5)
            while tick < sched.end:
                now = time.monotonic()
                if tick > now:
                    time.sleep(tick - now)
                elif now - tick > interval:
                    overruns += 1
                    tick = now  # fell behind: resynchronize instead of bursting
                t = time.monotonic()
                phase = sched.phase(t)
                for i in range(n):
                    if i in lost:
                        continue
                    try:
                        s = backend.sample(i)
                    except GpuLost:
                        lost.add(i)
                        rows.append(f"{t - sched.t0:.3f},{i},{phase},,,,,GPU_LOST")
                        continue
                    r = s.get("clock_event_reasons")
                    rows.append(f"{t - sched.t0:.3f},{i},{phase},{_fmt(s.get('power_w'))},{_fmt(s.get('sm_clock_mhz'))},"
                                f"{'' if r is None else hex(r)},{_fmt(s.get('temp_c'))},")
                # PCIe generation is only meaningful under load: read it once, mid-way through the first load half.
                if not pcie_done and phase == "load" and t - sched.t0 >= sched.half * 1.5:
                    for i in range(n):
                        if i not in lost:
                            try:
                                link = backend.pcie(i)
                            except GpuLost:
                                link = None
                            if link:
                                head.append(f"# pcie_under_load: {i},{link[0]},{link[1]},{link[2]},{link[3]}")
                    pcie_done = True
                tick += interval
        finally:
            load.stop()
        events1 = event_times()
        for i, after in sorted(events1.items()):
            before = events0.get(i)
            if after and before:
                for reason in sorted(after):
                    if reason in before:
                        head.append(f"# event_time_delta_ns: {i},{reason},{after[reason] - before[reason]}")
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - wall0
        head.append(f"# uptime_end_s: {_fmt(_uptime())}")
        head.append(f"# sampler_cpu_s: {cpu:.3f}")
        head.append(f"# sampler_wall_s: {wall:.3f}")
        head.append(f"# sampler_overruns: {overruns}")
        for e in load.errors:
            head.append(f"# load_error: {e.replace(chr(10), ' ')}")
        return _trace_files("\n".join(head + [TRACE_COLUMNS] + rows) + "\n")
    finally:
        backend.shutdown()


def _fake(args) -> "FakeBackend":
    kw = {}
    for f in args.fake_fault or []:
        key, _, val = f.partition("=")
        if key == "brake_in_phase":
            kw["brake_in_phase"] = True
        elif key in ("brake_gpu", "lost_gpu"):
            kw[key] = int(val)
        elif key == "lost_after_s":
            kw[key] = float(val)
        elif key == "brake_hidden":
            kw["brake_hidden"] = True
        elif key == "average_power":
            kw["instant"] = False
        elif key == "missing":
            kw["missing"] = val or "library_not_found"
    return FakeBackend(args.fake, **kw)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="clusterkit-gpu-node")
    ap.add_argument("verb", choices=["snapshot", "power-step"])
    ap.add_argument("--out", default="gpu/nvml.json")
    ap.add_argument("--period", type=float, default=4.0)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--hz", type=float, default=20.0)
    ap.add_argument("--fake", type=int, default=0, help="use N fake GPUs (tests only)")
    ap.add_argument("--fake-fault", action="append")
    args = ap.parse_args(argv)
    backend = _fake(args) if args.fake else PynvmlBackend()
    if args.verb == "snapshot":
        files = {args.out: json.dumps(read_snapshot(backend), indent=1, sort_keys=True) + "\n"}
    else:
        factory = (lambda n: FakeLoad(backend)) if args.fake else default_load
        files = power_step(backend, factory, args.period, args.duration, args.hz)
    json.dump(files, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
