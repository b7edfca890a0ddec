"""Literal text a regex cannot match without: a cheap test that a whole file holds no match.

`required_literals(pattern)` reads the pattern's syntax tree (Python's own regex parser) and
returns what every match contains: literal runs, and for an alternation one literal per branch
(None when the pattern requires no literal of useful length: then nothing can be ruled out). `Prefilter` combines them for
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

MIN_NEEDLE = 3          # shorter literals rule out too little to be worth a pass over the text


@dataclass(frozen=True)
class Needle:
    text: str
    folded: bool        # compare lower-cased (the pattern ignores case)


# A requirement is a set of needles one of which a match contains; a pattern has several (all hold).
Requirement = frozenset


def _usable(options: list[frozenset[Needle]]) -> list[frozenset[Needle]]:
    return [o for o in options if o and min(len(n.text) for n in o) >= MIN_NEEDLE]


def _seq(items: Any, folded: bool) -> list[frozenset[Needle]]:
    """What every match of a sequence contains: its literal runs, and what its required groups need."""
    need: list[frozenset[Needle]] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            # a word, not a phrase: a scan may see two lines joined by a space that the text never held
            text = max("".join(run).split() or [""], key=len)
            need.append(frozenset([Needle(text.lower() if folded else text, folded)]))
            run.clear()

    for op, av in items:
        if op is _sre.LITERAL:
            run.append(chr(av))
            continue
        flush()
        if op is _sre.SUBPATTERN:
            _group, add, _del, sub = av
            if not _del & re.IGNORECASE:   # case-sensitive inside a case-folded pattern: skipped, not worth the care
                need += _seq(sub, folded or bool(add & re.IGNORECASE))
        elif op is _sre.BRANCH:
            # one alternative matches: the union of one requirement per alternative (the longest-needled)
            picks = []
            for alt in av[1]:
                own = _usable(_seq(alt, folded))
                if not own:
                    picks = []
                    break
                picks.append(max(own, key=lambda o: min(len(n.text) for n in o)))
            if picks:
                need.append(frozenset(n for p in picks for n in p))
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT) and av[0] >= 1:
            need += _seq(av[2], folded)
        elif op is _sre.ASSERT:
            need += _seq(av[1], folded)   # a lookaround's text is in the line, if not in the match
        # classes, anchors, optional parts, negative lookarounds: require nothing
    flush()
    return _usable(need)


def required_literals(pattern: re.Pattern[str]) -> list[frozenset[Needle]] | None:
    """What every match of `pattern` contains: requirements (sets of literals, one of each set is in
    the match), all of which hold; None when not one can be named."""
    try:
        tree = _sre.parse(pattern.pattern, pattern.flags)
    except Exception:  # a construct this reader does not know: assume nothing
        return None
    need = _seq(tree, bool(pattern.flags & re.IGNORECASE))
    return need or None


class Prefilter:
    """Whether any of `patterns` might match somewhere in a text (False: certainly not)."""

    def __init__(self, patterns: Iterable[re.Pattern[str]]):
        self.needs: list[list[frozenset[Needle]]] = []
        self.always = False
        for p in patterns:
            got = required_literals(p)
            if got is None:
                self.always = True   # one pattern we cannot rule out: every text must be scanned
                break
            # the rarest-looking requirement first: most texts fail it and the rest is not looked at
            self.needs.append(sorted(got, key=lambda o: -min(len(n.text) for n in o)))
        self.folds = any(n.folded for need in self.needs for req in need for n in req)

    def might_match(self, text: str) -> bool:
        """`text` as normalization receives it, after `clean()` (ANSI codes could split a literal)."""
        if self.always or '{"log":' in text:      # docker JSON logs are decoded by normalization
            return True
        lower = ""
        if self.folds:
            if not text.isascii():     # a regex folds some non-ASCII letters onto ASCII ones ('ſ' ~ 's')
                return True
            lower = text.lower()
        return any(all(any(n.text in (lower if n.folded else text) for n in req) for req in need)
                   for need in self.needs)
