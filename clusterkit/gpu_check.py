"""One prepared run that proves the GPU code paths on a real GPU machine (scripts/gpu-check.sh).

Steps, each with its own time limit, each ending `ok`, `skipped: <why>` or `failed: <why>`:
  1. environment   python, torch/CUDA, NVML, nvidia-smi, the GPUs seen
  2. nvidia-smi -q  and 3. the NVML snapshot (clusterkit's reader)
  4. gpu tests     `pytest -m gpu tests/gpu` (needs pytest)
  5. sampler       benchmarks/power_sampler.py --real: achieved sample rate and CPU cost
  6. power step    a short synchronized idle/GEMM square wave with the 10-20 Hz sampler
  7. NCCL          single-node all-reduce through clusterkit's torch fallback on the GPUs present
  8. analyze       the bundle of 2-7 analyzed as `clusterkit analyze` would (full suite)
Everything lands in the output directory: each step's output, bundle/, summary.json and
RESULTS-gpu.md (the figures, ready for benchmarks/RESULTS.md). On a machine without a GPU
every GPU step says it was skipped and why, and the run still ends with exit 0.

Needs only the standard library at import; each step imports what it uses (torch, pynvml,
pytest) and is skipped when that is missing, so the GPU path never needs paramiko, Ansible
or openpyxl.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
BUDGET_S = 480.0   # the whole run: a GPU machine may be lent for minutes only


@dataclass
class Step:
    name: str
    status: str = "pending"            # ok | skipped | failed
    why: str = ""
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)


class Run:
    def __init__(self, out: Path, budget_s: float = BUDGET_S):
        self.out = out
        self.t0 = time.monotonic()
        self.budget_s = budget_s
        self.steps: list[Step] = []
        self.facts: dict[str, Any] = {}
        self.bundle = out / "bundle"
        self._writer: Any = None

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.t0)

    def step(self, name: str, func: Callable[["Run", Step], None]) -> Step:
        s = Step(name)
        t = time.monotonic()
        if self.left() < 20:
            s.status, s.why = "skipped", "the run's time budget is spent"
        else:
            try:
                func(self, s)
                if s.status == "pending":
                    s.status = "ok"
            except Skip as e:
                s.status, s.why = "skipped", str(e)
            except Exception as e:   # one broken step must not stop the others
                s.status, s.why = "failed", f"{type(e).__name__}: {e}"
        s.seconds = round(time.monotonic() - t, 1)
        self.steps.append(s)
        print(f"[gpu-check] {name}: {s.status}" + (f" ({s.why})" if s.why else "")
              + (f" {json.dumps(s.figures)}" if s.figures else ""), flush=True)
        return s

    def save(self, name: str, text: str) -> Path:
        p = self.out / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    def put(self, path: str, text: str, command: str, exit_code: int) -> None:
        """Collected evidence goes into bundle/, laid out as `collect` lays it out."""
        from clusterkit.evidence.bundle import BundleWriter

        if self._writer is None:
            self._writer = BundleWriter(self.bundle, self.facts.get("host") or "gpu-check",
                                        declared={"gpu_count": self.facts.get("nvml_gpus") or 0})
        self._writer.write(path, text)
        self._writer.record(path, command, exit_code, 0.0)

    def finish_bundle(self) -> bool:
        if self._writer is None:
            return False
        self._writer.finish()
        return True

    def sh(self, argv: list[str], timeout_s: float, **kw: Any) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        return subprocess.run(argv, capture_output=True, text=True, timeout=min(timeout_s, max(5.0, self.left())),
                              cwd=REPO, env=env, **kw)


class Skip(Exception):
    """A step that cannot run here, and why."""


def _need_gpus(run: Run) -> int:
    n = int(run.facts.get("nvml_gpus") or 0)
    if n <= 0:
        raise Skip(run.facts.get("no_gpu_why") or "no NVIDIA GPU on this machine")
    return n


# ---- steps ----------------------------------------------------------------------------------------

def environment(run: Run, s: Step) -> None:
    f = run.facts
    f.update(python=sys.version.split()[0], machine=platform.machine(), host=platform.node(),
             nvidia_smi=shutil.which("nvidia-smi"))
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            f["nvml_gpus"] = pynvml.nvmlDeviceGetCount()
            f["driver"] = _str(pynvml.nvmlSystemGetDriverVersion())
            f["gpu_names"] = [_str(pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)))
                              for i in range(f["nvml_gpus"])]
        finally:
            pynvml.nvmlShutdown()
    except ImportError:
        f["nvml_gpus"], f["no_gpu_why"] = 0, "pynvml (nvidia-ml-py) is not installed: add its wheel"
    except Exception as e:
        f["nvml_gpus"], f["no_gpu_why"] = 0, f"NVML found no GPU ({type(e).__name__}: {e})"
    try:
        import torch

        f["torch"] = torch.__version__
        f["cuda_available"] = bool(torch.cuda.is_available())
        f["cuda_gpus"] = torch.cuda.device_count() if f["cuda_available"] else 0
    except ImportError:
        f["torch"], f["cuda_available"] = None, False
    s.figures = {k: f.get(k) for k in ("nvml_gpus", "driver", "torch", "cuda_available")}


def nvidia_smi(run: Run, s: Step) -> None:
    from clusterkit.parsers.nvidia_smi import NVIDIA_SMI_Q

    if not run.facts.get("nvidia_smi"):
        raise Skip("nvidia-smi is not on PATH")
    r = run.sh(NVIDIA_SMI_Q.argv(), 60)
    run.put(NVIDIA_SMI_Q.path, r.stdout, " ".join(NVIDIA_SMI_Q.argv()), r.returncode)
    print(r.stdout[:4000], flush=True)
    if r.returncode != 0:
        raise RuntimeError(f"nvidia-smi -q exited {r.returncode}: {(r.stderr or r.stdout).strip()[:300]}")


def nvml_snapshot(run: Run, s: Step) -> None:
    from clusterkit.parsers.nvml_json import NVML
    from clusterkit.probes.nvml_backend import PynvmlBackend, read_snapshot

    _need_gpus(run)
    doc = read_snapshot(PynvmlBackend())
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    run.put(NVML.path, text, NVML.command_line, 0)
    print(text[:3000], flush=True)
    if doc.get("error"):
        raise RuntimeError(f"NVML snapshot: {doc['error']}")
    s.figures = {"gpus": doc.get("device_count"), "driver": doc.get("driver_version")}


def gpu_tests(run: Run, s: Step) -> None:
    _need_gpus(run)
    try:
        import pytest  # noqa: F401
    except ImportError:
        raise Skip("pytest is not installed: add its wheels (see docs/gpu.md)") from None
    r = run.sh([sys.executable, "-m", "pytest", "-m", "gpu", "tests/gpu", "-p", "no:cacheprovider", "-q", "-rA"], 240)
    run.save("gpu-tests.txt", r.stdout + r.stderr)
    tail = [l for l in r.stdout.splitlines() if " passed" in l or " failed" in l or " skipped" in l]
    s.figures = {"pytest": tail[-1] if tail else f"exit {r.returncode}"}
    if r.returncode not in (0, 5):
        raise RuntimeError(f"gpu tests: {s.figures['pytest']} (gpu-tests.txt)")


def sampler(run: Run, s: Step) -> None:
    _need_gpus(run)
    r = run.sh([sys.executable, "benchmarks/power_sampler.py", "--real", "--seconds", "6"], 120)
    run.save("power-sampler.txt", r.stdout + r.stderr)
    print(r.stdout, flush=True)
    if r.returncode != 0:
        raise RuntimeError(f"power_sampler.py exited {r.returncode}: {r.stderr.strip()[-300:]}")
    rows = [l.split() for l in r.stdout.splitlines() if l.strip() and l.split()[0].isdigit()]
    s.figures = {f"{row[0]}Hz": {"achieved_hz": float(row[1]), "cpu_percent": float(row[3])} for row in rows}


def power_step(run: Run, s: Step) -> None:
    from clusterkit.parsers.power_trace import POWER_TRACE, parse_power_trace
    from clusterkit.probes.gpu import node_script

    _need_gpus(run)
    if not run.facts.get("cuda_available") and not (shutil.which("gpu_burn") or shutil.which("gpu-burn")):
        raise Skip("no load generator (PyTorch with CUDA, or gpu_burn)")
    argv = [sys.executable, "-", "power-step", "--period", "4", "--duration", "24", "--hz", "20"]
    r = run.sh(argv, 120, input=node_script().decode())
    if r.returncode != 0:
        raise RuntimeError(f"power step exited {r.returncode}: {r.stderr.strip()[-400:]}")
    text = json.loads(r.stdout)[POWER_TRACE.path]
    run.put(POWER_TRACE.path, text, " ".join(argv[:2] + argv[2:]), 0)
    tr = parse_power_trace(text)
    load = [x.power_w for x in tr.samples if x.phase == "load" and x.power_w]
    idle = [x.power_w for x in tr.samples if x.phase == "idle" and x.power_w]
    s.figures = {"load": tr.meta.get("load"), "power_source": tr.power_source, "gpus": len(tr.by_gpu()),
                 "load_w_median": _median(load), "idle_w_median": _median(idle), "samples": len(tr.samples)}


def nccl(run: Run, s: Step) -> None:
    from clusterkit.fleet.nccl_runner import BENCH_SCRIPT
    from clusterkit.parsers.nccl_tests import ALL_REDUCE, parse

    n = _need_gpus(run)
    if not run.facts.get("cuda_available"):
        raise Skip("PyTorch with CUDA is not available: the torch fallback cannot run NCCL")
    if n < 2:
        raise Skip("one GPU: an all-reduce needs at least two")
    argv = [sys.executable, str(BENCH_SCRIPT), "-b", "8M", "-e", "1G", "-f", "2", "-n", "10", "-w", "3",
            "--nprocs", str(n), "--backend", "nccl"]
    r = run.sh(argv, 180)
    run.put(ALL_REDUCE.path, r.stdout + r.stderr, " ".join(argv[1:]), r.returncode)
    if r.returncode != 0:
        raise RuntimeError(f"all-reduce exited {r.returncode}: {r.stderr.strip()[-400:]}")
    res = parse(r.stdout)
    s.figures = {"ranks": res.ranks, "busbw_peak_gbps": res.busbw_peak_gbps,
                 "busbw_1gib_gbps": res.busbw_large_gbps(1 << 30)}


def analyze(run: Run, s: Step) -> None:
    if not run.finish_bundle():
        raise Skip("nothing was collected (no GPU evidence)")
    from clusterkit.pipeline import analyze_paths

    result = analyze_paths([run.bundle], suite="full")
    run.save("analysis.json", json.dumps(result.to_dict(), indent=1) + "\n")
    node = result.nodes[0]
    s.figures = {"status": node.status, "checks": {c.id: c.status for c in node.checks}}
    for c in node.checks:
        print(f"  {c.status:5} {c.id}: {c.summary}", flush=True)


STEPS: list[tuple[str, Callable[[Run, Step], None]]] = [
    ("environment", environment), ("nvidia-smi -q", nvidia_smi), ("NVML snapshot", nvml_snapshot),
    ("gpu tests", gpu_tests), ("power sampler", sampler), ("power step", power_step), ("NCCL all-reduce", nccl),
    ("analyze", analyze),
]


# ---- helpers ------------------------------------------------------------------------------------------

def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _median(v: list[float]) -> float | None:
    import statistics

    return round(statistics.median(v), 1) if v else None


def results_fragment(run: Run) -> str:
    f = run.facts
    lines = [f"### GPU check, {dt.date.today().isoformat()} ({f.get('host')}: {f.get('nvml_gpus') or 0} GPU(s) "
             f"{', '.join(sorted(set(f.get('gpu_names') or []))) or ''}, driver {f.get('driver') or '-'}, "
             f"torch {f.get('torch') or '-'})", "", "| step | status | seconds | figures |", "|---|---|---|---|"]
    for s in run.steps:
        figs = json.dumps(s.figures) if s.figures else ""
        lines.append(f"| {s.name} | {s.status}{': ' + s.why if s.why else ''} | {s.seconds} | {figs} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gpu-check", description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="directory for every output (created)")
    ap.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for the whole run (default 480)")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    run = Run(a.out, a.budget)
    for name, func in STEPS:
        run.step(name, func)
    run.save("summary.json", json.dumps({"facts": run.facts, "steps": [s.__dict__ for s in run.steps]}, indent=1,
                                        default=str) + "\n")
    frag = results_fragment(run)
    run.save("RESULTS-gpu.md", frag)
    print(frag, flush=True)
    # Exit 1 only when a step that could run failed: a skipped step (no GPU) is not a failure here.
    return 1 if any(s.status == "failed" for s in run.steps) else 0


if __name__ == "__main__":
    sys.exit(main())
