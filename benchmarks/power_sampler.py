"""Power-step sampler: achieved sample rate and the sampler's own CPU cost with 8 GPUs.

Runs the on-node sampler (clusterkit/node_scripts/gpu_node.py power_step) against
the fake NVML backend (8 GPUs; each NVML read optionally busy-waits to emulate the
driver call's cost) for each requested rate, and prints what it achieved.
On a GPU node, `--real` uses pynvml instead (no load generator: idle GPUs).

    python benchmarks/power_sampler.py [--seconds 10] [--read-cost-us 0] [--real]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from clusterkit.node_scripts.gpu_node import FakeLoad, power_step  # noqa: E402
from clusterkit.parsers.power_trace import parse_power_trace  # noqa: E402
from clusterkit.probes.nvml_backend import FakeBackend, PynvmlBackend  # noqa: E402


class _NoLoad:
    name, errors = "none", []

    def start(self, sched):
        pass

    def stop(self):
        pass


def measure(hz: float, seconds: float, read_cost_s: float, real: bool) -> dict[str, float]:
    backend = PynvmlBackend() if real else FakeBackend(8, read_cost_s=read_cost_s)
    factory = (lambda n: _NoLoad()) if real else (lambda n: FakeLoad(backend))
    text = power_step(backend, factory, period_s=2.0, duration_s=seconds, hz=hz, lead_in_s=0.2)["gpu/power-trace.csv"]
    tr = parse_power_trace(text)
    per_gpu = tr.by_gpu()
    span = max(s.t for s in tr.samples) - min(s.t for s in tr.samples)
    achieved = min((len(v) - 1) / span for v in per_gpu.values())
    cpu, wall = float(tr.meta["sampler_cpu_s"]), float(tr.meta["sampler_wall_s"])
    return {"gpus": len(per_gpu), "requested_hz": hz, "achieved_hz": achieved, "cpu_percent": 100.0 * cpu / wall,
            "cpu_us_per_gpu_sample": 1e6 * cpu / max(1, len(tr.samples)), "overruns": float(tr.meta["sampler_overruns"])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--read-cost-us", type=float, default=0.0, help="emulated cost of one NVML read (fake backend)")
    ap.add_argument("--real", action="store_true", help="pynvml on this machine's GPUs")
    a = ap.parse_args()
    print(f"backend={'pynvml' if a.real else 'fake x8'} read_cost={a.read_cost_us:.0f}us window={a.seconds:.0f}s")
    print(f"{'requested Hz':>12} {'achieved Hz':>12} {'ratio':>6} {'CPU % of 1 core':>16} {'CPU us/GPU-sample':>18} {'overruns':>9}")
    for hz in (10, 20, 50, 100, 200):
        m = measure(hz, a.seconds, a.read_cost_us / 1e6, a.real)
        print(f"{hz:>12} {m['achieved_hz']:>12.1f} {m['achieved_hz'] / hz:>6.2f} {m['cpu_percent']:>16.2f} "
              f"{m['cpu_us_per_gpu_sample']:>18.1f} {m['overruns']:>9.0f}")


if __name__ == "__main__":
    main()
