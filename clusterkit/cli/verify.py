"""`verify`, `collect` and `analyze`: the health-check verbs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from clusterkit.cli._launcher import srun_ready, with_launcher_options
from clusterkit.cli.common import (FormatOpt, InventoryOpt, LimitOpt, OutputOpt, ProfileOpt, SuiteOpt, emit,
                                   require_inventory, with_ssh_options)
from clusterkit.errors import ConfigError
from clusterkit.results import RunResult

if TYPE_CHECKING:
    from clusterkit.fleet.collect import FleetOptions
    from clusterkit.fleet.srun import SrunOptions


HistoryOpt = typer.Option(None, "--history", help="Also store the result in this history DB (see `clusterkit history`).")


def _finish(run: RunResult, fmt: Optional[str], output: Optional[Path], history: Optional[Path] = None) -> None:
    from clusterkit.render import render

    if history is not None:
        from clusterkit.history import History

        with History(history) as h:
            h.record_run(run, kind="verify")

    emit(render(run, fmt, to_terminal=None if output is None else False), output)
    if output is not None and fmt not in (None, "table"):
        # A short verdict on the terminal too, so a cron log says what happened.
        typer.echo(f"clusterkit: {run.status} ({len(run.nodes)} nodes) -> {output}", err=True)
    raise typer.Exit(1 if run.failed() else 0)


class _FleetProgress:
    """A live progress bar on stderr (hosts done of total, elapsed) when it is a terminal;
    problems (unreachable, timeout, failed probes) are printed as they happen."""

    def __init__(self, total: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("collecting"), BarColumn(), MofNCompleteColumn(), TextColumn("hosts"),
                            TimeElapsedColumn(), TextColumn("{task.description}"),
                            console=Console(stderr=True), transient=True)
        self.task = self.bar.add_task("", total=total)

    def __enter__(self) -> "_FleetProgress":
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def __call__(self, host: str, step: str, state: str) -> None:
        if step == "done":
            self.bar.advance(self.task)
        elif state == "start":
            self.bar.update(self.task, description=f"{host}: {step}")
        if state not in ("ok", "start"):
            self.bar.console.print(f"[yellow]{host}[/yellow] {step}: {state}")


def _progress(total: int):
    """The progress view on a terminal; a no-op context when piped (cron, CI)."""
    import contextlib

    if not sys.stderr.isatty():
        return contextlib.nullcontext(None)
    return _FleetProgress(total)


def register(app: typer.Typer) -> None:
    @app.command()
    @with_ssh_options
    @with_launcher_options
    def verify(
        inventory: Optional[Path] = InventoryOpt,
        simulate: bool = typer.Option(False, "--simulate", help="Run on a generated cluster with injected faults (no hardware)."),
        nodes: int = typer.Option(8, "--nodes", help="Simulated cluster size."),
        seed: int = typer.Option(0, "--seed", help="Simulation seed."),
        profile: Optional[str] = ProfileOpt,
        suite: str = SuiteOpt,
        fmt: Optional[str] = FormatOpt,
        output: Optional[Path] = OutputOpt,
        limit: Optional[str] = LimitOpt,
        keep_evidence: Optional[Path] = typer.Option(None, "--keep-evidence", help="Keep the evidence bundles in this directory."),
        fleet: FleetOptions = None,  # type: ignore[assignment]  # --known-hosts etc., from with_ssh_options
        srun: Optional[SrunOptions] = None,  # --launcher srun etc., from with_launcher_options
        history: Optional[Path] = HistoryOpt,
    ) -> None:
        """Collect evidence from every node and analyze it (collect + analyze)."""
        from clusterkit import pipeline

        _check_format(fmt)
        if simulate:
            if nodes < 1 or nodes > 4096:
                raise ConfigError("--nodes must be between 1 and 4096")
            run = pipeline.simulate_run(nodes=nodes, seed=seed, suite=suite, profile=profile, evidence_dir=keep_evidence)
        elif srun is not None:
            run = pipeline.verify_inventory(inventory, suite=suite, profile=profile, limit=limit,
                                            evidence_dir=keep_evidence, srun=srun_ready(srun, fleet, keep_evidence))
        else:
            from clusterkit.inventory import load_inventory

            inv, _ = load_inventory(require_inventory(inventory))  # config errors before any SSH
            with _progress(len(inv.limit(limit).targets())) as progress:
                run = pipeline.verify_inventory(inv, suite=suite, profile=profile, limit=limit,
                                                evidence_dir=keep_evidence, fleet_options=fleet, progress=progress)
        _finish(run, fmt, output, history)

    @app.command()
    @with_ssh_options
    @with_launcher_options
    def collect(
        inventory: Optional[Path] = InventoryOpt,
        out: Path = typer.Option(..., "--out", help="Directory for the evidence bundles (one per node)."),
        profile: Optional[str] = ProfileOpt,
        suite: str = SuiteOpt,
        limit: Optional[str] = LimitOpt,
        fleet: FleetOptions = None,  # type: ignore[assignment]  # --known-hosts etc., from with_ssh_options
        srun: Optional[SrunOptions] = None,  # --launcher srun etc., from with_launcher_options
    ) -> None:
        """Run the probes on every node and store what they printed as evidence bundles."""
        from clusterkit.analysis import ProfileResolver
        from clusterkit.evidence.bundle import Bundle
        from clusterkit.fleet.collect import collect_bundles
        from clusterkit.pipeline import target_hosts
        from clusterkit.suites import load_suite

        hosts = target_hosts(inventory if srun is not None else require_inventory(inventory), limit, srun)
        s = load_suite(suite)
        resolver = ProfileResolver(profile)
        for h in hosts:
            resolver.get(resolver.name_for(h))
        if srun is not None:
            from clusterkit.fleet.srun import collect_srun

            dirs = collect_srun(hosts, suite, profile, out, srun_ready(srun, fleet, out))
        else:
            with _progress(len(hosts)) as progress:
                dirs = collect_bundles(hosts, s, resolver, out, fleet, progress=progress)
        lost = 0
        for d in dirs:
            b = Bundle.open(d)
            if b.outcome != "ok":
                lost += 1
            typer.echo(f"{b.host}: {b.outcome}" + (f" ({b.meta.get('message')})" if b.outcome != "ok" else "")
                       + f" -> {d}")
        raise typer.Exit(1 if lost else 0)

    @app.command()
    def analyze(
        paths: List[Path] = typer.Argument(..., help="Bundle directories, run directories or loose tool-output files "
                                                     "(`-` reads standard input: `dmesg | clusterkit analyze -`)."),
        kind: Optional[str] = typer.Option(None, "--kind", help="Kind of the loose files (default: recognized from content)."),
        profile: Optional[str] = ProfileOpt,
        suite: str = typer.Option("full", "--suite", help="Suite whose checks are applied (default: full)."),
        fmt: Optional[str] = FormatOpt,
        output: Optional[Path] = OutputOpt,
    ) -> None:
        """Turn evidence bundles and loose tool outputs into results."""
        from clusterkit import pipeline

        _check_format(fmt)
        stdin_text = sys.stdin.read() if any(str(p) == "-" for p in paths) else None
        run = pipeline.analyze_paths(list(paths), suite=suite, profile=profile, kind=kind, stdin_text=stdin_text)
        _finish(run, fmt, output)


def _check_format(fmt: Optional[str]) -> None:
    if fmt is not None and fmt not in ("table", "json", "junit"):
        raise ConfigError(f"unknown --format '{fmt}' (table, json, junit)")
