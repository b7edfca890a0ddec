"""Fan-out: one command on 32 SSH nodes, clusterkit vs `ansible -m shell`, equal forks.

Starts 32 real sshd servers on 127.0.0.1 (tests/support/sshd.py), then times
`uname -r` on all of them:

- clusterkit, as a fresh process (interpreter start, inventory load through
  Ansible's parser, paramiko fan-out with --concurrency N) - the figure a user sees;
- clusterkit, in-process (the fan-out alone);
- `ansible all -m shell -a 'uname -r' --forks N`, cold (no ControlPersist master
  yet) and warm (masters left by the previous run), and `-m raw` for reference.

Both sides verify host keys against the same known_hosts file. Run:

    python benchmarks/fanout.py [--nodes 32] [--forks 32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")


def child(inventory: str, known_hosts: str, forks: int) -> None:
    """What `clusterkit` does for one command: load the inventory, fan out, print."""
    from clusterkit.fleet.hostkeys import KnownHosts
    from clusterkit.fleet.ssh import HostFailure, run_everywhere, target_for
    from clusterkit.inventory import load_inventory

    hosts = load_inventory(inventory)[0].hosts
    out = run_everywhere([target_for(h, inventory=hosts) for h in hosts], ["uname", "-r"],
                         KnownHosts(Path(known_hosts)), concurrency=forks, timeout_s=60)
    bad = [h for h, r in out.items() if isinstance(r, HostFailure) or r.exit_code != 0]
    for h, r in out.items():
        print(h, r.message if isinstance(r, HostFailure) else r.stdout.decode().strip())
    sys.exit(1 if bad else 0)


def timed(cmd: list[str], env: dict[str, str] | None = None, expect_lines: int = 0, needle: str = "") -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    dt = time.perf_counter() - t0
    hits = sum(1 for line in p.stdout.splitlines() if needle in line)
    if p.returncode != 0 or hits < expect_lines:
        raise SystemExit(f"{cmd[:4]} failed (rc {p.returncode}, {hits}/{expect_lines} hosts answered):\n"
                         f"{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=32)
    ap.add_argument("--forks", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", nargs=2, metavar=("INVENTORY", "KNOWN_HOSTS"))
    a = ap.parse_args()
    if a.child:
        return child(a.child[0], a.child[1], a.forks)
    if shutil.which("ansible") is None:
        raise SystemExit("ansible is not installed (pip install ansible-core)")
    from tests.support.sshd import SshdCluster

    from clusterkit.fleet.hostkeys import KnownHosts
    from clusterkit.fleet.ssh import HostFailure, run_everywhere, target_for
    from clusterkit.inventory import load_inventory

    kernel = os.uname().release
    with tempfile.TemporaryDirectory(prefix="ck-fanout-") as tmp, SshdCluster(Path(tmp)) as cluster:
        t0 = time.perf_counter()
        cluster.start(a.nodes)
        print(f"started {a.nodes} sshd nodes in {time.perf_counter() - t0:.1f} s")
        kh = cluster.known_hosts
        inv = cluster.write_inventory(Path(tmp) / "hosts.ini", known_hosts=kh,
                                      host_vars={n.name: {"ansible_python_interpreter": "/usr/bin/python3"}
                                                 for n in cluster.nodes})
        hosts = load_inventory(inv)[0].hosts
        targets = [target_for(h, inventory=hosts) for h in hosts]

        def inproc() -> float:
            t = time.perf_counter()
            out = run_everywhere(targets, ["uname", "-r"], KnownHosts(kh), concurrency=a.forks)
            dt = time.perf_counter() - t
            ok = [r for r in out.values() if not isinstance(r, HostFailure) and r.stdout.decode().strip() == kernel]
            assert len(ok) == a.nodes, out
            return dt

        ck_cmd = [sys.executable, __file__, "--forks", str(a.forks), "--child", str(inv), str(kh)]
        env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_NOCOLOR="1",
                   ANSIBLE_LOCAL_TEMP=str(Path(tmp) / "ansible-tmp"))
        runs = [0]

        def ansible(module: str, cold: bool) -> float:
            if cold:   # a fresh ControlPath directory: no ControlPersist master to reuse
                runs[0] += 1
            env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(Path(tmp) / f"cp{runs[0]}")
            return timed(["ansible", "all", "-i", str(inv), "-m", module, "-a", "uname -r", "--forks", str(a.forks)],
                         env, a.nodes, kernel)

        rows: dict[str, list[float]] = {k: [] for k in (
            "clusterkit (new process)", "clusterkit (in-process fan-out)",
            "ansible -m shell, cold", "ansible -m shell, warm", "ansible -m raw, warm")}
        for _ in range(a.repeat):
            rows["clusterkit (new process)"].append(timed(ck_cmd, None, a.nodes, kernel))
            rows["clusterkit (in-process fan-out)"].append(inproc())
            rows["ansible -m shell, cold"].append(ansible("shell", cold=True))
            rows["ansible -m shell, warm"].append(ansible("shell", cold=False))
            rows["ansible -m raw, warm"].append(ansible("raw", cold=False))
        med = {k: statistics.median(v) for k, v in rows.items()}
        print(f"\n`uname -r` on {a.nodes} loopback sshd nodes, forks/concurrency {a.forks}, "
              f"median of {a.repeat} (cpus: {os.cpu_count()})")
        for k, v in med.items():
            print(f"  {k:34s} {v:6.2f} s   runs: {', '.join(f'{x:.2f}' for x in rows[k])}")
        ck = med["clusterkit (new process)"]
        print(f"\nratio ansible -m shell cold / clusterkit: {med['ansible -m shell, cold'] / ck:.1f}x")
        print(f"ratio ansible -m shell warm / clusterkit: {med['ansible -m shell, warm'] / ck:.1f}x")
        print(f"ratio ansible -m raw warm   / clusterkit: {med['ansible -m raw, warm'] / ck:.1f}x")


if __name__ == "__main__":
    main()
