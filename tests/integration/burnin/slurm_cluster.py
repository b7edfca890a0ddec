"""A real single-host Slurm (slurmctld + one slurmd per fake node + munged) in a temp dir.

Follows ../shared/recipes/slurm-local.md: no systemd, nothing under /etc, SLURM_CONF
points daemons and clients at the temp dir; only the PIDs started here are stopped.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

import pytest

CONF = """ClusterName=cktest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort={pb}
SlurmdPort={pb1}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={t}/munge/munge.socket
StateSaveLocation={t}/state
SlurmdSpoolDir={t}/spool/%n
SlurmctldPidFile={t}/slurmctld.pid
SlurmdPidFile={t}/slurmd.%n.pid
SlurmctldLogFile={t}/log/slurmctld.log
SlurmdLogFile={t}/log/slurmd.%n.log
MailProg=/bin/true
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SwitchType=switch/none
SchedulerType=sched/builtin
ReturnToService=2
"""
TOOLS = ("slurmctld", "slurmd", "munged", "mungekey", "sinfo", "scontrol")


def missing_tools() -> list[str]:
    return [t for t in TOOLS if not shutil.which(t) and not os.path.exists(f"/usr/sbin/{t}")]


def _free_block(n: int) -> int:
    """A base port with n consecutive free ports (slurm needs fixed, consecutive ports)."""
    for _ in range(50):
        base = random.randint(20000, 60000 - n)
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port block")


def _exe(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class SlurmCluster:
    def __init__(self, tmp: Path, nodes: list[str], extra_conf: str = ""):
        self.t = tmp
        self.nodes = nodes
        self.extra_conf = extra_conf      # slurm.conf lines (HealthCheckProgram, Prolog...)
        self.procs: list[subprocess.Popen] = []
        self.munged_pid: int | None = None
        self.env = dict(os.environ, SLURM_CONF=str(tmp / "slurm.conf"))

    def up(self, timeout_s: float = 30.0) -> None:
        t = self.t
        for d in ("munge", "state", "log"):
            (t / d).mkdir(parents=True, exist_ok=True)
        os.chmod(t, 0o755)
        os.chmod(t / "munge", 0o755)
        subprocess.run([_exe("mungekey"), "-c", "-k", str(t / "munge/munge.key")], check=True, timeout=30,
                       capture_output=True)
        p = subprocess.run([_exe("munged"), f"--key-file={t}/munge/munge.key", f"--socket={t}/munge/munge.socket",
                            f"--pid-file={t}/munge/munged.pid", f"--log-file={t}/munge/munged.log",
                            f"--seed-file={t}/munge/munged.seed"], timeout=30, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"munged: {(p.stderr or p.stdout).strip()}")
        self.munged_pid = int((t / "munge/munged.pid").read_text().split()[0])
        pb = _free_block(len(self.nodes) + 2)
        conf = CONF.format(pb=pb, pb1=pb + 1, t=t) + self.extra_conf
        for i, n in enumerate(self.nodes):
            conf += (f"NodeName={n} NodeHostname=localhost NodeAddr=127.0.0.1 Port={pb + 2 + i} CPUs=1 "
                     "RealMemory=100 State=UNKNOWN\n")
            (t / "spool" / n).mkdir(parents=True, exist_ok=True)
        conf += "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n"
        (t / "slurm.conf").write_text(conf)
        log = open(t / "log" / "daemons.out", "w")
        self.procs.append(subprocess.Popen([_exe("slurmctld"), "-D"], env=self.env, stdout=log, stderr=log))
        for n in self.nodes:
            self.procs.append(subprocess.Popen([_exe("slurmd"), "-D", "-N", n], env=self.env, stdout=log, stderr=log))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = self.states()
            if len(states) == len(self.nodes) and all(s in ("idle", "drained", "draining") for s, _ in states.values()):
                return
            time.sleep(0.2)
        raise RuntimeError(f"slurm not ready after {timeout_s:g} s: {self.states()}; logs in {t / 'log'}")

    def states(self) -> dict[str, tuple[str, str]]:
        p = subprocess.run(["sinfo", "-h", "-N", "-o", "%N|%T|%E"], env=self.env, capture_output=True, text=True,
                           timeout=15)
        out = {}
        for line in p.stdout.splitlines():
            n, st, reason = line.split("|", 2)
            out[n] = (st, reason)
        return out

    def scontrol(self, *args: str) -> None:
        subprocess.run(["scontrol", *args], env=self.env, check=True, timeout=15, capture_output=True)

    def wait_state(self, node: str, pred, timeout_s: float = 15.0) -> tuple[str, str]:
        deadline = time.monotonic() + timeout_s
        st = self.states().get(node)
        while time.monotonic() < deadline:
            st = self.states().get(node)
            if st and pred(*st):
                return st
            time.sleep(0.2)
        raise AssertionError(f"{node}: state {st} not reached in {timeout_s:g} s")

    def down(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        if self.munged_pid:
            try:
                os.kill(self.munged_pid, signal.SIGTERM)
                for _ in range(50):
                    os.kill(self.munged_pid, 0)
                    time.sleep(0.1)
            except ProcessLookupError:
                pass


@contextlib.contextmanager
def running_slurm(nodes: list[str], extra_conf: "str | Callable[[Path], str]" = ""):
    """A started SlurmCluster for a test (skipped where Slurm is missing or cannot start), stopped after.
    `extra_conf`: slurm.conf lines, or a function of the cluster's directory returning them (for scripts
    that need its SLURM_CONF: slurmd gives a health check no environment)."""
    missing = missing_tools()
    if missing:
        pytest.skip(f"Slurm test cluster needs {', '.join(missing)} "
                    "(apt-get install slurmctld slurmd slurm-client munge; scripts/apt-packages.d/burnin.txt)")
    # munged wants every directory above its socket to be a+x: pytest's tmp root is 0700
    tmp = Path(tempfile.mkdtemp(prefix="ck-slurm-"))
    c = SlurmCluster(tmp, nodes, extra_conf(tmp) if callable(extra_conf) else extra_conf)
    try:
        try:
            c.up()
        except Exception as e:  # noqa: BLE001
            pytest.skip(f"could not start slurmctld/slurmd/munged here: {e}")
        yield c
    finally:
        c.down()
        shutil.rmtree(tmp, ignore_errors=True)
