"""`clusterkit verify` on 64 loopback sshd nodes with 0, 1 and 4 wedged nodes.

A wedged node is what a hung GPU looks like to the tools: `nvidia-smi` never answers. Every node
gets its own `nvidia-smi` first on its PATH (tests/support/sshd.py nodes, `SetEnv PATH`); on a
healthy node it says "command not found" (exit 127) like a node without the driver, on a wedged
one it sleeps. The same 64 nodes serve every scenario; only the wedged flags change.

For each scenario it times `clusterkit verify` (quick suite, a fresh process, `--probe-timeout P`)
and reads the bundles for how long each healthy node took from its first command to its last.
Goal (issue #14): wall time under 1.2 x the all-healthy run plus the probe timeout, and the
healthy nodes held up by at most one probe timeout.

    python benchmarks/wedged_nodes.py [--nodes 64] [--probe-timeout 10] [--wedged 0,1,4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")

FAKE_NVIDIA_SMI = """#!/bin/sh
# wedged when the flag file beside this script exists; else absent, like a node without the driver
if [ -e "$(dirname "$0")/wedged" ]; then exec /bin/sleep 600; fi
echo "nvidia-smi: command not found" >&2
exit 127
"""


def spans(evidence: Path) -> dict[str, float]:
    """Per node: seconds from its first command's start to its last command's end."""
    out = {}
    for meta in evidence.glob("*/bundle.json"):
        cmds = [c for c in json.loads(meta.read_text())["commands"] if c.get("local_start_epoch")]
        if cmds:
            out[meta.parent.name] = max(c["local_end_epoch"] for c in cmds) - min(c["local_start_epoch"] for c in cmds)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--probe-timeout", type=float, default=10.0)
    ap.add_argument("--wedged", default="0,1,4,0", help="scenarios, comma separated (wedged node counts)")
    a = ap.parse_args()
    from tests.support.sshd import SshdCluster

    scenarios = [int(x) for x in a.wedged.split(",")]
    with tempfile.TemporaryDirectory(prefix="ck-wedged-") as tmp, SshdCluster(Path(tmp) / "sshd") as cluster:
        t0 = time.perf_counter()
        bins = []
        for i in range(a.nodes):
            b = Path(tmp) / f"bin{i + 1:02d}"
            b.mkdir()
            (b / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
            (b / "nvidia-smi").chmod(0o755)
            bins.append(b)
            cluster.start(1, extra_config=f"SetEnv HOME={cluster.home} PATH={b}:/usr/local/bin:/usr/bin:/bin")
        print(f"started {a.nodes} sshd nodes in {time.perf_counter() - t0:.1f} s (cpus: {os.cpu_count()}, "
              f"load average {os.getloadavg()[0]:.1f})")
        inv = cluster.write_inventory(Path(tmp) / "hosts.ini")
        rows = []
        for run_no, k in enumerate(scenarios):
            for i, b in enumerate(bins):       # the last k nodes are wedged in this scenario
                flag = b / "wedged"
                if i >= a.nodes - k:
                    flag.touch()
                else:
                    flag.unlink(missing_ok=True)
            evidence = Path(tmp) / f"evidence{run_no}"
            t = time.perf_counter()
            p = subprocess.run([sys.executable, "-m", "clusterkit", "verify", "-i", str(inv), "--known-hosts",
                                str(cluster.known_hosts), "--format", "json", "--probe-timeout", str(a.probe_timeout),
                                "--keep-evidence", str(evidence)], capture_output=True, text=True, timeout=3600)
            wall = time.perf_counter() - t
            run = json.loads(p.stdout)
            outcomes = [n["outcome"] for n in run["nodes"]]
            wedged = {n["host"] for n in run["nodes"][a.nodes - k:]} if k else set()
            s = spans(evidence)
            healthy = [v for h, v in s.items() if h not in wedged]
            bad = [n["host"] for n in run["nodes"] if n["host"] not in wedged and n["outcome"] != "ok"]
            if bad or outcomes.count("timeout") != k:
                raise SystemExit(f"scenario {k}: unexpected outcomes {outcomes}\n{p.stderr[-2000:]}")
            rows.append((k, wall, statistics.median(healthy), max(healthy), os.getloadavg()[0]))
            print(f"  {k} wedged: wall {wall:6.1f} s, healthy nodes' span median {rows[-1][2]:5.1f} s, max "
                  f"{rows[-1][3]:5.1f} s (load {rows[-1][4]:.1f})", flush=True)
        base = statistics.median([r[1] for r in rows if r[0] == 0])
        base_span = statistics.median([r[3] for r in rows if r[0] == 0])
        print(f"\n`clusterkit verify` (quick suite) on {a.nodes} loopback sshd nodes, --probe-timeout "
              f"{a.probe_timeout:g}; all-healthy wall {base:.1f} s (median of {sum(1 for r in rows if r[0] == 0)})")
        print("| wedged | wall | ratio to all-healthy | goal: < 1.2 x + probe timeout | healthy nodes' max span "
              "(all-healthy: %.1f s) |" % base_span)
        for k, wall, _, mx, _ in rows:
            goal = 1.2 * base + a.probe_timeout
            print(f"| {k} | {wall:.1f} s | {wall / base:.2f}x | {goal:.1f} s: {'met' if wall < goal else 'MISSED'} "
                  f"| {mx:.1f} s (+{mx - base_span:.1f} s) |")


if __name__ == "__main__":
    main()
