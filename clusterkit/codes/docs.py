"""The code tables of docs/findings*.md, and the series tables of docs/metrics.md, generated from the
declarations (clusterkit/codes/*.toml, clusterkit/prom_names.py).

Each table sits between a begin marker naming its page and section and an end marker; the rest of
the page is prose written by hand. `python -m clusterkit.codes --write` rewrites the tables, and a
test fails when a page is not what the declarations give.
"""

from __future__ import annotations

import re
from pathlib import Path

from clusterkit.codes import PAGES, CodeInfo, entries

_BEGIN = "<!-- codes {page}/{section}: generated from clusterkit/codes/{page}.toml by `python -m clusterkit.codes --write`; edit there -->"
_END = "<!-- end of generated codes -->"
_REGION = re.compile(r"<!-- codes (\w+)/(\w+):[^\n]*-->\n.*?" + re.escape(_END), re.S)


def _cell(text: str) -> str:
    """Markdown table cell: pipes escaped; `<` outside code spans as an entity (`<bus id>` is no HTML tag)."""
    parts = text.replace("|", "\\|").split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;") for i, p in enumerate(parts))


def _code_cell(e: CodeInfo) -> str:
    names = e.name
    if e.aliases:
        names += f" (earlier: {', '.join(e.aliases)}" + (f"; {e.alias_note}" if e.alias_note else "") + ")"
    return names


def _source_cell(e: CodeInfo) -> str:
    who = ", ".join(f"`{c}`" for c in e.checks) if e.checks and e.checks != ("*",) else "any check"
    if e.emitter:
        who = e.emitter if not e.checks else f"{who}; {e.emitter}"
    if e.thresholds:
        who += "; thresholds " + ", ".join(f"`{k}`" for k in e.thresholds)
    return who


def render_table(page: str, section: str) -> str:
    rows = ["| code | severity | meaning | action | emitted by |", "|---|---|---|---|---|"]
    for e in entries(page, section):
        rows.append("| " + " | ".join(_cell(x) for x in (_code_cell(e), e.severity, e.meaning, e.action,
                                                          _source_cell(e))) + " |")
    return "\n".join(rows)


def region(page: str, section: str) -> str:
    return _BEGIN.format(page=page, section=section) + "\n" + render_table(page, section) + "\n" + _END


# Other generated tables: name -> (the page, where they come from, the function that writes them)
_OTHER = re.compile(r"<!-- (series|renamed): generated from [^\n]*-->\n.*?<!-- end of generated \1 -->", re.S)


def _other(name: str) -> str:
    from clusterkit import prom_names

    body = {"series": prom_names.docs_series_table, "renamed": prom_names.docs_renamed_table}[name]()
    return (f"<!-- {name}: generated from clusterkit/prom_names.py by `python -m clusterkit.codes --write`; edit "
            f"there -->\n{body}\n<!-- end of generated {name} -->")


def updated(text: str) -> str:
    """`text` (a page) with every generated table replaced by what the declarations give now."""
    text = _REGION.sub(lambda m: region(m.group(1), m.group(2)), text)
    return _OTHER.sub(lambda m: _other(m.group(1)), text)


METRICS_PAGE = "docs/metrics.md"


def stale_pages(root: Path) -> list[str]:
    """Pages whose tables differ from the declarations, or that lack a section's table."""
    out = []
    text = (root / METRICS_PAGE).read_text()
    if updated(text) != text or {m.group(1) for m in _OTHER.finditer(text)} != {"series", "renamed"}:
        out.append(METRICS_PAGE)
    for page, (path, sections) in PAGES.items():
        text = (root / path).read_text()
        found = {(m.group(1), m.group(2)) for m in _REGION.finditer(text)}
        if updated(text) != text or found != {(page, s) for s in sections}:
            out.append(path)
    return out


def write_pages(root: Path) -> list[str]:
    changed = []
    for path in [p for p, _ in PAGES.values()] + [METRICS_PAGE]:
        p = root / path
        text = p.read_text()
        new = updated(text)
        if new != text:
            p.write_text(new)
            changed.append(path)
    return changed
