"""Analysis throughput and peak memory for N simulated node bundles (default 1,000).

    python benchmarks/analyze_throughput.py [--nodes 1000] [--suite full]

Generation is timed apart from analysis; analysis runs in a fresh subprocess so
its peak RSS is its own. Goal (foundation issue): under 20 s and 500 MB on 2 cores.
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
print(json.dumps({"seconds": dt, "nodes": len(run.nodes), "checks": checks, "status": run.status,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--suite", default="full")
    args = ap.parse_args()
    from clusterkit.analysis import _workers
    from clusterkit.sim.cluster import generate

    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        generate(Path(d), nodes=args.nodes, seed=1)
        gen = time.perf_counter() - t
        size_mb = sum(p.stat().st_size for p in Path(d).rglob("*") if p.is_file()) / 2**20
        out = subprocess.run([sys.executable, "-c", CHILD, d, args.suite], capture_output=True, text=True,
                             cwd=ROOT, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"bundles: {args.nodes} nodes, {size_mb:.0f} MB of evidence, generated in {gen:.1f} s")
    print(f"analysis ({args.suite} suite): {r['seconds']:.2f} s for {r['checks']} check results "
          f"({args.nodes / r['seconds']:.0f} nodes/s), peak RSS {r['peak_rss_mb']:.0f} MB in the main process, "
          f"{r['worker_peak_rss_mb']:.0f} MB in the largest worker, status {r['status']}")
    total = r["peak_rss_mb"] + r["worker_peak_rss_mb"] * _workers(args.nodes)
    print(f"goal: < 20 s -> {'met' if r['seconds'] < 20 else 'MISSED'}; < 500 MB (main + workers, "
          f"{total:.0f} MB at most) -> {'met' if total < 500 else 'MISSED'}")


if __name__ == "__main__":
    main()
