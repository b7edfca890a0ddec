"""`clusterkit burnin`: repeated verification cycles stored in history, trends, Slurm drain."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from clusterkit.cli._launcher import srun_ready, with_launcher_options
from clusterkit.cli.common import (ChecksOpt, DbOpt, InventoryOpt, LimitOpt, ProfileOpt, SkipOpt, checked_number,
                                   env_inventory, refuse_with_simulate, with_ssh_options)
from clusterkit.errors import ConfigError
from clusterkit.history import History, default_db_path
from clusterkit.render import console_width
from clusterkit.render.fmt import plural
from clusterkit.triage import node_order, triage, worst_by_host
from clusterkit.timespec import parse_duration

if TYPE_CHECKING:
    from clusterkit.fleet.collect import FleetOptions
    from clusterkit.fleet.srun import SrunOptions

EXIT_OK, EXIT_FAILED = 0, 1


class ProgressView:
    """Rich progress on stderr: overall bar with ETA, a line per node after each cycle."""

    def __init__(self, total: float | None, by_time: bool, quiet: bool):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console = Console(stderr=True, **console_width(sys.stderr))   # piped logs: one line per line
        self.by_time = by_time
        self.quiet = quiet
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=self.console, transient=False, disable=quiet)
        self.task = self.progress.add_task("burn-in", total=total)

    def __enter__(self) -> "ProgressView":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, event: str, **d: Any) -> None:
        p = self.progress
        if event == "cycle_start":
            p.update(self.task, description=f"burn-in cycle {d['cycle'] + 1}",
                     completed=d["elapsed_s"] if self.by_time else d["cycle"])
        elif event == "cycle_done":
            r = d["result"]
            p.update(self.task, completed=None if self.by_time else d["cycle"] + 1)
            bad = [n for n in r.nodes if n.status in ("fail", "error")]
            checks = sum(len(n.checks) for n in r.nodes) + len(r.cluster_checks)
            p.console.print(f"cycle {d['cycle'] + 1}: {plural(len(r.nodes), 'node')}, {plural(checks, 'check')} "
                            f"stored in {d['duration_s']:.1f} s; {len(bad)} failing")
            worst = worst_by_host(triage(r))     # each node's worst problem, not its first check
            for n in node_order(r):
                failing = [c for c in n.checks if c.status in ("fail", "error")]
                g = worst.get(n.host)
                if n.outcome != "ok":
                    p.console.print(f"  {n.host:<16} {n.outcome}: {n.message or ''}")
                elif failing and g is not None:
                    more = f" (+{len(failing) - 1} checks)" if len(failing) > 1 else ""
                    p.console.print(f"  {n.host:<16} {g.severity:<5} {g.cause.check}: {g.cause.code} {g.cause.text}"
                                    f"{more}")
        elif event == "host":
            p.update(self.task, description=f"burn-in cycle {d['cycle'] + 1}: {d['host']} {d['step']}")
        elif event == "trend":
            for r in d["results"]:
                for f in r.findings:
                    p.console.print(f"  trend: {f.code} {f.message}")
        elif event == "slurm":
            for a, err in d["actions"]:
                p.console.print(f"  slurm: {a.action} {a.node}: {err or a.reason}")
        elif event == "drain_refused":
            p.console.print(f"  slurm: NOT draining: {d['failed']} of {d['nodes']} nodes failed, more than "
                            f"{d['limit']:.0%}; this looks like a fleet-wide problem (profile, network), "
                            "not broken nodes")


def _trend_profile(name: str | None):
    from clusterkit.profiles import load_profile

    return load_profile(name or "base")


def register(app: typer.Typer) -> None:
    @app.command("burnin")
    @with_ssh_options
    @with_launcher_options
    def burnin(
        inventory: Optional[Path] = InventoryOpt,
        simulate: bool = typer.Option(False, "--simulate", help="Burn in the simulated cluster (new seed per cycle)."),
        nodes: Optional[int] = typer.Option(None, "--nodes", help="Simulated cluster size (with --simulate; "
                                                                  "default 8)."),
        seed: Optional[int] = typer.Option(None, "--seed", help="First simulation seed (with --simulate; default 0)."),
        suite: str = typer.Option("full", "--suite", help="Suite per cycle (default: full)."),
        checks: Optional[str] = ChecksOpt,
        skip: Optional[str] = SkipOpt,
        profile: Optional[str] = ProfileOpt,
        limit: Optional[str] = LimitOpt,
        duration: Optional[str] = typer.Option(None, "--duration", help="Keep cycling this long (2h, 90m)."),
        cycles: Optional[int] = typer.Option(None, "--cycles", help="Number of cycles (default 1 without --duration)."),
        db: Optional[Path] = DbOpt,
        resume: bool = typer.Option(False, "--resume", help="Continue the newest interrupted burn-in (last 24 h) of "
                                                            "this DB; with -i/--simulate, start one if there is none."),
        drain: bool = typer.Option(False, "--drain", help="Drain failing nodes in Slurm; resume those clusterkit "
                                                          "drained once they pass."),
        max_drain_percent: float = typer.Option(50.0, "--max-drain-percent",
                                                help="Drain nothing when more nodes than this fail in one cycle."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Only failing nodes and the summary."),
        fleet: FleetOptions = None,  # type: ignore[assignment]  # --known-hosts etc., from with_ssh_options
        srun: Optional[SrunOptions] = None,  # --launcher srun etc., from with_launcher_options
    ) -> None:
        """Nightly burn-in: repeated cycles of the long suite, every finished check stored at once."""
        from clusterkit import burnin as bi
        from clusterkit.slurm import Slurm

        refuse_with_simulate(simulate, inventory=inventory, limit=limit, nodes=nodes, seed=seed)
        nodes, seed = 8 if nodes is None else nodes, seed or 0
        if not simulate:
            inventory = env_inventory(inventory)
        checked_number("--max-drain-percent", max_drain_percent, high=100.0, unit="(percent of the nodes reached)")
        if cycles is not None:
            checked_number("--cycles", cycles, low=1)
        if simulate:
            checked_number("--nodes", nodes, low=1, high=4096)
        path = db or default_db_path()
        with History(path) as hist:
            found = bi.resumable(hist) if resume else None
            if resume and found is None and not (simulate or inventory):
                raise ConfigError(f"{path}: no interrupted burn-in of the last 24 h to resume "
                                  "(give -i/--simulate too, to start a new one when there is none)")
            if found is not None:
                run_id, runner_opts = found
            else:
                if not simulate and inventory is None and srun is None:
                    raise ConfigError("missing option --inventory/-i (or use --simulate)")
                if inventory is not None and not inventory.is_file():
                    raise ConfigError(f"{inventory}: no such inventory file")
                runner_opts = bi.BurninOptions(
                    simulate=simulate, inventory=str(inventory) if inventory else None, nodes=nodes, seed=seed,
                    suite=suite, checks=checks, skip=skip, profile=profile, limit=limit,
                    duration_s=parse_duration(duration) if duration else None, cycles=cycles, drain=drain,
                    max_drain_fraction=max_drain_percent / 100.0, ssh=fleet.to_json(),
                    srun=srun_ready(srun, fleet, None).to_json() if srun is not None else None)
                run_id = None
            trend_profile = _trend_profile(runner_opts.profile)
            slurm = Slurm() if runner_opts.drain else None
            if slurm is not None:
                slurm.nodes()  # fail now (exit 2) if Slurm can't be reached, not after hours of burn-in
            by_time = runner_opts.duration_s is not None
            total = runner_opts.duration_s if by_time else float(runner_opts.cycles or 1)
            with ProgressView(total, by_time, quiet) as view:
                cycle_fn = bi.pipeline_cycle(runner_opts, view)
                kw = dict(trend_profile=trend_profile, slurm=slurm, on_event=view)
                b = (bi.Burnin(hist, run_id, runner_opts, cycle_fn, **kw) if run_id is not None
                     else bi.Burnin.start(hist, runner_opts, cycle_fn, **kw))
                view.console.print(f"burn-in run {b.run_id} -> {path}"
                                   + (" (resumed)" if found is not None else ""))
                summary = b.run()
            bad = sorted(h for h, s in summary.node_status.items() if s in ("fail", "error"))
            typer.echo(f"burn-in run {summary.run_id}: {summary.status} after {plural(summary.cycles_done, 'cycle')}; "
                       f"{plural(len(summary.node_status), 'node')}, {len(bad)} failing"
                       + (f": {', '.join(bad)}" if bad else ""))
            if bad and not runner_opts.simulate:       # beside the history: `-l @failed.txt` reruns them
                from clusterkit.retry import failed_path, rerun_hint, write_failed

                written = write_failed(bad, failed_path(directory=path.parent))
                if written is not None:
                    typer.echo(f"clusterkit: {rerun_hint(written, bad)}", err=True)
            sys.exit(EXIT_FAILED if summary.status in ("fail", "error") else EXIT_OK)
