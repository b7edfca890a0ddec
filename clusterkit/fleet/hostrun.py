"""One host's way through its commands during `collect`: connect, run, skip, record, finish.

Each host works through its commands on its own thread and SSH connection;
`clusterkit.fleet.collect` only decides how far a host may go (`allowed`
segment) and when it is cut short. Everything here keeps evidence:

- a command that times out is killed and recorded (`timeout after N s`); when
  its tool goes through a driver (nvidia-smi, NVML, dcgmi, NCCL: the NVIDIA
  driver; ipmitool: the BMC), the host's later commands behind that driver are
  recorded as `skipped` with the reason instead of each waiting out its timeout;
- a host cut short (deadline, interrupt, lost connection) records each command
  it did not run as `not_run` with the reason, and its bundle is written at once.
"""

from __future__ import annotations

import logging
import shlex
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from clusterkit.evidence.bundle import BundleWriter
from clusterkit.fleet.ssh import NOT_FOUND_EXIT, CommandResult, HostFailure, SshSession, Target
from clusterkit.fleet.tools import DRIVERS, needs
from clusterkit.inventory import HostSpec
from clusterkit.probes.registry import Command

log = logging.getLogger(__name__)

# callback(host, step, state): step is "connect", a command's bundle path or "done";
# state is "start", then "ok" / "timeout" / "error" / "skipped" / "unreachable" (for "done":
# the host's outcome). Run-wide events come as ("", "phase", description).
Progress = Callable[[str, str, str], None]
SHOW_PATHS = 6          # not-run paths named in a host's message


