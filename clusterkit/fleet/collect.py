"""Collect: run the suite's probes on every host over SSH into evidence bundles.

Work goes phase by phase (`Command.phase`): every host finishes a phase before
any host starts the next, so the counter snapshots taken before and after a
load test bracket that test on all nodes. Within a phase a host's commands run
in order on its one SSH connection, which stays open for the next phases.

Each host gets `out_dir/<host>/` (a `BundleWriter` bundle): stdout as printed at
`Command.path` (for `output="files-json"`, the files of the JSON object it
prints), and one `commands` entry per command with the controller's clock
around it (`local_start_epoch`/`local_end_epoch`, for clock-skew analysis).
Stdout is stored when the command exited 0 or printed something; a tool that is
not installed (exit 127) leaves only its entry, which is evidence, not an error.

Host outcomes: `ok`; `unreachable` and `error` (could not connect or log in: no
evidence); `timeout` (a command overran its `timeout_s`, or the run's deadline
ran out; the evidence gathered until then is kept).
"""

from __future__ import annotations

import json
import logging
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Optional

from clusterkit.analysis import ProfileResolver
from clusterkit.checks.registry import CHECKS
from clusterkit.evidence.bundle import META, BundleWriter
from clusterkit.fleet.hostkeys import KnownHosts
from clusterkit.fleet.ssh import (NOT_FOUND_EXIT, CommandResult, Deadline, HostFailure, SshSession, Target,
                                  fan_out, target_for)
from clusterkit.inventory import HostSpec
from clusterkit.plugins import load_all
from clusterkit.probes.registry import Command, ProbeEnv, probes_for
from clusterkit.suites import Suite

log = logging.getLogger(__name__)

# callback(host, step, state): step is "connect", a command's bundle path or "done";
# state is "start", then "ok" / "timeout" / "error" / "unreachable" (for "done": the host's outcome).
Progress = Callable[[str, str, str], None]
# Sessions stay open between phases up to this many hosts (one socket and one
# paramiko thread each); larger runs reconnect per phase instead.
KEEP_OPEN_MAX_HOSTS = 256
# The node's locale decides how many tools print numbers and dates; parsers read the C locale.
REMOTE_ENV = {"LC_ALL": "C"}
SUDO_NEEDS_PASSWORD = b"a password is required"      # what `sudo -n` prints (LC_ALL=C) when it would prompt


@dataclass
class FleetOptions:
    known_hosts: Optional[Path] = None          # None: ~/.ssh/known_hosts (+ /etc/ssh/ssh_known_hosts)
    accept_new_host_keys: bool = False          # record unknown keys (never replaces a changed one)
    connect_timeout_s: float = 10.0
    deadline_s: float = 1800.0                  # the whole run, all phases
    concurrency: int = 64
    identity_file: Optional[Path] = None        # default key where the inventory names none
    user: Optional[str] = None                  # default user where the inventory names none

    _PATHS = ("known_hosts", "identity_file")

    def to_json(self) -> dict[str, Any]:
        """Plain values (paths as text), e.g. for a burn-in to resume with the same options."""
        d = asdict(self)
        return {k: str(v) if k in self._PATHS and v is not None else v for k, v in d.items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "FleetOptions":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**{k: Path(v) if k in cls._PATHS and v is not None else v for k, v in known.items()})


@dataclass
class _Host:
    spec: HostSpec
    target: Target
    writer: BundleWriter
    commands: list[Command]
    session: SshSession | None = None
    outcome: str = "ok"
    message: str | None = None
    done: bool = False                          # unreachable/error/deadline: nothing more to run
    ran: int = 0                                # commands run so far

    def fail(self, outcome: str, message: str) -> None:
        if self.outcome == "ok" or outcome != "timeout":
            self.outcome, self.message = outcome, message
        self.done = True


def plan_commands(hosts: list[HostSpec], suite: Suite, profiles: ProfileResolver) -> dict[str, list[Command]]:
    """The commands each host runs: the probes that produce what the suite's checks need."""
    load_all()
    needs = sorted({n for cid in suite.check_ids if cid in CHECKS for n in CHECKS[cid].needs})
    probes = [p for p in probes_for(needs) if p.name not in suite.skip_probes]
    plans: dict[str, list[Command]] = {}
    for spec in hosts:
        profile = profiles.get(profiles.name_for(spec))
        cmds: list[Command] = []
        for p in probes:
            cmds += p.plan(ProbeEnv(spec.name, spec, profile, suite.params_for(p.name)))
        plans[spec.name] = cmds
    return plans


def collect_bundles(hosts: list[HostSpec], suite: Suite, profiles: ProfileResolver, out_dir: Path,
                    options: FleetOptions, progress: Progress | None = None) -> list[Path]:
    """Collect every host's evidence into `out_dir/<host>/`, then the cluster-wide steps the
    suite asks for (multi-node NCCL) into `out_dir/_cluster/`; returns the bundle directories."""
    from clusterkit.fleet.cluster_steps import run_cluster_steps

    dirs = collect_planned(hosts, plan_commands(hosts, suite, profiles), out_dir, options, progress)
    cluster = run_cluster_steps(hosts, suite, profiles, out_dir, options)
    return dirs + ([cluster] if cluster is not None else [])


