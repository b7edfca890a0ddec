"""`verify`, `collect` and `analyze`: the health-check verbs."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, List, Optional

import typer

from clusterkit.cli._launcher import srun_ready, with_launcher_options
from clusterkit.cli.common import (ChecksOpt, FormatOpt, InventoryOpt, LimitOpt, OutputOpt, ProfileOpt, SkipOpt,
                                   SuiteOpt, emit, refuse_with_simulate, require_inventory, with_ssh_options)
from clusterkit.errors import ConfigError
from clusterkit.fleet.progress import FleetProgress
from clusterkit.results import RunResult

if TYPE_CHECKING:
    from clusterkit.fleet.collect import FleetOptions, StopRequest
    from clusterkit.fleet.srun import SrunOptions


HistoryOpt = typer.Option(None, "--db", "--history", help="Also store the result in this history DB (see `clusterkit "
                                                            "history`).")
CompareOpt = typer.Option(None, "--compare", help="Show the findings that are new, gone or changed since each host's "
                                                  "previous run stored in this history DB.")


OnlyFailingOpt = typer.Option(False, "--only-failing", help="Table: list only the nodes that are not passing.")


def _finish(run: RunResult, fmt: Optional[str], output: Optional[Path], history: Optional[Path] = None,
            only_failing: bool = False, *, compare: Optional[Path] = None, run_dir: Optional[Path] = None,
            failed_txt: bool = True) -> None:
    from clusterkit.render import render
    from clusterkit.render.fmt import plural

    changes = None
    if compare is not None:   # before this run is stored: its hosts' previous runs
        from clusterkit.history import History
        from clusterkit.history_diff import compare_run

        with History(compare, readonly=True) as h:
            changes = compare_run(h, run)
    # The report first: a collection can take an hour, and a locked or broken history
    # database must not cost its result.
    emit(render(run, fmt, to_terminal=None if output is None else False, only_failing=only_failing,
                changes=changes), output)
    if output is not None and fmt not in (None, "table"):
        # A short verdict on the terminal too, so a cron log says what happened.
        typer.echo(f"clusterkit: {run.status} ({plural(len(run.nodes), 'node')}) -> {output}", err=True)
    if history is not None:
        _store_history(run, history)
    if failed_txt and not run.simulated:
        _write_failed(run, output, run_dir)
    if run.interrupted:
        raise typer.Exit(_SIGNAL_EXIT.get(run.interrupted, 130))
    raise typer.Exit(1 if run.failed() else 0)


def _store_history(run: RunResult, history: Path) -> None:
    """Store the run; a failure is a warning with its cause (the report is already out)."""
    import sqlite3

    from clusterkit.history import History

    try:
        with History(history) as h:
            h.record_run(run, kind="verify")
    except (ConfigError, sqlite3.Error, OSError) as e:
        typer.echo(f"clusterkit: warning: the result was not stored in the history {history}: "
                   f"{' '.join(str(e).split())}", err=True)
def _write_failed(run: RunResult, output: Optional[Path], run_dir: Optional[Path]) -> None:
    """failed.txt beside the report (or in the evidence directory) when a host failed: `--limit @failed.txt`."""
    from clusterkit.retry import failed_hosts, failed_path, rerun_hint, write_failed

    hosts = failed_hosts(run)
    path = write_failed(hosts, failed_path(output, run_dir))
    if path is not None:
        typer.echo(f"clusterkit: {rerun_hint(path, hosts)}", err=True)


# The shell's exit status for a process ended by the signal, kept after the partial report.
_SIGNAL_EXIT = {"SIGINT": 128 + signal.SIGINT, "SIGTERM": 128 + signal.SIGTERM}


@contextlib.contextmanager
def _stoppable() -> Iterator["StopRequest"]:
    """SIGINT/SIGTERM ask the run to stop and report what it collected; a second one aborts
    at once. Installed explicitly: a process started with SIGINT ignored (a background job
    of a script) would otherwise never see Ctrl-C as KeyboardInterrupt."""
    from clusterkit.fleet.collect import StopRequest

    stop = StopRequest()

    def handler(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if stop.requested:
            os.write(2, f"\nclusterkit: {name} again: aborted, no report\n".encode())
            os._exit(128 + signum)
        stop.request(name)
        os.write(2, f"\nclusterkit: {name}: stopping; hosts not done are cut short and the report covers what "
                    f"was collected ({name} again aborts at once)\n".encode())

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


class _TerminalProgress:
    """A live line on stderr: phase, hosts done of total, elapsed, ETA, the slowest host and step;
    problems (unreachable, timeout, failed probes) are printed as they happen."""

    def __init__(self, state: FleetProgress):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, ProgressColumn
        from rich.text import Text

        class StateColumn(ProgressColumn):
            def render(self, task: object) -> Text:
                return Text(state.line(), overflow="ellipsis", no_wrap=True)

        self.state = state
        self.bar = Progress(BarColumn(bar_width=16), StateColumn(),
                            console=Console(stderr=True), transient=True)
        self.task = self.bar.add_task("", total=state.total)

    def __enter__(self) -> "_TerminalProgress":
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def __call__(self, host: str, step: str, state: str) -> None:
        self.state(host, step, state)
        if step == "done":
            self.bar.update(self.task, completed=len(self.state.done))
        if host and state not in ("ok", "start", "skipped") and step != "done":
            self.bar.console.print(f"[yellow]{host}[/yellow] {step}: {state}", soft_wrap=True)


class _LogProgress:
    """Not a terminal (cron, CI, a pipe): a line per finished host and one every `every_s`."""

    def __init__(self, state: FleetProgress, every_s: float = 30.0):
        self.state = state
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="clusterkit-progress", daemon=True)

    def _say(self, text: str) -> None:
        sys.stderr.write(f"clusterkit: {text}\n")
        sys.stderr.flush()

    def _tick(self) -> None:
        while not self._stop.wait(self.every_s):
            self._say(self.state.line())

    def __enter__(self) -> "_LogProgress":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def __call__(self, host: str, step: str, state: str) -> None:
        self.state(host, step, state)
        if step == "done":
            self._say(self.state.host_line(host))


def _progress(total: int) -> "_TerminalProgress | _LogProgress":
    state = FleetProgress(total)
    return _TerminalProgress(state) if sys.stderr.isatty() else _LogProgress(state)


def register(app: typer.Typer) -> None:
    @app.command()
    @with_ssh_options
    @with_launcher_options
    def verify(
        inventory: Optional[Path] = InventoryOpt,
        simulate: bool = typer.Option(False, "--simulate", help="Run on a generated cluster with injected faults (no hardware)."),
        nodes: Optional[int] = typer.Option(None, "--nodes", help="Simulated cluster size (with --simulate; "
                                                                  "default 8)."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Simulation seed (with --simulate; default 0)."),
        profile: Optional[str] = ProfileOpt,
        suite: str = SuiteOpt,
        checks: Optional[str] = ChecksOpt,
        skip: Optional[str] = SkipOpt,
        fmt: Optional[str] = FormatOpt,
        output: Optional[Path] = OutputOpt,
        limit: Optional[str] = LimitOpt,
        keep_evidence: Optional[Path] = typer.Option(None, "--keep-evidence", help="Keep the evidence bundles in this directory."),
        fleet: FleetOptions = None,  # type: ignore[assignment]  # --known-hosts etc., from with_ssh_options
        srun: Optional[SrunOptions] = None,  # --launcher srun etc., from with_launcher_options
        history: Optional[Path] = HistoryOpt,
        compare: Optional[Path] = CompareOpt,
        only_failing: bool = OnlyFailingOpt,
    ) -> None:
        """Collect evidence from every node and analyze it (collect + analyze)."""
        from clusterkit import pipeline
        from clusterkit.suites import load_suite, select_checks

        _check_format(fmt)
        refuse_with_simulate(simulate, inventory=inventory, limit=limit, nodes=nodes, seed=seed)
        if compare is not None and not compare.is_file():     # before an hour of collection, not after
            raise ConfigError(f"--compare {compare}: no history database here (store runs with --db first)")
        s = select_checks(load_suite(suite), checks, skip)
        keep_evidence = _run_dir(keep_evidence, "--keep-evidence")
        if simulate:
            nodes = 8 if nodes is None else nodes
            if nodes < 1 or nodes > 4096:
                raise ConfigError("--nodes must be between 1 and 4096")
            run = pipeline.simulate_run(nodes=nodes, seed=seed or 0, suite=s, profile=profile,
                                        evidence_dir=keep_evidence)
        elif srun is not None:
            run = pipeline.verify_inventory(inventory, suite=s, profile=profile, limit=limit,
                                            evidence_dir=keep_evidence, srun=srun_ready(srun, fleet, keep_evidence))
        else:
            from clusterkit.inventory import load_inventory

            inv, _ = load_inventory(require_inventory(inventory))  # config errors before any SSH
            with _stoppable() as stop, _progress(len(inv.limit(limit).targets())) as progress:
                run = pipeline.verify_inventory(inv, suite=s, profile=profile, limit=limit,
                                                evidence_dir=keep_evidence, fleet_options=fleet, progress=progress,
                                                stop=stop)
        _finish(run, fmt, output, history, only_failing, compare=compare, run_dir=keep_evidence)

    @app.command()
    @with_ssh_options
    @with_launcher_options
    def collect(
        inventory: Optional[Path] = InventoryOpt,
        out: Path = typer.Option(..., "--output", "-o", "--out", help="Directory for the evidence bundles (one per "
                                                                       "node); failed.txt goes there too."),
        profile: Optional[str] = ProfileOpt,
        suite: str = SuiteOpt,
        checks: Optional[str] = ChecksOpt,
        skip: Optional[str] = SkipOpt,
        limit: Optional[str] = LimitOpt,
        fleet: FleetOptions = None,  # type: ignore[assignment]  # --known-hosts etc., from with_ssh_options
        srun: Optional[SrunOptions] = None,  # --launcher srun etc., from with_launcher_options
    ) -> None:
        """Run the probes on every node and store what they printed as evidence bundles."""
        from clusterkit.analysis import ProfileResolver
        from clusterkit.evidence.bundle import Bundle
        from clusterkit.fleet.collect import collect_bundles
        from clusterkit.pipeline import target_hosts
        from clusterkit.retry import failed_path, rerun_hint, write_failed
        from clusterkit.suites import load_suite, select_checks

        hosts = target_hosts(inventory if srun is not None else require_inventory(inventory), limit, srun)
        s = select_checks(load_suite(suite), checks, skip)
        resolver = ProfileResolver(profile)
        for h in hosts:
            resolver.get(resolver.name_for(h))
        out = _run_dir(out, "--out")
        stop: Optional[StopRequest] = None
        if srun is not None:
            from clusterkit.fleet.srun import collect_srun

            dirs = collect_srun(hosts, suite, profile, out, srun_ready(srun, fleet, out))
        else:
            with _stoppable() as stop, _progress(len(hosts)) as progress:
                dirs = collect_bundles(hosts, s, resolver, out, fleet, progress=progress, stop=stop)
        lost = []
        for d in dirs:
            b = Bundle.open(d)
            if b.outcome != "ok" and d.name != "_cluster":
                lost.append(b.host)
            typer.echo(f"{b.host}: {b.outcome}" + (f" ({b.meta.get('message')})" if b.outcome != "ok" else "")
                       + f" -> {d}")
        path = write_failed(lost, failed_path(directory=out))
        if path is not None:
            typer.echo(f"clusterkit: {rerun_hint(path, lost)}", err=True)
        if stop is not None and stop.requested:
            raise typer.Exit(_SIGNAL_EXIT.get(stop.reason or "", 130))
        raise typer.Exit(1 if lost else 0)

    @app.command()
    def analyze(
        paths: List[Path] = typer.Argument(..., help="Bundle directories, run directories or loose tool-output files "
                                                     "(`-` reads standard input: `dmesg | clusterkit analyze -`)."),
        kind: Optional[str] = typer.Option(None, "--kind", help="Kind of the loose files (default: recognized from content)."),
        profile: Optional[str] = ProfileOpt,
        suite: Optional[str] = typer.Option(None, "--suite", help="Suite whose checks are applied (default: the one "
                                                                  "the bundles were collected with; full for loose files)."),
        checks: Optional[str] = ChecksOpt,
        skip: Optional[str] = SkipOpt,
        fmt: Optional[str] = FormatOpt,
        output: Optional[Path] = OutputOpt,
        only_failing: bool = OnlyFailingOpt,
    ) -> None:
        """Turn evidence bundles and loose tool outputs into results."""
        from clusterkit import pipeline
        from clusterkit.suites import select_checks

        _check_format(fmt)
        stdin_text = _read_stdin() if any(str(p) == "-" for p in paths) else None
        run = pipeline.analyze_paths(list(paths), suite=suite, profile=profile, kind=kind, stdin_text=stdin_text,
                                     select=lambda s: select_checks(s, checks, skip))
        _finish(run, fmt, output, only_failing=only_failing, failed_txt=False)   # files, not a run over hosts


def _read_stdin() -> bytes:
    """Standard input, bounded like an evidence file: one byte past the limit says it is larger."""
    from clusterkit.evidence.bundle import MAX_FILE_BYTES

    return sys.stdin.buffer.read(MAX_FILE_BYTES + 1)


def _run_dir(path: Optional[Path], option: str) -> Optional[Path]:
    """Where this run's bundles go: a directory already holding something gets a fresh run
    directory inside it (said on stderr), so that no earlier run's nodes are read as current."""
    from clusterkit.evidence.bundle import fresh_run_dir

    if path is None:
        return None
    d = fresh_run_dir(path)
    if d != path:
        typer.echo(f"clusterkit: {option} {path} is not empty; this run's evidence goes to {d}", err=True)
    return d


def _check_format(fmt: Optional[str]) -> None:
    if fmt is not None and fmt not in ("table", "json", "junit"):
        raise ConfigError(f"unknown --format '{fmt}' (table, json, junit)")
