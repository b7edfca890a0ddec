"""`provision`: run the playbooks through ansible-runner, batch by batch, with a health gate."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from clusterkit.cli.common import InventoryOpt, LimitOpt, require_inventory, with_ssh_options
from clusterkit.render.fmt import plural
from clusterkit.retry import failed_path, rerun_hint, write_failed

if TYPE_CHECKING:
    from clusterkit.fleet.collect import FleetOptions


class LiveView:
    """What each host is doing now, from the event stream (a terminal only; silent when piped).

    It shows only while a batch runs: `pause()` takes it off the screen before the batch's report is
    printed, and the next batch's first event brings it back empty, so no table is left behind or
    drawn again after the report."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=True)
        self.rows: dict[str, list] = {}
        self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=True,
                         redirect_stdout=False, redirect_stderr=False)
        self.showing = False

    def _table(self):
        from rich.table import Table

        t = Table(box=None, pad_edge=False)
        for col in ("host", "task", "changed", "failed"):
            t.add_column(col)
        for host, (task, changed, failed) in sorted(self.rows.items()):
            t.add_row(host, task, str(changed), f"[red]{failed}[/red]" if failed else "0")
        return t

    def __call__(self, host: str, task: str, state: str) -> None:
        task0, changed, failed = self.rows.get(host, ["", 0, 0])
        self.rows[host] = [task, changed + (state == "changed"), failed + (state in ("failed", "unreachable"))]
        if not self.showing:
            self.live.start()
            self.showing = True
        self.live.update(self._table())

    def pause(self) -> None:
        if self.showing:
            self.live.stop()
            self.showing = False
        self.rows.clear()
        self.live.update(self._table())

    def __enter__(self) -> "LiveView":
        return self

    def __exit__(self, *exc: object) -> None:
        self.pause()


def _print_batch(run, *, check: bool, diff: bool, total: int) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    con = Console(width=160, highlight=False, soft_wrap=True)
    con.print(f"[bold]batch {run.batch}/{total}[/bold]: {', '.join(run.hosts)}  (log: {run.stdout_path})")
    if check or diff:
        for host, s in sorted(run.summaries.items()):
            verb = "would change" if check else "changed"
            con.print(f"[bold]{host}[/bold] plan: {plural(len(s.plan), 'task')} {verb}")
            for item in s.plan:
                con.print(f"  - {escape(item.task)}" + (f": {escape(item.detail)}" if item.detail else ""))
                if diff and item.diff:
                    for line in item.diff.splitlines():
                        con.print(f"      {escape(line)}")
    t = Table(title=f"batch {run.batch}: ansible-runner {run.status}")
    for col in ("host", "outcome", "ok", "changed", "failed", "unreachable", "skipped", "why"):
        t.add_column(col)
    for host, s in sorted(run.summaries.items()):
        t.add_row(host, s.outcome, str(s.ok), str(s.changed), str(s.failed), str(s.unreachable), str(s.skipped),
                  escape("; ".join(s.messages)))
    con.print(t)
    if run.verify is not None:
        bad = [n for n in run.verify.nodes if n.status in ("fail", "error") or n.outcome != "ok"]
        con.print(f"health gate (verify --suite quick): {run.verify.status}"
                  + (f"; failing: {', '.join(n.host for n in bad)}" if bad else ""))
    elif run.verify_skipped:
        con.print(f"health gate: skipped ({run.verify_skipped})")


def register(app: typer.Typer) -> None:
    @app.command()
    @with_ssh_options
    def provision(
        inventory: Optional[Path] = InventoryOpt,
        check: bool = typer.Option(False, "--check", "-C", help="Change nothing; print what would change per host."),
        diff: bool = typer.Option(False, "--diff", "-D", help="Show each changed file's difference, headed by its "
                                                            "path on the node."),
        limit: Optional[str] = LimitOpt,
        tags: Optional[str] = typer.Option(None, "--tags", "-t", help="Only these roles/tags (comma separated); preflight always runs."),
        serial: Optional[int] = typer.Option(None, "--serial", help="Rolling mode: batches of N nodes, each must pass verify --suite quick before the next."),
        no_verify: bool = typer.Option(False, "--no-verify", help="Skip the verify --suite quick health gate."),
        timeout: int = typer.Option(7200, "--timeout", help="Seconds one batch's playbook run may take before it is stopped (DKMS and nccl-tests builds are in it)."),
        run_dir: Path = typer.Option(Path("clusterkit-runs/provision"), "--run-dir", help="Where each run's private data dir and logs are kept."),
        extra_vars: Optional[list[str]] = typer.Option(None, "--extra-vars", "-e", help="Variables for the playbooks, as ansible-playbook takes them: key=value, inline YAML/JSON, or @FILE (repeatable)."),
        verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="Ansible verbosity (-v, -vv, ... in the run's log)."),
        fleet: FleetOptions = None,  # type: ignore[assignment]  # --known-hosts etc., from with_ssh_options
    ) -> None:
        """Provision the nodes with playbooks/site.yml (through ansible-runner), then verify them.

        The SSH options reach Ansible too: --known-hosts and --accept-new-host-keys decide host-key
        checking, --private-key and --user are the key and user where the inventory names none, -f/--forks
        is Ansible's forks. Hosts that failed go to RUN_DIR/failed.txt: rerun them with --limit @FILE.
        """
        from clusterkit.fleet.provision import provision as run_provision, provision_targets

        path = require_inventory(inventory)
        total = -(-len(provision_targets(path, limit)) // serial) if serial and serial > 0 else 1
        view = LiveView() if sys.stderr.isatty() else None

        def on_batch(run) -> None:
            if view is not None:
                view.pause()          # the live table goes before the batch's report, not after it
            _print_batch(run, check=check, diff=diff, total=total)

        def go():
            return run_provision(path, run_dir, limit=limit, check=check, diff=diff, tags=tags, serial=serial,
                                 verify=not no_verify, timeout_s=timeout, extra_vars=extra_vars, verbosity=verbose,
                                 fleet=fleet, progress=view, on_batch=on_batch)

        if view is not None:
            with view:
                result = go()
        else:
            result = go()
        if result.pending:
            typer.echo(f"clusterkit: stopped after batch {len(result.batches)}; not started: "
                       + "; ".join(",".join(b) for b in result.pending), err=True)
        rerun = result.failed_hosts()
        path = write_failed(rerun, failed_path(directory=result.run_dir))
        word = "check" if check else "provision"
        typer.echo(f"clusterkit: {word} {'FAILED' if result.failed() else 'ok'} "
                   f"({plural(sum(len(b.hosts) for b in result.batches), 'host')}, logs under {result.run_dir})"
                   + (f"; {rerun_hint(path, rerun)}" if path is not None else ""), err=True)
        raise typer.Exit(1 if result.failed() else 0)
