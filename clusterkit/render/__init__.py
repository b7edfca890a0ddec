"""Renderers: table (terminal), json and junit."""

from __future__ import annotations

import sys

from clusterkit.results import RunResult


def render(run: RunResult, fmt: str | None, *, to_terminal: bool | None = None) -> str:
    if fmt is None:
        fmt = "table" if (sys.stdout.isatty() if to_terminal is None else to_terminal) else "json"
    if fmt == "json":
        from clusterkit.render.json_out import render_json

        return render_json(run)
    if fmt == "junit":
        from clusterkit.render.junit import render_junit

        return render_junit(run)
    from clusterkit.render.table import render_table

    return render_table(run, color=bool(to_terminal if to_terminal is not None else sys.stdout.isatty()))
