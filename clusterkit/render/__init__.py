"""Renderers: table (terminal), json and junit."""

from __future__ import annotations

import shutil
import sys
from typing import Any

from clusterkit.results import RunResult

MIN_COLUMNS, MAX_COLUMNS = 80, 200
UNWRAPPED = 1_000_000          # "no width limit" for rich: piped lines are never hard-wrapped


def terminal_width() -> int:
    """The terminal's width ($COLUMNS first), kept within 80-200 columns."""
    return max(MIN_COLUMNS, min(MAX_COLUMNS, shutil.get_terminal_size((120, 24)).columns))


def console_width(stream: Any = None) -> dict[str, Any]:
    """rich Console options for `stream` (default stdout): the terminal's width on a terminal;
    piped (cron, CI, `| grep`), no width limit, so a line is never cut in two."""
    stream = stream or sys.stdout
    if stream.isatty():
        return {"width": terminal_width()}
    return {"width": UNWRAPPED, "soft_wrap": True}


def render(run: RunResult, fmt: str | None, *, to_terminal: bool | None = None, only_failing: bool = False,
           changes: Any = None) -> str:
    """`changes`: a clusterkit.history_diff.Changes (verify --compare), shown after the report."""
    if fmt is None:
        fmt = "table" if (sys.stdout.isatty() if to_terminal is None else to_terminal) else "json"
    if fmt == "json":
        from clusterkit.render.json_out import render_json

        return render_json(run, changes)
    if fmt == "junit":
        from clusterkit.render.junit import render_junit

        return render_junit(run)
    from clusterkit.render.table import render_table

    tty = sys.stdout.isatty() if to_terminal is None else to_terminal
    # on a terminal the table fits it; piped or to a file, lines are never wrapped
    text = render_table(run, color=tty, width=terminal_width() if tty else None, only_failing=only_failing)
    if changes is not None:
        from clusterkit.history_diff import render_text

        text += "\n" + render_text(changes, "Since each host's previous stored run:")
    return text
