"""The code tables of docs/findings*.md, generated from the declarations.

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


def updated(text: str) -> str:
    """`text` (a page) with every generated table replaced by what the declarations give now."""
    return _REGION.sub(lambda m: region(m.group(1), m.group(2)), text)


def stale_pages(root: Path) -> list[str]:
    """Pages whose tables differ from the declarations, or that lack a section's table."""
    out = []
    for page, (path, sections) in PAGES.items():
        text = (root / path).read_text()
        found = {(m.group(1), m.group(2)) for m in _REGION.finditer(text)}
        if updated(text) != text or found != {(page, s) for s in sections}:
            out.append(path)
    return out


def write_pages(root: Path) -> list[str]:
    changed = []
    for path, _ in PAGES.values():
        p = root / path
        text = p.read_text()
        new = updated(text)
        if new != text:
            p.write_text(new)
            changed.append(path)
    return changed
