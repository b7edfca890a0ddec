"""`clusterkit cost report`: owning versus renting per GPU-hour."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from clusterkit.errors import ConfigError


class CostFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    md = "md"
    html = "html"
    xlsx = "xlsx"


def report(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="cost.toml (default: the built-in example)."),
    fmt: CostFormat = typer.Option(CostFormat.table, "--format", "-f", help="table, json, csv, md, html or xlsx."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the report to this file."),
    from_history: Optional[Path] = typer.Option(None, "--from-history", help="Burn-in history DB: measured power "
                                                "and availability."),
    prometheus: Optional[str] = typer.Option(None, "--prometheus", help="Prometheus base URL: measured power and "
                                             "availability through /api/v1/query."),
) -> None:
    """Cost per GPU-hour of owning against renting, break-even utilization, sensitivity and scenarios."""
    from clusterkit.cost import measure
    from clusterkit.cost.config import load_config
    from clusterkit.cost.render import render_bytes, render_text
    from clusterkit.cost.report import build

    cfg = load_config(config)
    notes: list[str] = []
    for m in ([measure.from_history(from_history)] if from_history else []) + \
             ([measure.from_prometheus(prometheus, cfg.prometheus)] if prometheus else []):
        cfg = measure.apply(cfg, m)
        notes += m.warnings
    rep = build(cfg, notes)
    if cfg.is_example:
        typer.echo("clusterkit: no --config given: running on the built-in example (8-node H100 SXM cluster, "
                   "example prices)", err=True)
    if fmt is CostFormat.xlsx:
        if output is None:
            raise ConfigError("--format xlsx needs --output FILE.xlsx")
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(render_bytes(rep, "xlsx"))
        return
    text = render_text(rep, fmt.value)
    if output is None:
        sys.stdout.write(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)


def register(app: typer.Typer) -> None:
    sub = typer.Typer(name="cost", help="Owning versus renting GPUs, per GPU-hour.", no_args_is_help=True)
    sub.command("report")(report)
    app.add_typer(sub, name="cost")
