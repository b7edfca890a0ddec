"""Renderers: table (terminal), json and junit."""

from __future__ import annotations

import shutil
import sys

from clusterkit.results import RunResult

MIN_COLUMNS, MAX_COLUMNS = 80, 200


def terminal_width() -> int:
    """The terminal's width ($COLUMNS first), kept within 80-200 columns."""
    return max(MIN_COLUMNS, min(MAX_COLUMNS, shutil.get_terminal_size((120, 24)).columns))


def render(run: RunResult, fmt: str | None, *, to_terminal: bool | None = None, only_failing: bool = False) -> str:
    if fmt is None:
        fmt = "table" if (sys.stdout.isatty() if to_terminal is None else to_terminal) else "json"
    if fmt == "json":
        from clusterkit.render.json_out import render_json

        return render_json(run)
    if fmt == "junit":
        from clusterkit.render.junit import render_junit

        return render_junit(run)
    from clusterkit.render.table import render_table

    tty = sys.stdout.isatty() if to_terminal is None else to_terminal
    # on a terminal the table fits it; piped or to a file, lines are never wrapped
    return render_table(run, color=tty, width=terminal_width() if tty else None, only_failing=only_failing)
