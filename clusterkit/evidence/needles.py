"""Literal text a regex cannot match without: a cheap test that a whole file holds no match.

`required_literals(pattern)` reads the pattern's syntax tree (Python's own regex parser) and
returns what every match contains: the words of its literal runs, all of them, and for an
alternation those of one branch (None when no word of useful length is required: then nothing
can be ruled out). `Prefilter` combines them for
a set of patterns: `might_match(text)` is False only when no pattern can match any line of the text,
nor any part of a line; a scan over normalized lines may then skip the text, because normalization
only cuts lines (prefixes, quoting, indentation) and the kernel-log parser only joins a message's
lines with a space (so literals are words: no needle spans a join), and neither adds characters
(clusterkit/evidence/normalize.py; docker JSON logs, which it decodes, are never skipped).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

try:
    from re import _parser as _sre  # Python 3.11+
except ImportError:  # pragma: no cover
    import sre_parse as _sre  # type: ignore[no-redef]

MIN_NEEDLE = 3          # shorter words rule out too little to be worth a look


@dataclass(frozen=True)
class Needle:
    text: str
    folded: bool        # compare lower-cased (the pattern ignores case)


@dataclass(frozen=True)
class Need:
    """What a match contains: every one of `all` (needles or nested needs), or (`any_of`) one of them."""

    parts: tuple["Needle | Need", ...]
    any_of: bool = False

    def met(self, text: str, lower: str, seen: dict[Needle, bool]) -> bool:
        """`seen`: needles already looked for in this text (several patterns share words)."""
        def has(p: "Needle | Need") -> bool:
            if isinstance(p, Need):
                return p.met(text, lower, seen)
            got = seen.get(p)
            if got is None:
                got = seen[p] = p.text in (lower if p.folded else text)
            return got

        return any(map(has, self.parts)) if self.any_of else all(map(has, self.parts))

    def needles(self) -> list[Needle]:
        return [n for p in self.parts for n in (p.needles() if isinstance(p, Need) else [p])]


def _weight(p: "Needle | Need") -> int:
    """Longer literals first: a text most likely lacks them, and the rest is not looked at."""
    return len(p.text) if isinstance(p, Needle) else min((_weight(q) for q in p.parts), default=0)


def _seq(items: Any, folded: bool) -> Need | None:
    """What every match of a sequence contains: the words of its literal runs, and what its
    required groups, alternations and lookaheads need (None: nothing that can be named)."""
    parts: list[Needle | Need] = []
    run: list[str] = []

    def flush() -> None:
        # words, not phrases: a scan may see two lines joined by a space that the text never held
        for word in "".join(run).split():
            if len(word) >= MIN_NEEDLE:
                parts.append(Needle(word.lower() if folded else word, folded))
        run.clear()

    for op, av in items:
        if op is _sre.LITERAL:
            run.append(chr(av))
            continue
        flush()
        got: Need | None = None
        if op is _sre.SUBPATTERN:
            _group, add, _del, sub = av
            if not _del & re.IGNORECASE:   # case-sensitive inside a case-folded pattern: skipped, not worth the care
                got = _seq(sub, folded or bool(add & re.IGNORECASE))
        elif op is _sre.BRANCH:
            alts = [_seq(b, folded) for b in av[1]]
            if alts and all(a is not None for a in alts):   # one alternative without a literal: nothing required
                got = Need(tuple(a for a in alts if a is not None), any_of=True)
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT) and av[0] >= 1:
            got = _seq(av[2], folded)
        elif op is _sre.ASSERT:
            got = _seq(av[1], folded)     # a lookaround's text is in the line, if not in the match
        # classes, anchors, optional parts, negative lookarounds: require nothing
        if got is not None:
            parts.append(got)
    flush()
    return Need(tuple(sorted(parts, key=_weight, reverse=True))) if parts else None


def required_literals(pattern: re.Pattern[str]) -> Need | None:
    """What every match of `pattern` contains, as words (all of them, or for an alternation those of
    one branch); None when not one word can be named."""
    try:
        tree = _sre.parse(pattern.pattern, pattern.flags)
    except Exception:  # a construct this reader does not know: assume nothing
        return None
    return _seq(tree, bool(pattern.flags & re.IGNORECASE))


class Prefilter:
    """Whether any of `patterns` might match somewhere in a text (False: certainly not)."""

    def __init__(self, patterns: Iterable[re.Pattern[str]]):
        self.needs: list[Need] = []
        self.always = False
        for p in patterns:
            got = required_literals(p)
            if got is None:
                self.always = True   # one pattern we cannot rule out: every text must be scanned
                break
            self.needs.append(got)
        self.folds = any(n.folded for need in self.needs for n in need.needles())

    def might_match(self, text: str) -> bool:
        """`text` as normalization receives it, after `clean()` (ANSI codes could split a literal)."""
        if self.always or '{"log":' in text:      # docker JSON logs are decoded by normalization
            return True
        lower = ""
        if self.folds:
            if not text.isascii():     # a regex folds some non-ASCII letters onto ASCII ones ('ſ' ~ 's')
                return True
            lower = text.lower()
        seen: dict[Needle, bool] = {}
        return any(need.met(text, lower, seen) for need in self.needs)
