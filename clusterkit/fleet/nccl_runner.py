"""How to launch all_reduce_perf: the exact argv and environment, single-node and multi-node.

Single-node runs are per-node Commands (clusterkit.probes.nccl). The multi-node run and
the localization rounds are cluster-wide steps launched from the first node: this module
builds them (mpirun with a hostfile from the inventory, or srun when the hosts are Slurm
nodes; the torch.distributed fallback with the same table when nccl-tests is absent),
runs them, and adapts them to the localization `Tester`.

Every value is an argv element (never pasted into a shell line); the environment is a
dict recorded next to the output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from clusterkit.fleet.localize import GroupTest, TestOutcome, Tester
from clusterkit.parsers import ParseError
from clusterkit.parsers.nccl_tests import parse

if TYPE_CHECKING:
    from clusterkit.inventory import HostSpec
    from clusterkit.profiles import Profile

BENCH_SCRIPT = Path(__file__).resolve().parent.parent / "node_scripts" / "allreduce_bench.py"


@dataclass
class NcclOptions:
    min_bytes: str = "8"
    max_bytes: str = "8G"            # the gate needs sizes >= 1 GiB
    step_factor: int = 2
    iters: int = 20
    warmup_iters: int = 5
    check: int = 1                   # validation on: #wrong is judged
    binary: str = "all_reduce_perf"
    python: str = "python3"          # for the torch fallback
    bench_script: str = str(BENCH_SCRIPT)
    env: dict[str, str] = field(default_factory=dict)     # overrides the profile's [nccl] env
    master_port: int = 29511         # torch fallback rendezvous on the first host
    timeout_s: float = 900.0

    def size_args(self) -> list[str]:
        return ["-b", self.min_bytes, "-e", self.max_bytes, "-f", str(self.step_factor),
                "-n", str(self.iters), "-w", str(self.warmup_iters), "-c", str(self.check)]


@dataclass
class LaunchPlan:
    argv: list[str]
    env: dict[str, str]                       # NCCL_* and friends the ranks get
    hostfile: str | None = None               # mpirun hostfile content, written next to the run
    tool: str = "nccl-tests"                  # or "torch"
    hosts: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {"argv": self.argv, "env": self.env, "hostfile": self.hostfile, "tool": self.tool, "hosts": self.hosts}

    def with_hostfile(self, path: str) -> "LaunchPlan":
        """The same plan reading its hostfile at `path` (a temporary file made where it runs)."""
        argv = list(self.argv)
        if "--hostfile" in argv:
            argv[argv.index("--hostfile") + 1] = path
        return LaunchPlan(argv, dict(self.env), self.hostfile, self.tool, list(self.hosts))


def nccl_env(profile: "Profile | None", spec: "HostSpec | None", opts: NcclOptions,
             rail: int | None = None) -> dict[str, str]:
    """Profile env, then NCCL_IB_HCA from the inventory's NICs (one NIC for a rail test), then options."""
    env: dict[str, str] = {}
    if profile is not None:
        env.update({str(k): str(v) for k, v in (profile.get("nccl.env") or {}).items()})
    devices = list(spec.ib_devices) if spec is not None and spec.ib_devices else []
    if rail is not None and devices:
        env["NCCL_IB_HCA"] = "=" + devices[rail % len(devices)]   # '=' : exact name, not a prefix
    elif devices:
        env["NCCL_IB_HCA"] = "=" + ",".join(devices)
    env.update(opts.env)
    return env


def single_node_plan(spec: "HostSpec", profile: "Profile | None", opts: NcclOptions,
                     *, nccl_tests: bool = True) -> LaunchPlan:
    """all_reduce_perf on every GPU of one node (-g N, one process)."""
    gpus = max(1, spec.gpu_count or 1)
    env = nccl_env(profile, spec, opts)
    if nccl_tests:
        return LaunchPlan([opts.binary, *opts.size_args(), "-g", str(gpus)], env, hosts=[spec.name])
    return LaunchPlan([opts.python, opts.bench_script, *opts.size_args(), "--nprocs", str(gpus)], env,
                      tool="torch", hosts=[spec.name])


