"""Analysis throughput and peak memory for N simulated node bundles (default 1,000).

    python benchmarks/analyze_throughput.py [--nodes 1000] [--suite full] [--dir DIR]

Generation is timed apart from analysis; analysis runs in a fresh subprocess so
its peak RSS is its own, and its CPU time (main process and workers) is printed
beside the wall time, which a shared machine inflates. Goals: 1,000 nodes under
20 s and 500 MB on 2 cores; 10,000 nodes under 200 s and 2 GB (issue #17).
`--dir` keeps the generated bundles there (and reuses them when present).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from clusterkit.pipeline import analyze_paths
t = time.perf_counter()
run = analyze_paths([Path(sys.argv[1])], suite=sys.argv[2])
dt = time.perf_counter() - t
checks = sum(len(n.checks) for n in run.nodes) + len(run.cluster_checks)
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"seconds": dt, "nodes": len(run.nodes), "checks": checks, "status": run.status,
                  "cpu_main_s": me.ru_utime + me.ru_stime, "cpu_workers_s": kids.ru_utime + kids.ru_stime,
                  "peak_rss_mb": me.ru_maxrss / 1024, "worker_peak_rss_mb": kids.ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--suite", default="full")
    ap.add_argument("--dir", type=Path, default=None, help="keep (and reuse) the generated bundles here")
    args = ap.parse_args()
    from clusterkit.analysis import _workers
    from clusterkit.sim.cluster import generate

    with tempfile.TemporaryDirectory() as tmp:
        d = args.dir or Path(tmp)
        gen = None
        if not (d / "_cluster").is_dir():
            t = time.perf_counter()
            generate(d, nodes=args.nodes, seed=1)
            gen = time.perf_counter() - t
        size_mb = sum(p.stat().st_size for p in d.rglob("*") if p.is_file()) / 2**20
        out = subprocess.run([sys.executable, "-c", CHILD, str(d), args.suite], capture_output=True, text=True,
                             cwd=ROOT, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"bundles: {r['nodes']} nodes, {size_mb:.0f} MB of evidence"
          + (f", generated in {gen:.1f} s" if gen is not None else f" (reused from {d})"))
    print(f"analysis ({args.suite} suite): {r['seconds']:.2f} s for {r['checks']} check results "
          f"({r['nodes'] / r['seconds']:.0f} nodes/s); CPU {r['cpu_main_s']:.1f} s main + {r['cpu_workers_s']:.1f} s "
          f"workers; peak RSS {r['peak_rss_mb']:.0f} MB in the main process, {r['worker_peak_rss_mb']:.0f} MB in the "
          f"largest worker; status {r['status']}")
    limit_s, limit_mb = (20, 500) if r["nodes"] <= 1000 else (200, 2048)
    total = r["peak_rss_mb"] + r["worker_peak_rss_mb"] * _workers(r["nodes"])
    print(f"goal: < {limit_s} s -> {'met' if r['seconds'] < limit_s else 'MISSED'}; < {limit_mb} MB (main + workers, "
          f"{total:.0f} MB at most) -> {'met' if total < limit_mb else 'MISSED'}")


if __name__ == "__main__":
    main()
