"""Collect on the node itself: the suite's probes run as local processes into a bundle.

For `clusterkit check --local` (Slurm's HealthCheckProgram, a prolog or epilog, and
each task of an `srun` launch). The commands are the ones SSH collection plans
(`plan_commands`) and their output is stored by the same rules (`hostrun.store`), so
the bundle is the one `collect` would have written for this node; as there, once a
tool hangs on a driver (nvidia-smi on a wedged GPU), the commands behind the same
driver are skipped with that reason instead of each waiting out its timeout.

Each command runs in its own process group with its timeout; on expiry the whole
group gets SIGKILL, and a process that does not die (a tool stuck in the kernel on a
wedged GPU) is abandoned rather than waited for. Stdout is capped while it is read.

A budget (seconds, for the whole run) fits the run into a prolog or health-check
slot: no command may take more than half of it (one that does has hung: a wedged
GPU's nvidia-smi is found, and reported, within the slot), each command's limit is
cut to what is left, a load test whose limit exceeds what is left is not started,
and once the budget is spent the remaining commands are recorded as `skipped`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable

from clusterkit.errors import ConfigError
from clusterkit.evidence.bundle import META, BundleWriter
from clusterkit.fleet.hostrun import REMOTE_ENV, store
from clusterkit.fleet.ssh import MAX_CAPTURE_BYTES, NOT_FOUND_EXIT, CommandResult
from clusterkit.fleet.tools import needs
from clusterkit.inventory import HostSpec
from clusterkit.probes.registry import PHASE_LOAD, Command

STDERR_TAIL_BYTES = 64 * 1024
HANG_SHARE = 0.5                 # within a budget, a command running past this share of it is taken as hung
REAP_AFTER_KILL_S = 2.0          # a killed process that is still there after this is abandoned (D state)
_CHUNK = 65536


@dataclass
class LocalRun:
    """What `collect_local` did: the bundle, and the commands the budget left out."""

    root: Path
    ran: int = 0
    over_budget: list[str] = field(default_factory=list)     # bundle paths not run for lack of time
    timed_out: list[str] = field(default_factory=list)


def _read_capped(pipe: IO[bytes], keep: bytearray, limit: int, tail: bool, flags: dict[str, bool]) -> None:
    """Drain `pipe`; keep its first (or, `tail`, last) `limit` bytes; the writer is never blocked."""
    try:
        while True:
            chunk = pipe.read1(_CHUNK) if hasattr(pipe, "read1") else pipe.read(_CHUNK)
            if not chunk:
                return
            if tail:
                keep += chunk
                del keep[:max(0, len(keep) - limit)]
            else:
                room = max(0, limit - len(keep))
                keep += chunk[:room]
                if len(chunk) > room:
                    flags["truncated"] = True
    except (OSError, ValueError):  # closed under us after a kill
        return


def _feed(pipe: IO[bytes], data: bytes) -> None:
    try:
        pipe.write(data)
    except (BrokenPipeError, OSError, ValueError):
        pass  # the command did not read all its input: its exit status says what happened
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def _kill_group(p: subprocess.Popen[bytes], term_grace_s: float = 0.0) -> None:
    """SIGKILL the command's process group; with a grace, SIGTERM it first (srun then cancels its step)."""
    if term_grace_s > 0:
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=term_grace_s)
            return
        except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            p.kill()
        except OSError:
            pass


def run_command(argv: list[str], *, timeout_s: float, stdin: bytes | None = None,
                env: dict[str, str] | None = None, max_bytes: int = MAX_CAPTURE_BYTES,
                term_grace_s: float = 0.0) -> CommandResult:
    """Run one command here, as `SshSession.run` does on a node: a CommandResult, never an exception."""
    command = shlex.join(argv)
    res = CommandResult(command, None, local_start_epoch=time.time())
    t0 = time.monotonic()
    out, err = bytearray(), bytearray()
    flags = {"truncated": False}
    try:
        p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    except FileNotFoundError:
        res.exit_code, res.stderr = NOT_FOUND_EXIT, f"{argv[0]}: command not found\n".encode()
    except OSError as e:      # not executable, too many processes...
        res.status, res.message = "error", f"could not start the command: {e.strerror or e}"
        res.exit_code, res.stderr = 126, f"{argv[0]}: {e.strerror or e}\n".encode()
    else:
        threads = [threading.Thread(target=_read_capped, args=(p.stdout, out, max_bytes, False, flags), daemon=True),
                   threading.Thread(target=_read_capped, args=(p.stderr, err, STDERR_TAIL_BYTES, True, {}),
                                    daemon=True)]
        if stdin is not None:
            threads.append(threading.Thread(target=_feed, args=(p.stdin, stdin), daemon=True))
        for t in threads:
            t.start()
        try:
            res.exit_code = p.wait(timeout=max(timeout_s, 0.0))
        except subprocess.TimeoutExpired:
            _kill_group(p, term_grace_s)
            res.status, res.message = "timeout", f"did not finish within {timeout_s:g} s and was killed"
            try:
                p.wait(timeout=REAP_AFTER_KILL_S)
            except subprocess.TimeoutExpired:
                res.message += " (it did not exit after SIGKILL: stuck in the kernel, e.g. on a wedged device)"
        # a grandchild that kept the pipes open must not hold us past the kill
        for t in threads:
            t.join(timeout=REAP_AFTER_KILL_S if res.status == "timeout" else max(1.0, timeout_s))
        if res.exit_code is not None and res.exit_code < 0:
            res.status, res.message = "error", f"the command was ended by signal {-res.exit_code}"
            res.exit_code = None
    res.local_end_epoch = time.time()
    res.duration_s = time.monotonic() - t0
    res.stdout, res.stderr = bytes(out), bytes(err) if err else res.stderr
    res.stdout_bytes, res.stdout_blank = len(res.stdout), not res.stdout.strip()   # what store() reads
    res.truncated = flags["truncated"]
    return res