def collect_planned(hosts: list[HostSpec], plans: dict[str, list[Command]], out_dir: Path,
                    options: FleetOptions, progress: Progress | None = None) -> list[Path]:
    """`collect_bundles` for explicit per-host commands."""
    known = KnownHosts(options.known_hosts, accept_new=options.accept_new_host_keys)
    deadline = Deadline(options.deadline_s)
    say = _safe(progress)
    runs = [
        _Host(spec, target_for(spec, user=options.user, identity_file=options.identity_file, inventory=hosts),
              BundleWriter(out_dir / spec.name, spec.name, declared=spec.declared()),
              list(plans.get(spec.name, [])))
        for spec in hosts
    ]
    keep_open = len(runs) <= KEEP_OPEN_MAX_HOSTS
    phases = sorted({c.phase for r in runs for c in r.commands})

    def work(phase: int) -> Callable[[_Host], None]:
        def run_phase(h: _Host) -> None:
            try:
                _run_phase(h, phase, known, options, deadline, say)
            except Exception as e:  # a bug must cost one host, not the run
                log.debug("host %s crashed", h.spec.name, exc_info=True)
                h.fail("error", f"internal error while collecting: {type(e).__name__}: {e} "
                                f"(report this as a clusterkit bug)")
            finally:
                if not keep_open or h.done:
                    _close(h)
        return run_phase

    def late(h: _Host) -> None:
        h.fail("timeout", f"the run's deadline ({options.deadline_s:g} s) ran out before this host's turn")

    try:
        for i, phase in enumerate(phases or [-1]):
            # a host with nothing to run is still connected once: "ok" must mean reachable
            todo = [h for h in runs if not h.done and (any(c.phase == phase for c in h.commands)
                                                       or i == 0 and not h.commands)]
            fan_out(todo, work(phase), concurrency=options.concurrency, deadline=deadline, on_not_started=late)
    except BaseException:   # Ctrl-C: say which hosts were cut short, keep what was collected
        for h in runs:
            if h.outcome == "ok" and h.ran < len(h.commands):
                h.outcome, h.message = "error", "collection interrupted before all of this host's commands ran"
        raise
    finally:
        for h in runs:
            _close(h)
            h.writer.set_outcome(h.outcome, h.message)
            h.writer.finish(transport=_transport_meta(h))
            say(h.spec.name, "done", h.outcome)
    return [h.writer.root for h in runs]


def _safe(progress: Progress | None) -> Progress:
    def say(host: str, step: str, state: str) -> None:
        if progress is not None:
            try:
                progress(host, step, state)
            except Exception:  # a display problem must not stop collection
                log.debug("progress callback failed", exc_info=True)
    return say


def _close(h: _Host) -> None:
    if h.session is not None:
        h.session.close()
        h.session = None


def _transport_meta(h: _Host) -> dict[str, object]:
    t = h.target
    return {"address": t.endpoint.address, "port": t.endpoint.port, "user": t.endpoint.user,
            "jump_hosts": [str(j) for j in t.jumps], "become": t.become}


def _run_phase(h: _Host, phase: int, known: KnownHosts, options: FleetOptions, deadline: Deadline,
               say: Progress) -> None:
    name = h.spec.name
    if h.session is None:
        say(name, "connect", "start")
        try:
            h.session = SshSession.open(h.target, known, connect_timeout_s=options.connect_timeout_s,
                                        deadline=deadline)
        except HostFailure as f:
            say(name, "connect", f.outcome)
            h.fail(f.outcome, f.message)
            return
        say(name, "connect", "ok")
        h.writer.meta["tool_versions"].setdefault("sshd", h.session.server_version)
    for cmd in (c for c in h.commands if c.phase == phase):
        left = deadline.remaining()
        if left <= 0:
            h.fail("timeout", f"the run's deadline ({deadline.seconds:g} s) ran out before `{cmd.path}` "
                              f"(and later commands) could run")
            return
        say(name, cmd.path, "start")
        cut_by_deadline = cmd.timeout_s > left
        try:
            res = h.session.run(cmd.argv, timeout_s=min(cmd.timeout_s, left), stdin=cmd.stdin,
                                root=cmd.root, env=REMOTE_ENV)
        except HostFailure as f:
            say(name, cmd.path, f.outcome)
            h.fail(f.outcome, f.message)
            return
        _store(h.writer, cmd, res)
        h.ran += 1
        say(name, cmd.path, res.status)
        if res.status == "timeout":
            if cut_by_deadline:
                h.fail("timeout", f"the run's deadline ({deadline.seconds:g} s) ran out during "
                                  f"`{res.command}`; it was killed")
                return
            if h.outcome == "ok":
                h.outcome = "timeout"
                h.message = (f"`{res.command}` did not finish within {cmd.timeout_s:g} s and was killed: the "
                             f"tool may hang on this node (check `dmesg` and the device it reads); the other "
                             f"commands ran")


def _write_files(writer: BundleWriter, stdout: bytes) -> tuple[list[str], list[str]]:
    """The files of a `files-json` output -> (paths written, problems). Never raises:
    the output comes from a node and may be anything."""
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


def _store(writer: BundleWriter, cmd: Command, res: CommandResult) -> None:
    """Write the command's stdout into the bundle and record how it ran."""
    extra: dict[str, object] = {"local_start_epoch": round(res.local_start_epoch, 6),
                                "local_end_epoch": round(res.local_end_epoch, 6),
                                "phase": cmd.phase}
    status = res.status
    notes = [res.message] if res.message else []
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
            status = "error"
            notes += problems
            if not written:   # keep what it printed, for the report
                writer.write(cmd.path, res.stdout)
    elif produced:
        writer.write(cmd.path, res.stdout)
    if notes:
        extra["message"] = "; ".join(notes)
    writer.record(cmd.path, command=res.command, exit_code=res.exit_code, duration_s=res.duration_s,
                  stderr=res.stderr.decode("utf-8", errors="replace"), status=status, **extra)
