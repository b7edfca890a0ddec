"""The human report: a node summary table, then every problem with its action."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table
from rich.text import Text

from clusterkit.render.safe_text import terminal_text
from clusterkit.results import RunResult

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "error": "magenta", "skip": "dim"}


def _t(text: str, style: str = "") -> Text:
    return Text(terminal_text(text), style=style)


def render_table(run: RunResult, *, color: bool = False, width: int = 120) -> str:
    buf = io.StringIO()
    con = Console(file=buf, force_terminal=color, no_color=not color, width=width, highlight=False)
    title = f"clusterkit {run.suite} suite, profile {run.profile}"
    if run.simulated:
        title = "SIMULATED cluster (generated evidence, no hardware) - " + title
    t = Table(title=_t(title), show_lines=False)
    t.add_column("node")
    t.add_column("outcome")
    t.add_column("status")
    t.add_column("checks (pass/warn/fail/error/skip)")
    t.add_column("first problem", overflow="fold")
    for n in run.nodes:
        counts = {s: sum(1 for c in n.checks if c.status == s) for s in ("pass", "warn", "fail", "error", "skip")}
        bad = [c for c in n.checks if c.status in ("fail", "error", "warn")]
        bad.sort(key=lambda c: ("fail", "error", "warn").index(c.status))
        first = n.message if n.outcome != "ok" else (f"{bad[0].id}: {bad[0].summary}" if bad else "")
        # evidence text in Text cells: shown literally, never read as markup
        t.add_row(_t(n.host + (" [SIMULATED]" if n.simulated else "")), _t(n.outcome),
                  Text(n.status, style=_STYLE[n.status]), "/".join(str(counts[s]) for s in counts), _t(first or ""))
    con.print(t)
    problems = [(n.host, c) for n in run.nodes for c in n.checks if c.status in ("fail", "error", "warn")]
    problems += [("cluster", c) for c in run.cluster_checks if c.status in ("fail", "error", "warn")]
    if problems:
        con.print("\nWhat to fix:")
        order = {"fail": 0, "error": 1, "warn": 2}
        for host, c in sorted(problems, key=lambda p: (order[p[1].status], p[0], p[1].id)):
            shown = [f for f in c.findings if f.severity != "info"] or c.findings
            if not shown:
                con.print(_t(f"  {c.status.upper():5} {host} {c.id}: {c.summary}", _STYLE[c.status]))
            for f in shown:
                obs = ""
                if f.observed is not None:
                    obs = f" [observed {f.observed}{' ' + f.unit if f.unit else ''}" + (f", limit {f.limit}" if f.limit is not None else "") + "]"
                con.print(_t(f"  {f.severity.upper():5} {host} {c.id} {f.code} - {f.headline()}{obs}",
                             _STYLE.get(f.severity, "")))
                if f.action:
                    con.print(_t(f"        action: {f.action}"))
    for c in run.cluster_checks:
        if c.status in ("pass", "skip"):
            con.print(_t(f"  cluster {c.id}: {c.status} - {c.summary}"))
    lost = sum(1 for n in run.nodes if n.outcome != "ok")
    con.print(f"\n{len(run.nodes)} nodes: status {run.status.upper()}"
              + (f", {lost} not reached" if lost else "") + (" (SIMULATED)" if run.simulated else ""))
    return buf.getvalue()
