"""`inventory check|show`: validate and print the resolved hosts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from clusterkit.cli.common import InventoryOpt, LimitOpt, require_inventory
from clusterkit.render.fmt import plural


def register(app: typer.Typer) -> None:
    inv_app = typer.Typer(help="Validate and show the inventory.", no_args_is_help=True)
    app.add_typer(inv_app, name="inventory")

    @inv_app.command("check")
    def check(inventory: Optional[Path] = InventoryOpt) -> None:
        """Validate every host's variables; each problem names file, host and variable."""
        from clusterkit.inventory import load_inventory

        path = require_inventory(inventory)
        inv, problems = load_inventory(path, strict=False)
        problems = list(problems) + _coherence(inv.hosts, str(path))
        for p in problems:
            typer.echo(str(p), err=True)
        if problems:
            typer.echo(f"clusterkit: {plural(len(problems), 'problem')} in {path}", err=True)
            raise typer.Exit(2)
        typer.echo(f"{path}: {plural(len(inv.hosts), 'host')} OK")

    @inv_app.command("show")
    def show(inventory: Optional[Path] = InventoryOpt, limit: Optional[str] = LimitOpt,
             fmt: str = typer.Option("table", "--format", help="table or json")) -> None:
        """Print the resolved hosts (after groups, ranges and vars)."""
        from clusterkit.errors import ConfigError
        from clusterkit.inventory import load_inventory

        inv, _ = load_inventory(require_inventory(inventory), strict=False)
        inv = inv.limit(limit)
        if fmt == "json":
            typer.echo(json.dumps([{"name": h.name, "address": h.address, "port": h.port, "user": h.user,
                                    "jump_host": h.jump_host, **h.declared()} for h in inv.hosts], indent=2))
            return
        if fmt != "table":
            raise ConfigError(f"unknown --format '{fmt}' (table, json)")
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"{inv.source}: {plural(len(inv.hosts), 'host')}")
        for col in ("host", "address", "user", "via", "groups", "gpu_model", "gpus", "fabric", "rack"):
            t.add_column(col)
        from rich.text import Text

        from clusterkit.render.safe_text import terminal_text

        for h in inv.hosts:
            fabric = (f"{len(h.ib_devices)}x IB {h.ib_rate_gbps}G " if h.ib_devices else "") + \
                     (f"{len(h.roce_interfaces)}x RoCE {h.roce_rate_gbps}G" if h.roce_interfaces else "")
            # shown literally: an inventory may hold names `inventory check` refuses
            t.add_row(*(Text(terminal_text(v)) for v in (
                h.name, f"{h.address}:{h.port}", h.user or "", h.jump_host or "", ",".join(h.groups),
                h.gpu_model or "", str(h.gpu_count), fabric.strip(), h.rack or "")))
        Console(width=160).print(t)


def _coherence(hosts, source: str) -> list:
    """Version-coherence problems (playbooks/vars/versions.yml), named by the inventory file."""
    from clusterkit.versions import coherence_problems

    return list(coherence_problems(hosts, source=source))
