"""Collection of the `node` suite through one srun step vs SSH fan-out, on this machine.

    python benchmarks/srun_collect.py [--nodes 8] [--repeat 3] [--suite node]

Starts a real Slurm (slurmctld + one slurmd per node + munged, tests/integration/burnin/slurm_cluster.py)
and as many real sshd nodes (tests/support/sshd.py) on 127.0.0.1, then collects the same suite from
all nodes both ways: `collect_srun` (one `srun` step running `clusterkit check --local --collect-only`
on each node) and `collect_bundles` (paramiko fan-out, one connection per node). Every node is this
machine, so both pay for the same probes; what differs is the launch: srun starts one clusterkit
interpreter per node, SSH a handshake and a remote command per probe. Besides the wall time, the
head's own CPU time is printed (this process and the srun client; the probes run under slurmd or
sshd), which is what grows with the fleet on the host that launches. Needs root (slurmd, sshd).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _head_cpu() -> float:
    """CPU seconds of this process and its waited-for children (the srun client)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--suite", default="node")
    args = ap.parse_args()

    from clusterkit.analysis import ProfileResolver
    from clusterkit.evidence.bundle import Bundle
    from clusterkit.fleet.collect import FleetOptions, collect_bundles
    from clusterkit.fleet.srun import SrunOptions, collect_srun
    from clusterkit.inventory import HostSpec, load_inventory
    from clusterkit.suites import load_suite
    from tests.integration.burnin.slurm_cluster import SlurmCluster
    from tests.support.sshd import SshdCluster

    work = Path(tempfile.mkdtemp(prefix="ck-bench-srun-"))
    os.chmod(work, 0o755)                       # munged wants a+x on every directory above its socket
    slurm = SlurmCluster(work / "slurm", [f"node{i}" for i in range(1, args.nodes + 1)])
    sshd = SshdCluster(work / "sshd")
    try:
        slurm.up(timeout_s=60)
        os.environ["SLURM_CONF"] = slurm.env["SLURM_CONF"]
        os.environ["PYTHONPATH"] = str(ROOT)    # the tasks run this checkout's clusterkit
        nodes = sshd.start(args.nodes)
        inv_path = sshd.write_inventory(work / "hosts.ini", nodes)
        ssh_hosts = load_inventory(inv_path)[0].targets()
        srun_hosts = [HostSpec(n, n, scheduler="slurm", slurm_node=n) for n in slurm.nodes]
        suite = load_suite(args.suite)
        fleet = FleetOptions(known_hosts=sshd.known_hosts, concurrency=args.nodes)
        srun_opts = SrunOptions(clusterkit=f"{sys.executable} -m clusterkit", deadline_s=600)
        times: dict[str, list[float]] = {"srun": [], "ssh": []}
        head: dict[str, list[float]] = {"srun": [], "ssh": []}
        for i in range(args.repeat):
            for way in ("srun", "ssh"):
                out = work / f"{way}-{i}"
                cpu0 = _head_cpu()
                t = time.perf_counter()
                if way == "srun":
                    dirs = collect_srun(srun_hosts, args.suite, None, out, srun_opts)
                else:
                    dirs = collect_bundles(ssh_hosts, suite, ProfileResolver(), out, fleet)
                times[way].append(time.perf_counter() - t)
                head[way].append(_head_cpu() - cpu0)
                outcomes = {Bundle.open(d).outcome for d in dirs}
                if outcomes != {"ok"}:
                    raise SystemExit(f"{way}: not every node collected: {outcomes}")
                files = sum(len(Bundle.open(d).paths()) for d in dirs)
                print(f"{way} run {i + 1}: {times[way][-1]:.2f} s (head CPU {head[way][-1]:.2f} s), {len(dirs)} nodes, "
                      f"{files} files", flush=True)
        load = os.getloadavg()[0]
        med = {w: statistics.median(v) for w, v in times.items()}
        print(f"\n{args.nodes} nodes, suite {args.suite}, median of {args.repeat} (load average {load:.1f}):")
        for w in ("srun", "ssh"):
            print(f"  {w:<5} {med[w]:.2f} s  ({', '.join(f'{x:.2f}' for x in times[w])}); head CPU "
                  f"{statistics.median(head[w]):.2f} s ({statistics.median(head[w]) / args.nodes * 1000:.0f} ms per node)")
        print(f"  ratio ssh / srun: {med['ssh'] / med['srun']:.2f}")
    finally:
        sshd.stop()
        slurm.down()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