def hostfile_text(specs: list["HostSpec"], slots: int) -> str:
    return "".join(f"{s.address or s.name} slots={slots}\n" for s in specs)


def multi_node_plan(specs: list["HostSpec"], profile: "Profile | None", opts: NcclOptions, *,
                    hostfile_path: str, launcher: str | None = None, nccl_tests: bool = True,
                    rail: int | None = None) -> LaunchPlan:
    """One rank per GPU over `specs` (a rail test: one rank per node, on that rail's GPU and NIC).

    launcher: "mpirun" | "srun"; None picks srun when every host's scheduler is slurm."""
    if not specs:
        raise ValueError("multi-node plan without hosts")
    if launcher is None:
        launcher = "srun" if all((s.scheduler or "").lower() == "slurm" for s in specs) else "mpirun"
    per_node = 1 if rail is not None else max(1, specs[0].gpu_count or 1)
    env = nccl_env(profile, specs[0], opts, rail)
    if rail is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(rail)   # rail r: GPU r sits next to NIC r
    if nccl_tests:
        prog = [opts.binary, *opts.size_args(), "-g", "1"]
        tool = "nccl-tests"
    else:
        prog = [opts.python, opts.bench_script, *opts.size_args()]
        env.setdefault("MASTER_ADDR", specs[0].address or specs[0].name)
        env.setdefault("MASTER_PORT", str(opts.master_port))
        tool = "torch"
    names = [s.name for s in specs]
    ranks = per_node * len(specs)
    if launcher == "srun":
        nodelist = ",".join(s.slurm_node or s.name for s in specs)
        export = ",".join(["ALL"] + [f"{k}={v}" for k, v in sorted(env.items())])
        argv = ["srun", f"--nodes={len(specs)}", f"--ntasks-per-node={per_node}", f"--nodelist={nodelist}",
                f"--export={export}", "--kill-on-bad-exit=1", *prog]
        return LaunchPlan(argv, env, None, tool, names)
    argv = ["mpirun", "-np", str(ranks), "--hostfile", hostfile_path, "--map-by", f"ppr:{per_node}:node",
            "--bind-to", "none", "--tag-output"]
    for k in sorted(env):
        argv += ["-x", f"{k}={env[k]}"]
    if os.geteuid() == 0:
        argv.insert(1, "--allow-run-as-root")
    return LaunchPlan(argv + prog, env, hostfile_text(specs, per_node), tool, names)


@dataclass
class RunRecord:
    plan: LaunchPlan
    stdout: str
    exit_code: int | None
    duration_s: float
    status: str                 # ok | timeout | error


def run_plan(plan: LaunchPlan, *, timeout_s: float = 900.0, hostfile_path: str | None = None,
             cwd: str | None = None) -> RunRecord:
    """Run a plan on this machine (the first node of the cluster), output and stderr together.
    The hostfile is a new private file (exclusive creation, in `hostfile_path`'s directory when
    given, else the temp directory), removed after the run."""
    if not plan.hostfile:
        return _run_here(plan, timeout_s, cwd)
    fd, path = tempfile.mkstemp(prefix="clusterkit-hosts.", suffix=".txt",
                                dir=os.path.dirname(hostfile_path) if hostfile_path else None)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(plan.hostfile)
        return _run_here(plan.with_hostfile(path), timeout_s, cwd)
    finally:
        Path(path).unlink(missing_ok=True)


def _run_here(plan: LaunchPlan, timeout_s: float, cwd: str | None) -> RunRecord:
    env = dict(os.environ)
    env.update(plan.env)
    t0 = time.monotonic()
    try:
        p = subprocess.run(plan.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                           timeout=timeout_s, text=True, errors="replace")
        return RunRecord(plan, p.stdout, p.returncode, time.monotonic() - t0, "ok" if p.returncode == 0 else "error")
    except subprocess.TimeoutExpired as e:
        out = e.stdout if isinstance(e.stdout, str) else (e.stdout or b"").decode(errors="replace")
        return RunRecord(plan, out, None, time.monotonic() - t0, "timeout")
    except OSError as e:
        return RunRecord(plan, f"Test failure: cannot start {plan.argv[0]}: {e}\n", None, time.monotonic() - t0, "error")


