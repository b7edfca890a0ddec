"""`clusterkit checks list`: every check (or a suite's), what it reads and which codes it finds."""

from __future__ import annotations

import json
from typing import Optional

import typer

from clusterkit.cli.common import ChecksOpt, SkipOpt
from clusterkit.errors import ConfigError


def register(app: typer.Typer) -> None:
    checks_app = typer.Typer(help="List the checks: what each reads and which finding codes it gives.",
                             no_args_is_help=True)
    app.add_typer(checks_app, name="checks")

    @checks_app.command("list")
    def list_(
        suite: Optional[str] = typer.Option(None, "--suite", help="Only the checks this suite runs (quick, full, "
                                                                   "or a suite .toml file)."),
        checks: Optional[str] = ChecksOpt,
        skip: Optional[str] = SkipOpt,
        fmt: str = typer.Option("table", "--format", help="table or json."),
    ) -> None:
        """Check id, family, the evidence it needs and the codes it finds (`clusterkit explain CODE`)."""
        from clusterkit.checks.registry import CHECKS
        from clusterkit.codes.explain import check_rows
        from clusterkit.plugins import load_all
        from clusterkit.suites import Suite, load_suite, select_checks

        if fmt not in ("table", "json"):
            raise ConfigError(f"unknown --format '{fmt}' (table, json)")
        load_all()
        base = load_suite(suite) if suite else Suite("all", sorted(CHECKS))
        rows = check_rows(select_checks(base, checks, skip).check_ids)
        if fmt == "json":
            typer.echo(json.dumps(rows, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        from clusterkit.render import console_width

        title = f"{len(rows)} check{'s' if len(rows) != 1 else ''}" + (f" of suite {base.name}" if suite else "")
        t = Table(title=title, title_justify="left")
        for col, opts in (("check", {"no_wrap": True}), ("family", {}), ("needs", {"overflow": "fold"}),
                          ("finds", {"overflow": "fold", "ratio": 1})):
            t.add_column(col, **opts)
        for r in rows:
            scope = " (cluster)" if r["scope"] == "cluster" else ""
            needs = (" or " if r["needs_any"] else ", ").join(r["needs"]) or "-"
            t.add_row(r["id"] + scope, r["family"], needs, ", ".join(r["finds"]) or "-")
        Console(markup=False, emoji=False, highlight=False, **console_width()).print(t)
