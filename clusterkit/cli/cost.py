"""`clusterkit cost report` (owning against renting, year by year) and `clusterkit cost init`."""

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
    fmt: CostFormat = typer.Option(CostFormat.table, "--format", help="table, json, csv, md, html or xlsx."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the report to this file."),
    currency: Optional[str] = typer.Option(None, "--currency", help="Report in this currency (through the dated "
                                           "exchange rates of the catalog or the config's [fx] tables)."),
    from_history: Optional[Path] = typer.Option(None, "--db", "--from-history", help="Burn-in history DB: measured "
                                                "power, GPU-node uptime and GEMM/NCCL figures."),
    prometheus: Optional[str] = typer.Option(None, "--prometheus", help="Prometheus base URL: measured power and "
                                             "GPU-node uptime through its HTTP API."),
) -> None:
    """Owning against renting, year by year: NPV, IRR, payback, levelized cost per GPU-hour, sensitivity, scenarios."""
    from clusterkit.cost import measure
    from clusterkit.cost.config import load_config
    from clusterkit.cost.render import render_bytes, render_text
    from clusterkit.cost.report import build

    cfg = load_config(config, report_currency=currency.upper() if currency else None)
    notes: list[str] = []
    for m in ([measure.from_history(from_history)] if from_history else []) + \
             ([measure.from_prometheus(prometheus, cfg.prometheus)] if prometheus else []):
        cfg = measure.apply(cfg, m)
        notes += m.warnings
    rep = build(cfg, notes)
    if cfg.is_example:
        typer.echo("clusterkit: no --config given: running on the built-in example (8-node H100 SXM cluster, "
                   "example prices); `clusterkit cost init cost.toml` writes it out to edit", err=True)
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


def init(
    path: Path = typer.Argument(Path("cost.toml"), help="Where to write the config."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented cost config to start from (the built-in example, every field explained)."""
    from clusterkit.cost.config import EXAMPLE_CONFIG

    if path.exists() and not force:
        raise ConfigError(f"{path}: already exists (use --force to overwrite it)")
    text = EXAMPLE_CONFIG.read_text().replace(
        'description = "Example:', 'description = "My cluster (started from the example):', 1)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as e:
        raise ConfigError(f"{path}: cannot write: {e.strerror}") from None
    typer.echo(f"wrote {path}: replace the example figures with your quotes, then "
               f"`clusterkit cost report -c {path}`", err=True)


def register(app: typer.Typer) -> None:
    sub = typer.Typer(name="cost", help="Owning versus renting GPUs: cash flows, NPV, IRR, cost per GPU-hour.",
                      no_args_is_help=True)
    sub.command("report")(report)
    sub.command("init")(init)
    app.add_typer(sub, name="cost")
