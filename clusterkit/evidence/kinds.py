"""Evidence kinds: what a file is, where it goes in a bundle, how to recognize it.

Parser modules register their kind with `@kind(...)`; `sniff()` picks the
kind of a loose file from its content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from clusterkit.evidence.text import clean


@dataclass(frozen=True)
class Kind:
    name: str
    path: str                      # bundle path a loose file of this kind stands for
    sniff: Callable[[str], bool]   # gets cleaned text, True when it is this kind
    priority: int                  # higher is tried first (more specific formats)
    description: str


KINDS: dict[str, Kind] = {}


def kind(name: str, *, path: str, priority: int = 50, description: str = "") -> Callable:
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts) or parts[0].startswith((".", "_")):
        raise ValueError(f"kind {name}: bundle path {path!r} must be a relative path inside a bundle")

    def deco(func: Callable[[str], bool]) -> Callable[[str], bool]:
        KINDS[name] = Kind(name, path, func, priority, description or (func.__doc__ or "").strip())
        return func

    return deco


def sniff(text: str) -> Kind | None:
    """The most specific kind whose recognizer accepts the text, or None."""
    t = clean(text)
    for k in sorted(KINDS.values(), key=lambda k: (-k.priority, k.name)):
        try:
            if k.sniff(t):
                return k
        except Exception:  # a recognizer bug must not stop the others
            continue
    return None