Runner = Callable[..., CommandResult]


def collect_local(spec: HostSpec, commands: list[Command], out_dir: Path, *, budget_s: float | None = None,
                  runner: Runner = run_command) -> LocalRun:
    """Run `commands` (in phase order) on this machine into `out_dir/<spec.name>/`.

    The bundle is written beside it and moved into place when complete, replacing the bundle of
    an earlier run (a kept directory never mixes two runs' files; a reader never sees half a bundle)."""
    final = out_dir / spec.name
    if final.exists() and not (final / META).is_file():
        raise ConfigError(f"{final} exists and is not a clusterkit bundle: not replaced (choose another directory)")
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = BundleWriter(Path(tempfile.mkdtemp(prefix=f".{spec.name}.", dir=out_dir)), spec.name,
                          declared=spec.declared())
    run = LocalRun(final)
    end = None if budget_s is None else time.monotonic() + budget_s
    env = dict(os.environ, **REMOTE_ENV)
    hung: dict[str, str] = {}            # driver key -> the command that hung on it
    for cmd in sorted(commands, key=lambda c: c.phase):
        tool, driver = needs(cmd)
        if driver is not None and driver.key in hung:
            writer.record(cmd.path, command=shlex.join(cmd.argv), exit_code=None, duration_s=0.0, status="skipped",
                          message=f"skipped: {hung[driver.key]} hung on this node ({driver.symptom}); this command "
                                  f"also needs {driver.label}", phase=cmd.phase, tool=tool, driver=driver.key)
            continue
        left = None if end is None else end - time.monotonic()
        why = _over_budget(cmd, left, budget_s)
        if why is not None:
            writer.record(cmd.path, command=shlex.join(cmd.argv), exit_code=None, duration_s=0.0, status="skipped",
                          message=why, phase=cmd.phase, over_budget=True)
            run.over_budget.append(cmd.path)
            continue
        # its own limit, shortened in a budget so that a hung tool is found hung (and its driver's other
        # commands skipped) before the budget is gone
        own = cmd.timeout_s if budget_s is None else min(cmd.timeout_s, HANG_SHARE * budget_s)
        limit = own if left is None else min(own, left)
        res = runner(cmd.argv, timeout_s=limit, stdin=cmd.stdin, env=env)
        extra: dict[str, object] = {}
        if res.status == "timeout" and limit < own:
            extra = {"cut_by_deadline": True}     # the budget ran out, not the tool
        elif res.status == "timeout" and driver is not None:
            extra = {"tool": tool, "driver": driver.key}
            hung.setdefault(driver.key, f"`{res.command}`")
        store(writer, cmd, res, limit=limit, **extra)
        run.ran += 1
        if res.status == "timeout":
            run.timed_out.append(cmd.path)
    # The outcome stays `ok` when a command timed out: the node is analyzed on what it has, and
    # the timed-out command is recorded with its status (a hung nvidia-smi is evidence).
    writer.finish(transport={"launcher": "local", "hostname": socket.gethostname()},
                  budget_s=budget_s, over_budget=run.over_budget)
    if final.exists():
        shutil.rmtree(final)
    writer.root.chmod(0o755)      # mkdtemp's 0700: the head reading a shared directory may not be root
    writer.root.rename(final)
    return run


def _over_budget(cmd: Command, left: float | None, budget_s: float | None) -> str | None:
    """Why `cmd` is not started with `left` seconds of the budget, or None to run it."""
    if left is None:
        return None
    if left <= 0:
        return f"not run: the {budget_s:g} s budget was spent before it"
    if cmd.phase == PHASE_LOAD and cmd.timeout_s > left:
        # a load test runs for a set time close to its limit: started, it would only be cut
        return (f"not run: a load test of up to {cmd.timeout_s:g} s does not fit the {left:.0f} s left of "
                f"the {budget_s:g} s budget")
    return None


def this_node() -> str:
    """The Slurm node name slurmd gave us (prolog, epilog, health check, srun task), else `hostname -s`."""
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname().split(".")[0]


def node_spec(node: str | None, inventory: Path | None) -> HostSpec:
    """This node's inventory entry, found by its Slurm node name (`slurm_node`) or host name; a bare
    spec (nothing declared) without an inventory."""
    from clusterkit.inventory import load_inventory

    name = node or this_node()
    if inventory is None:
        return HostSpec(name=name, address="localhost")
    inv, _ = load_inventory(inventory)
    for h in inv.hosts:
        if name in (h.slurm_node, h.name):
            return h
    raise ConfigError(f"{inventory}: no host is this node '{name}' (by name or slurm_node); pass --node NAME")
