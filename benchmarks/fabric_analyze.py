"""Time to analyze the fabric evidence of N nodes x 8 HCAs (default 1,024 nodes).

Evidence comes from the fabric simulator (ibstat, iblinkinfo, counter snapshots,
mlxlink per HCA; one node in 16 carries a fault), analyzed in memory with every
fabric check including the cluster-scope per-link verdict.
Usage: python benchmarks/fabric_analyze.py [nodes]
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from clusterkit.evidence.bundle import Bundle, BundleWriter  # noqa: E402
from clusterkit.sim.fabric import generate  # noqa: E402
from clusterkit.sim.registry import SimNode  # noqa: E402
from fabric_helpers import analyze  # noqa: E402

FAULTS = ["fabric.dirty_fiber", "fabric.flapping_link", "fabric.half_rate", "fabric.saturated_counters"]


def build(n: int) -> list[Bundle]:
    tmp = Path(tempfile.mkdtemp())
    out = []
    for i in range(n):
        faults = [FAULTS[(i // 16) % 4]] if i % 16 == 15 else []
        node = SimNode(f"gpu{i:04d}", i, {"ib_devices": [f"mlx5_{k}" for k in range(8)], "ib_rate_gbps": 400},
                       faults, random.Random(i))
        w = BundleWriter(tmp / node.host, node.host, simulated=True, declared=node.spec)
        generate(node, w)
        files = {p.relative_to(tmp / node.host).as_posix(): p.read_text()
                 for p in (tmp / node.host).rglob("*") if p.is_file()}
        log = "".join(f"[{t:12.6f}] {m}\n" for t, m in node.facts.get("kernel_log", []))
        if log:
            files["host/dmesg.txt"] = log
        out.append(Bundle.virtual(node.host, files, {"host": node.host, "declared": node.spec}))
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    bundles = build(n)
    size = sum(len(t) for b in bundles for t in b.files.values())
    t0, c0 = time.perf_counter(), time.process_time()
    run = analyze(bundles)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    bad = sum(1 for nd in run.nodes if nd.status == "fail")
    links = next(c for c in run.cluster_checks if c.id == "fabric.links")
    print(f"nodes={n} hcas={n * 8} evidence={size / 2**20:.1f} MiB")
    print(f"analyze_wall_s={dt:.2f} analyze_cpu_s={cpu:.2f} per_node_cpu_ms={cpu / n * 1000:.2f} "
          f"per_hca_cpu_ms={cpu / n / 8 * 1000:.3f}")
    # The window the counters cover is 10 minutes: analysis must be a small fraction of it.
    print(f"analysis_cpu_as_share_of_a_600s_test_window={cpu / 600:.3%}")
    print(f"failed_nodes={bad} bad_links={links.metrics['links_bad']}")


if __name__ == "__main__":
    main()
