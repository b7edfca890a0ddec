"""`clusterkit explain CODE`: what a finding code means, where it comes from, what sets its threshold and
what to do; `clusterkit explain CHECK` for a check. Generated from the registries the checks use."""

from __future__ import annotations

import json

import typer

from clusterkit.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command()
    def explain(
        name: str = typer.Argument(..., metavar="CODE|CHECK",
                                   help="A finding code (FABRIC_PORT_RATE_LOW, GPU_XID_79) or a check id (fabric.ports)."),
        fmt: str = typer.Option("table", "--format", help="table (text) or json."),
    ) -> None:
        """What a finding code means, the evidence and checks it comes from, its thresholds, and the action."""
        from clusterkit.codes import suggestions
        from clusterkit.codes.explain import explain_check, explain_code, render_check, render_code
        from clusterkit.render import terminal_width

        if fmt not in ("table", "json"):
            raise ConfigError(f"unknown --format '{fmt}' (table, json)")
        d = explain_check(name) if "." in name else explain_code(name)
        if d is None:
            near = suggestions(name)
            raise ConfigError(f"'{name}' is no finding code or check of clusterkit"
                              + (f" (did you mean {', '.join(near)}?)" if near else
                                 "; `clusterkit checks list` lists the checks and the codes they find"))
        if fmt == "json":
            typer.echo(json.dumps(d, indent=2, default=str))
        else:
            render = render_check if "." in name else render_code
            typer.echo(render(d, terminal_width()), nl=False)
