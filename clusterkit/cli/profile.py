"""`profile list|show`: what a host will be judged against, resolved through `inherits`."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    prof_app = typer.Typer(help="List profiles and show their resolved thresholds.", no_args_is_help=True)
    app.add_typer(prof_app, name="profile")

    @prof_app.command("list")
    def list_() -> None:
        """Every profile with its description and parent."""
        from clusterkit.profiles import available_profiles, load_profile

        for name in available_profiles():
            p = load_profile(name)
            parent = f" (inherits {p.chain[1]})" if len(p.chain) > 1 else ""
            typer.echo(f"{name}{parent}: {p.description}")

    @prof_app.command("show")
    def show(name: str = typer.Argument(..., help="Profile name, e.g. h100-sxm5-80gb."),
             fmt: str = typer.Option("table", "--format", help="table or json")) -> None:
        """Every threshold the profile sets, and which profile of the chain set it."""
        from clusterkit.errors import ConfigError
        from clusterkit.profiles import load_profile

        p = load_profile(name)
        if fmt == "json":
            typer.echo(json.dumps({"name": p.name, "chain": p.chain, "description": p.description,
                                   "match_names": p.match_names, "values": p.values}, indent=2))
            return
        if fmt != "table":
            raise ConfigError(f"unknown --format '{fmt}' (table, json)")
        typer.echo(f"{p.name}: {p.description}\nchain: {' -> '.join(p.chain)}")
        for key in sorted(p.values):
            typer.echo(f"  {key} = {p.values[key]!r}" + (f"   (from {p.origin[key]})" if p.origin.get(key) != p.name else ""))
