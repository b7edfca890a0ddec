"""The human report: a node summary table, worst node first, then "What to fix" grouped by cause.

`width`: the terminal's columns (the caller clamps it to 80-200); long cells fold inside
their column, so continuation lines keep their indent. `width=None` (piped output, a file)
never wraps: every row and every problem is one line, so `grep gpu17` finds all of it.
The order and the grouping come from clusterkit.triage.
"""

from __future__ import annotations

import io

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from clusterkit.render import UNWRAPPED
from clusterkit.render.fmt import observed, plural
from clusterkit.render.safe_text import terminal_text
from clusterkit.results import NodeResult, RunResult
from clusterkit.triage import Group, node_order, triage, worst_by_host

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "error": "magenta", "skip": "dim"}
_COUNTED = ("pass", "warn", "fail", "error", "skip")


def _t(text: str, style: str = "") -> Text:
    """Text from evidence or a bundle, shown literally: never markup, no escape sequence."""
    return Text(terminal_text(text), style=style)


def _status(n: NodeResult) -> Text:
    label = n.status if n.outcome == "ok" else f"{n.status} ({n.outcome})"
    return Text(label, style=_STYLE[n.status])


def _worst_text(g: Group | None, n_groups: int) -> str:
    if g is None:
        return ""
    text = f"{g.cause.code}: {g.cause.text}" if g.cause.check else g.cause.text
    extra = []
    if g.follows:
        extra.append(f"+{len(g.follows)} from it")
    if n_groups > 1:
        extra.append(f"+{n_groups - 1} more")
    return text + (f" ({', '.join(extra)})" if extra else "")


def _node_table(run: RunResult, groups: list[Group], only_failing: bool, wrap: bool) -> tuple[Table, int]:
    title = f"clusterkit {run.suite} suite, profile {run.profile}"
    if run.simulated:
        title = "SIMULATED cluster (generated evidence, no hardware) - " + title
    t = Table(title=_t(title), show_lines=False)
    t.add_column("node", overflow="fold", no_wrap=not wrap)
    t.add_column("status", no_wrap=not wrap)
    t.add_column("p/w/f/e/s", no_wrap=True)
    t.add_column("worst problem", overflow="fold", ratio=1, no_wrap=not wrap)
    worst = worst_by_host(groups)
    per_host: dict[str | None, int] = {}
    for g in groups:
        per_host[g.host] = per_host.get(g.host, 0) + 1
    hidden = 0
    for n in node_order(run, groups):
        if only_failing and n.status in ("pass", "skip"):
            hidden += 1
            continue
        counts = [sum(1 for c in n.checks if c.status == s) for s in _COUNTED]
        t.add_row(_t(n.host + (" [SIMULATED]" if n.simulated else "")), _status(n), Text("/".join(map(str, counts))),
                  _t(_worst_text(worst.get(n.host), per_host.get(n.host, 0))))
    t.caption = "p/w/f/e/s: checks passed / warned / failed / could not judge (error) / skipped"
    return t, hidden


def _lines(g: Group) -> list[tuple[str, str]]:
    """(style key, text) per line of one group: the cause, its action, what follows from it."""
    p = g.cause
    obs = f" [{observed(p.finding)}]" if p.finding is not None and p.finding.observed is not None else ""
    head = (f"{p.check} {p.code} - " if p.check else f"{p.code} - ") + p.text + obs
    if g.name and g.follows:     # a cause that explains others: say which one
        head += f" (cause: {g.name})"
    out = [(g.severity, head)]
    if p.action:
        out.append(("", f"action: {p.action}"))
    cons = g.consequences()
    if cons:
        out.append(("", f"follows from it: {', '.join(cons)}"))
    return out


def _what_to_fix(con: Console, groups: list[Group], wrap: bool) -> None:
    if not wrap:     # one line each, nothing padded
        for g in groups:
            for i, (sev, text) in enumerate(_lines(g)):
                lead = f"  {sev.upper():5} {g.host or 'cluster'} " if i == 0 else "        "
                con.print(_t(lead + text, _STYLE.get(sev, "")))
        return
    # a grid: the text is the last column, so a folded line keeps the indent of its text
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold", ratio=1)
    for g in groups:
        for i, (sev, text) in enumerate(_lines(g)):
            if i == 0:
                grid.add_row(Text(f"  {sev.upper():5}", style=_STYLE.get(sev, "")), _t(g.host or "cluster"),
                             _t(text, _STYLE.get(sev, "")))
            else:      # action and consequences: indented under the text, every folded line too
                grid.add_row(Text(""), Text(""), Padding(_t(text), (0, 0, 0, 2)))
    con.print(grid)


def render_table(run: RunResult, *, color: bool = False, width: int | None = 120, only_failing: bool = False) -> str:
    wrap = width is not None
    buf = io.StringIO()
    # text from nodes is printed as is: no markup, no emoji codes (":ab:" in a PCI address)
    con = Console(file=buf, force_terminal=color, no_color=not color, width=width or UNWRAPPED, highlight=False,
                  soft_wrap=not wrap, markup=False, emoji=False)
    groups = triage(run)
    table, hidden = _node_table(run, groups, only_failing, wrap)
    con.print(table)
    if hidden:
        con.print(Text(f"({plural(hidden, 'passing node')} not shown: --only-failing)"))
    if groups:
        nodes = len({g.host for g in groups if g.host is not None})
        con.print(f"\nWhat to fix ({plural(len(groups), 'cause')} on {plural(nodes, 'node')}"
                  f"{' and the cluster' if any(g.host is None for g in groups) else ''}, worst first):")
        _what_to_fix(con, groups, wrap)
    quiet = [_t(f"{c.id}: {c.status} - {c.summary}") for c in run.cluster_checks if c.status in ("pass", "skip")]
    if quiet and wrap:      # folded lines stay under the text
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for line in quiet:
            grid.add_row(Text("  cluster"), line)
        con.print(grid)
    for line in quiet if not wrap else []:
        con.print(Text("  cluster ") + line)
    lost = [n.host for n in run.nodes if n.outcome != "ok"]
    con.print(f"\n{plural(len(run.nodes), 'node')}: status {run.status.upper()}"
              + (f", {len(lost)} not reached or cut short" if lost else "") + (" (SIMULATED)" if run.simulated else ""))
    if run.interrupted:
        cut = [n.host for n in run.nodes if n.outcome == "interrupted"]
        con.print(_t(f"Collection stopped by {run.interrupted}: {plural(len(cut), 'host')} cut short"
                     + (f" ({', '.join(cut[:8])}{' ...' if len(cut) > 8 else ''})" if cut else "")
                     + "; this report covers what was collected."))
    return buf.getvalue()
