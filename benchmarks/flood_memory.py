"""Controller memory while every node prints without end (goal, issue 18: peak < 300 MB with 64 nodes).

    python benchmarks/flood_memory.py [--nodes 64] [--servers 4] [--commands 2]

Real sshd servers on 127.0.0.1 (tests/support/sshd.py) stand in for the nodes: --nodes
inventory hosts spread over --servers sshd processes, each host running --commands probes
that print `yes` output until clusterkit stops them (64 MiB per probe, 256 MiB per host: the
production limits unless --cap-mib says otherwise). Collection runs in a fresh process so that
its peak RSS (getrusage) is its own; the evidence is written to a temporary directory and removed.
Before issue 18 output was held whole and cut afterwards: 1.87 GB after 15 s (the issue's figure).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.sshd import SshdCluster, have_sshd  # noqa: E402

CHILD = r"""
import json, resource, sys, threading, time
from pathlib import Path
import psutil
from clusterkit.fleet import ssh
from clusterkit.fleet.collect import FleetOptions, collect_planned
import clusterkit.fleet.hostrun as hostrun
from clusterkit.inventory import HostSpec
from clusterkit.probes.registry import Command
cfg = json.loads(sys.argv[1])
if cfg["cap_mib"]:
    hostrun.MAX_CAPTURE_BYTES = cfg["cap_mib"] << 20
hosts = [HostSpec(name=f"flood{i + 1:02d}", address="127.0.0.1", port=s["port"], user=s["user"],
                  private_key_file=s["key"]) for i, s in enumerate(cfg["hosts"])]
plan = [Command(f"host/flood{j}.txt", ["yes", "clusterkit flood " * 5], timeout_s=600) for j in range(cfg["commands"])]
samples = []
proc = psutil.Process()
stop = threading.Event()
def sample():
    while not stop.wait(0.2):
        samples.append(proc.memory_info().rss)
threading.Thread(target=sample, daemon=True).start()
t0 = time.perf_counter()
dirs = collect_planned(hosts, {h.name: plan for h in hosts}, Path(cfg["out"]),
                       FleetOptions(known_hosts=Path(cfg["known_hosts"]), connect_timeout_s=30, deadline_s=1800,
                                    concurrency=len(hosts)))
wall = time.perf_counter() - t0
stop.set()
kept = sum(p.stat().st_size for d in dirs for p in d.rglob("flood*.txt"))
metas = [json.loads((d / "bundle.json").read_text()) for d in dirs]
cut = sum(1 for m in metas for c in m["commands"] if c.get("discarded_bytes"))
print(json.dumps({"wall_s": wall, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "sampled_peak": max(samples or [0]), "kept_bytes": kept, "cut_commands": cut,
                  "outcomes": sorted({m["outcome"] for m in metas}),
                  "problems": sorted({m.get("message") or "" for m in metas if m["outcome"] != "ok"})[:3]}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--servers", type=int, default=4)
    ap.add_argument("--commands", type=int, default=2)
    ap.add_argument("--cap-mib", type=int, default=0, help="per-command cap (default: clusterkit's own)")
    a = ap.parse_args()
    why = have_sshd()
    if why:
        sys.exit(f"cannot run: {why}")
    work = Path(tempfile.mkdtemp(prefix="ck-flood-"))
    cluster = SshdCluster(work / "sshd")
    try:
        servers = cluster.start(a.servers)
        hosts = [{"port": servers[i % len(servers)].port, "user": servers[0].user, "key": str(cluster.client_key)}
                 for i in range(a.nodes)]
        cfg = {"hosts": hosts, "commands": a.commands, "out": str(work / "run"), "cap_mib": a.cap_mib,
               "known_hosts": str(cluster.known_hosts)}
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        t0 = time.time()
        p = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True, text=True, env=env,
                           timeout=3600)
        if p.returncode != 0:
            sys.exit(f"collection failed: {p.stderr[-2000:]}")
        r = json.loads(p.stdout.strip().splitlines()[-1])
        print(f"{a.nodes} flooding nodes ({a.servers} sshd servers), {a.commands} probes each, load average "
              f"{os.getloadavg()[0]:.1f}, started {time.strftime('%Y-%m-%d %H:%M', time.localtime(t0))}")
        print(f"  collection: {r['wall_s']:.1f} s; {r['kept_bytes'] / 2**20:,.0f} MiB kept in the bundles, "
              f"{r['cut_commands']} probes cut at their limit; host outcomes {r['outcomes']}"
              + "".join(f"\n    {m}" for m in r["problems"]))
        print(f"  controller peak RSS: {r['peak_rss'] / 1e6:.0f} MB (sampled every 0.2 s: "
              f"{r['sampled_peak'] / 1e6:.0f} MB); goal < 300 MB; before issue 18: 1,870 MB after 15 s")
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