@dataclass
class HostRun:
    spec: HostSpec
    target: Target
    writer: BundleWriter
    commands: list[Command]                   # in run order (by phase)
    segments: list[int]                       # per command: 0 before the load window, 1 in it, 2 after
    session: SshSession | None = None
    outcome: str = "ok"
    message: str | None = None
    next: int = 0                             # index of the next command to run
    allowed: int = 0                          # the last segment it may run now (sync points)
    running: bool = False                     # a worker owns it (queued or working)
    started: bool = False                     # that worker has begun
    connected: bool = False                   # it was reached at least once
    lost: bool = False                        # cannot go on: unreachable, login refused, deadline, interrupt
    final: bool = False                       # bundle written; nothing more is recorded
    current: tuple[str, float, float] | None = None     # (step, monotonic start, limit s) while one runs
    hung: dict[str, str] = field(default_factory=dict)   # driver key -> the command that hung
    timeouts: list[tuple[str, float]] = field(default_factory=list)   # (command, limit) that timed out
    missed: list[str] = field(default_factory=list)      # sync points it was left out of
    sync_deadline: float | None = None        # set while others wait for it at a sync point
    _cut_paths: list[str] = field(default_factory=list)  # commands cut short while they ran
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def has_work(self) -> bool:
        return self.next < len(self.commands)

    def next_segment(self) -> int | None:
        return self.segments[self.next] if self.has_work else None

    def cut(self, outcome: str, message: str) -> None:
        """Nothing more runs on this host; the first reason that cut it is kept."""
        if not self.lost:
            self.outcome, self.message = outcome, message
        self.lost = True

    def close(self) -> None:
        s, self.session = self.session, None
        if s is not None:
            s.close()

    # -- running ---------------------------------------------------------------------
    def run_next(self, cmd_timeout: Callable[[Command], float], remaining: Callable[[], float],
                 deadline_s: float, say: Progress) -> None:
        """Run (or skip) the next command and record it."""
        cmd = self.commands[self.next]
        tool, driver = needs(cmd)
        if driver is not None and driver.key in self.hung:
            why = (f"skipped: {self.hung[driver.key]} hung on this node ({driver.symptom}); this command also "
                   f"needs {driver.label}")
            with self.lock:
                if self.final:
                    return
                self.writer.record(cmd.path, command=self._shown(cmd), exit_code=None, duration_s=0.0,
                                   status="skipped", message=why, phase=cmd.phase, tool=tool, driver=driver.key)
                self.next += 1
            say(self.name, cmd.path, "skipped")
            return
        left = remaining()
        if left <= 0:
            self.cut("timeout", f"the run's deadline ({deadline_s:g} s) ran out before `{cmd.path}` could run")
            return
        limit = cmd_timeout(cmd)
        cut_by_deadline = limit > left
        self.current = (cmd.path, time.monotonic(), min(limit, left))
        say(self.name, cmd.path, "start")
        try:
            res = self.session.run(cmd.argv, timeout_s=min(limit, left), stdin=cmd.stdin,  # type: ignore[union-attr]
                                   root=cmd.root, env=REMOTE_ENV)
        except HostFailure as f:   # the connection was lost, or closed to cut the host short (interrupt)
            self.cut(f.outcome, f.message)
            self._record_cut(cmd)
            say(self.name, cmd.path, f.outcome)
            return
        finally:
            self.current = None
        extra: dict[str, object] = {}
        if res.status == "timeout" and cut_by_deadline:
            extra = {"cut_by_deadline": True}     # the run ran out of time, not the tool
        elif res.status == "timeout" and driver is not None:
            extra = {"tool": tool, "driver": driver.key}
        with self.lock:
            if self.final:       # cut short while it ran: the bundle is already written
                return
            store(self.writer, cmd, res, limit=min(limit, left), **extra)
            self.next += 1
        say(self.name, cmd.path, res.status)
        if res.status != "timeout":
            return
        if cut_by_deadline:
            self.cut("timeout", f"the run's deadline ({deadline_s:g} s) ran out during `{res.command}`; it was "
                                f"killed")
            return
        self.timeouts.append((res.command, limit))
        if driver is not None:
            self.hung.setdefault(driver.key, f"`{res.command}`")
        if not self.lost:
            self.outcome, self.message = "timeout", self._timeout_message()

    def _timeout_message(self) -> str:
        command, limit = self.timeouts[0]
        more = f" ({len(self.timeouts) - 1} more commands timed out too)" if len(self.timeouts) > 1 else ""
        d = next((DRIVERS[k] for k, c in self.hung.items() if c == f"`{command}`"), None)
        if d is not None:
            return (f"`{command}` hung (timeout after {limit:g} s, killed): {d.symptom}{more}; the commands that "
                    f"need {d.label} were skipped, the others ran")
        return (f"`{command}` did not finish within {limit:g} s and was killed: the tool may hang on this node "
                f"(check `dmesg` and the device it reads){more}; the other commands ran")

    def _shown(self, cmd: Command) -> str:
        """The command as recorded for commands that did not run (sudo shown as it would have run)."""
        return shlex.join(["sudo", "-n", "--", *cmd.argv] if cmd.root and self.target.become else cmd.argv)

    # -- finishing ---------------------------------------------------------------------
    def finish(self, say: Progress, transport: dict[str, object]) -> None:
        """Write the bundle (once): the commands not run are recorded with the reason."""
        with self.lock:
            if self.final:
                return
            self.final = True
            if self.connected and (self.has_work or self._cut_paths):
                self._record_not_run()
            self.writer.set_outcome(self.outcome, self.message)
            extra: dict[str, object] = {"transport": transport}
            if self.missed:
                extra["missed_sync"] = list(self.missed)
            self.writer.finish(**extra)
        self.close()
        say(self.name, "done", self.outcome)

    def _record_cut(self, cmd: Command) -> None:
        """The command in flight when the host was cut short (what it printed is lost with the channel)."""
        with self.lock:
            if not self.final:
                self._record_cut_locked(cmd)

    def _record_cut_locked(self, cmd: Command) -> None:
        cur = self.current
        if cur is None or cur[0] != cmd.path or not self.has_work or self.commands[self.next] is not cmd:
            return
        ran = time.monotonic() - cur[1]
        self.writer.record(cmd.path, command=self._shown(cmd), exit_code=None, duration_s=ran,
                           status="not_run", message=f"cut short after {ran:.1f} s: {self.message}", phase=cmd.phase)
        self.next += 1
        self._cut_paths.append(cmd.path)

    def _record_not_run(self) -> None:
        why = self.message or "not run"
        if self.has_work:
            self._record_cut_locked(self.commands[self.next])
        pending = self.commands[self.next:]
        for c in pending:
            self.writer.record(c.path, command=self._shown(c), exit_code=None, duration_s=0.0, status="not_run",
                               message=f"not run: {why}", phase=c.phase)
        names = self._cut_paths + [c.path for c in pending]
        shown = ", ".join(names[:SHOW_PATHS]) + (f" and {len(names) - SHOW_PATHS} more" if len(names) > SHOW_PATHS
                                                 else "")
        self.message = f"{why}; not run: {shown}"


