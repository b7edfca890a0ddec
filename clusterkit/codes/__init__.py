"""Finding codes, each declared once: meaning, action, who emits it, from which evidence, and which
profile keys set its threshold.

The declarations are `clusterkit/codes/<page>.toml`, one file per documentation page
(`core` -> docs/findings.md, `gpu` -> docs/findings-gpu.md, ...). Those pages' code tables are
generated from them (`python -m clusterkit.codes --write`), `clusterkit explain` and `clusterkit
checks list` read them, and so do the history and the exporter for the earlier names (aliases) of a
code. Tests check that every code the code base emits is declared here, and that the pages are current.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
# declaration file -> (documentation page, its sections in order); a section is one table of the page
PAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "core": ("docs/findings.md", ("main", "nodes")),
    "gpu": ("docs/findings-gpu.md", ("main", "pcie")),
    "fabric": ("docs/findings-fabric.md", ("main",)),
    "nccl": ("docs/findings-nccl.md", ("main",)),
    "burnin": ("docs/findings-burnin.md", ("main",)),
    "provision": ("docs/findings-provision.md", ("main",)),
}
LEVELS = ("fail", "error", "warn", "info")
_KEYS = {"code", "codes", "pattern", "section", "severity", "meaning", "action", "checks", "emitter", "evidence",
         "thresholds", "aliases", "alias_note"}


class CatalogError(ValueError):
    """A declaration file is malformed (a bug in the package, caught by the tests)."""


@dataclass(frozen=True)
class CodeInfo:
    """One documented meaning: a code (or a few codes that share it, or a family of codes)."""

    codes: tuple[str, ...]          # the codes this entry documents; for a family, its display name
    pattern: str | None             # a family of codes (`IB_*_INCREASED`), matched with fnmatch
    page: str                       # core, gpu, fabric, ... (the declaration file)
    section: str
    severity: str                   # as documented: "fail / warn", with the conditions of each
    meaning: str
    action: str
    checks: tuple[str, ...]         # check ids that emit it ("*": any check)
    emitter: str                    # who emits it when it is not a check (triage, the engine)
    evidence: tuple[str, ...]       # evidence kind names; empty: those its checks read
    thresholds: tuple[str, ...]     # profile keys; `*` in a family's key stands for the family's part
    aliases: tuple[str, ...]        # earlier names with the same meaning, still understood
    alias_note: str

    @property
    def name(self) -> str:
        return " / ".join(self.codes)

    @property
    def levels(self) -> tuple[str, ...]:
        """The severities the code can have, in the order the documentation gives them."""
        words = re.findall(r"\b(fail|error|warn|info)\b", re.sub(r"\([^()]*\)", "", self.severity))
        return tuple(dict.fromkeys(words))

    @property
    def doc(self) -> str:
        return PAGES[self.page][0]

    def matches(self, code: str) -> bool:
        return code in self.codes or (self.pattern is not None and fnmatch.fnmatchcase(code, self.pattern))

    def threshold_keys(self, code: str | None = None) -> list[str]:
        """The profile keys for `code` (a family's `*` filled with the code's own part when given)."""
        part = None
        if code and self.pattern and "*" in self.pattern:
            m = re.fullmatch(re.escape(self.pattern).replace(r"\*", "(.+)"), code)
            part = m.group(1).lower() if m else None
        return [k.replace("*", part) if part else k for k in self.thresholds]


def _text(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise CatalogError(f"{where}: expected text, got {v!r}")
    return " ".join(v.split())


def _names(v: Any, where: str) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise CatalogError(f"{where}: expected a list of names, got {v!r}")
    return tuple(v)


def _entry(page: str, d: dict[str, Any], i: int) -> CodeInfo:
    where = f"clusterkit/codes/{page}.toml entry {i + 1}"
    unknown = set(d) - _KEYS
    if unknown:
        raise CatalogError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    if ("code" in d) == ("codes" in d):
        raise CatalogError(f"{where}: give exactly one of code, codes")
    codes = (d["code"],) if "code" in d else _names(d["codes"], where)
    section = d.get("section", PAGES[page][1][0])
    if section not in PAGES[page][1]:
        raise CatalogError(f"{where}: unknown section {section!r}")
    return CodeInfo(codes, d.get("pattern"), page, section, _text(d.get("severity"), where), _text(d.get("meaning"), where),
                    _text(d.get("action"), where), _names(d.get("checks", []), where),
                    _text(d.get("emitter", ""), where), _names(d.get("evidence", []), where),
                    _names(d.get("thresholds", []), where), _names(d.get("aliases", []), where),
                    _text(d.get("alias_note", ""), where))


@functools.lru_cache(maxsize=1)
def catalog() -> tuple[CodeInfo, ...]:
    """Every declared entry, in page and file order."""
    out: list[CodeInfo] = []
    for page in PAGES:
        doc = tomllib.loads((HERE / f"{page}.toml").read_text())
        out += [_entry(page, d, i) for i, d in enumerate(doc.get("code", []))]
    return tuple(out)


@functools.lru_cache(maxsize=1)
def aliases() -> dict[str, str]:
    """Earlier name -> current name."""
    return {a: e.codes[0] for e in catalog() for a in e.aliases}


def canonical(code: str) -> str:
    """The current name of a code (an earlier name, kept in old history rows, maps to its successor)."""
    return aliases().get(code, code)


def lookup(code: str) -> CodeInfo | None:
    """The entry documenting `code`: by name, by earlier name, then by family (the most specific pattern)."""
    code = canonical(code.strip().upper())
    for e in catalog():
        if code in e.codes:
            return e
    families = [e for e in catalog() if e.pattern and fnmatch.fnmatchcase(code, e.pattern)]
    return max(families, key=lambda e: len(e.pattern.replace("*", "")), default=None)  # type: ignore[union-attr]


def declared(code: str) -> bool:
    return lookup(code) is not None


def suggestions(code: str, limit: int = 5) -> list[str]:
    """Declared codes that look like `code` (a typo, a part of a name)."""
    import difflib

    names = [c for e in catalog() for c in (*e.codes, *e.aliases)]
    code = code.strip().upper()
    near = [n for n in names if code and code in n][:limit]
    return near or difflib.get_close_matches(code, names, n=limit, cutoff=0.6)


def by_check(check_id: str) -> list[CodeInfo]:
    """The entries a check emits (its own, not the `*` ones every check may give)."""
    return [e for e in catalog() if check_id in e.checks]


def entries(page: str, section: str | None = None) -> Iterable[CodeInfo]:
    return (e for e in catalog() if e.page == page and (section is None or e.section == section))