def have_nccl_tests(binary: str = "all_reduce_perf") -> bool:
    return shutil.which(binary) is not None


def busbw_of(text: str) -> tuple[float | None, str | None]:
    """The gate value of a run's output, or why there is none."""
    try:
        r = parse(text)
    except ParseError as e:
        return None, str(e)
    if r.wrong_total > 0 or r.oob_failed:
        return None, "validation failed (wrong results)"
    v = r.busbw_large_gbps()
    return v, None if v is not None else (r.failures[0] if r.failures else "no result rows")


def make_tester(specs: dict[str, "HostSpec"], profile: "Profile | None", opts: NcclOptions, *,
                workdir: str | None = None, launcher: str | None = None, nccl_tests: bool | None = None,
                run: Callable[..., RunRecord] = run_plan, max_parallel: int = 64) -> Tester:
    """A localization Tester that launches each round's group tests concurrently from this node."""
    use_nccl = have_nccl_tests(opts.binary) if nccl_tests is None else nccl_tests
    counter = {"n": 0}

    def one(t: GroupTest, idx: int) -> TestOutcome:
        # where the runner puts the hostfile (run_plan and the SSH runner make their own private one)
        hf = os.path.join(workdir or tempfile.gettempdir(), f"hosts-{idx}.txt")
        plan = multi_node_plan([specs[h] for h in t.nodes], profile, opts, hostfile_path=hf, launcher=launcher,
                               nccl_tests=use_nccl, rail=t.rail)
        if not use_nccl:
            # concurrent torch groups need distinct rendezvous ports
            plan.env["MASTER_PORT"] = str(opts.master_port + idx % 1000)
        rec = run(plan, timeout_s=opts.timeout_s, hostfile_path=hf)
        v, why = busbw_of(rec.stdout)
        err = None if v is not None else (why or rec.status)
        return TestOutcome(v, rec.duration_s, rec.stdout, err)

    def tester(tests: list[GroupTest]) -> list[TestOutcome]:
        base = counter["n"]
        counter["n"] += len(tests)
        with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(tests)))) as ex:
            return list(ex.map(lambda it: one(it[1], base + it[0]), enumerate(tests)))

    return tester


def local_plan(nprocs: int, opts: NcclOptions, profile: "Profile | None" = None) -> LaunchPlan:
    """The torch fallback with `nprocs` local ranks (no launcher, no port): CI and single boxes."""
    env = nccl_env(profile, None, opts)
    return LaunchPlan([sys.executable, opts.bench_script, *opts.size_args(), "--nprocs", str(nprocs)], env,
                      tool="torch", hosts=["localhost"])


def run_localization(specs: list["HostSpec"], profile: "Profile | None", opts: NcclOptions, *,
                     expected_full_gbps: float | None = None, expected_rail_gbps: float | None = None,
                     group_nodes: int = 2, launcher: str | None = None, nccl_tests: bool | None = None,
                     run: Callable[..., RunRecord] = run_plan, workdir: str | None = None) -> dict[str, str]:
    """Localize the slow nodes/NICs among `specs` with real runs launched from this node.

    Returns the `_cluster/` evidence files: nccl/localize.json and each test's raw output.
    Without expected figures the reference is measured (median of the screening round; a
    control pair for the rails)."""
    from clusterkit.fleet.localize import LocalizeConfig, localize

    by_name = {s.name: s for s in specs}
    pass_fraction = float(profile.get("nccl.localize_pass_fraction", 0.9)) if profile is not None else 0.9
    cfg = LocalizeConfig(group_nodes=group_nodes, pass_fraction=pass_fraction,
                         expected_full_gbps=expected_full_gbps, expected_rail_gbps=expected_rail_gbps,
                         rails=list(specs[0].ib_devices) if specs and specs[0].ib_devices else [])
    tester = make_tester(by_name, profile, opts, workdir=workdir, launcher=launcher, nccl_tests=nccl_tests, run=run)
    return localize(list(by_name), tester, cfg, keep_raw=True).evidence_files()