# The node's locale decides how many tools print numbers and dates; parsers read the C locale.
REMOTE_ENV = {"LC_ALL": "C"}
SUDO_NEEDS_PASSWORD = b"a password is required"      # what `sudo -n` prints (LC_ALL=C) when it would prompt


def connect(h: HostRun, open_session: Callable[[Target], SshSession], timeout_s: float, say: Progress) -> bool:
    """Open the host's session if it has none; False (and the host cut) when that fails."""
    if h.session is not None:
        return True
    say(h.name, "connect", "start")
    h.current = ("connect", time.monotonic(), timeout_s)
    try:
        h.session = open_session(h.target)
    except HostFailure as f:
        h.current = None
        say(h.name, "connect", f.outcome)
        if h.connected:      # reached before, lost between segments
            f = HostFailure(f.outcome, f"reconnecting failed: {f.message}")
        h.cut(f.outcome, f.message)
        return False
    h.current = None
    say(h.name, "connect", "ok")
    h.connected = True
    h.writer.meta["tool_versions"].setdefault("sshd", h.session.server_version)
    return True


def _write_files(writer: BundleWriter, stdout: bytes) -> tuple[list[str], list[str]]:
    """The files of a `files-json` output -> (paths written, problems). Never raises:
    the output comes from a node and may be anything."""
    import json
    from pathlib import PurePosixPath

    from clusterkit.evidence.bundle import META

    try:
        files = json.loads(stdout.decode("utf-8", errors="replace"))
    except ValueError as e:
        return [], [f"output is not the expected JSON object of bundle files: {e}"]
    if not isinstance(files, dict):
        return [], [f"output is not the expected JSON object of bundle files (got a JSON {type(files).__name__})"]
    written, problems = [], []
    for raw, text in files.items():
        path = str(PurePosixPath(raw))           # "a//b" and "./a/b" name a/b: record what is on disk
        if path in (".", "/", META) or raw.endswith("/"):
            problems.append(f"refused bundle path {raw!r}")
            continue
        try:
            writer.write(path, text if isinstance(text, str) else json.dumps(text, indent=1))
            written.append(path)
        except (ValueError, OSError) as e:   # escapes the bundle, NUL, clashes with a directory...
            problems.append(f"could not store {path!r}: {e}")
    return sorted(written), problems


def store(writer: BundleWriter, cmd: Command, res: CommandResult, limit: Optional[float] = None,
          **more: object) -> None:
    """Write the command's stdout into the bundle and record how it ran."""
    extra: dict[str, object] = {"local_start_epoch": round(res.local_start_epoch, 6),
                                "local_end_epoch": round(res.local_end_epoch, 6),
                                "phase": cmd.phase, **more}
    status = res.status
    notes = [res.message] if res.message else []
    if status == "timeout":   # "timeout after N s" is what checks and people look for
        lim = limit if limit is not None else cmd.timeout_s
        notes = [f"timeout after {round(lim, 1):g} s: "
                 + (res.message if "abandoned" in res.message else "killed on the node")]
    if res.exit_code == NOT_FOUND_EXIT:
        extra["not_installed"] = True
        if not cmd.optional:
            status = "error"
            notes.append(f"`{cmd.argv[0]}` is not installed on the node but this probe requires it")
    if res.command.startswith("sudo -n ") and res.exit_code == 1 and SUDO_NEEDS_PASSWORD in res.stderr:
        notes.append(f"sudo needs a password on this node: allow this user passwordless sudo (NOPASSWD) for "
                     f"`{shlex.join(cmd.argv)}`, or log in as root")
    if res.truncated:
        notes.append("stdout cut at the evidence size limit")
    produced = res.exit_code == 0 or bool(res.stdout.strip())
    if produced and cmd.output == "files-json":
        written, problems = _write_files(writer, res.stdout)
        extra["files"] = written
        if problems:
            status = "timeout" if status == "timeout" else "error"    # a hang stays a hang
            notes += problems
            if not written:   # keep what it printed, for the report
                writer.write(cmd.path, res.stdout)
    elif produced:
        writer.write(cmd.path, res.stdout)
    if notes:
        extra["message"] = "; ".join(notes)
    writer.record(cmd.path, command=res.command, exit_code=res.exit_code, duration_s=res.duration_s,
                  stderr=res.stderr.decode("utf-8", errors="replace"), status=status, **extra)
