"""Evidence kinds, each declared once: bundle path, collecting command, recognizer, parser.

A parser module declares its kind (`NVIDIA_SMI_Q = declare(...)`) and attaches its
recognizer and parser to it (`@NVIDIA_SMI_Q.recognizer`, `@NVIDIA_SMI_Q.parser`).
Probes plan the kind's command, the simulator writes the kind's path, checks name
the kind in `needs` and read it with `ctx.parsed(KIND)`: no path string is written
twice. `sniff()` picks the kind of a pasted text, after normalization.

Paths may hold one `{field}` (an interface or device name): `ETHTOOL_S.at(ifname="eth0")`
is a file, `ETHTOOL_S.glob` matches them all, and a pasted file of that kind gets the
field value `pasted`.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

from clusterkit.evidence.normalize import Document, normalize_document

_FIELD = re.compile(r"\{(\w+)\}")


class Kind:
    """One kind of evidence. Immutable once its module is imported."""

    def __init__(self, name: str, path: str, *, command: Sequence[str] | None = None, priority: int = 50,
                 description: str = ""):
        parts = path.split("/")
        # a kind's path becomes a file of every bundle: it may never leave the bundle or take
        # clusterkit's own places (hidden files, `_cluster`)
        if path.startswith("/") or any(p in ("", ".", "..") for p in parts) or parts[0].startswith((".", "_")):
            raise ValueError(f"kind {name}: bundle path {path!r} must be a relative path inside a bundle")
        self.name = name
        self.path = path
        self.command: tuple[str, ...] | None = tuple(command) if command is not None else None
        self.priority = priority              # higher is tried first (more specific formats)
        self.description = description
        self._pattern = re.compile("".join(re.escape(p) if i % 2 == 0 else "(?P<%s>.+)" % p
                                           for i, p in enumerate(_FIELD.split(path))) + r"\Z")
        self.sniff: Callable[[str], bool] | None = None
        self.parse: Callable[[str], Any] | None = None

    def __repr__(self) -> str:
        return f"Kind({self.name!r}, {self.path!r})"

    # ---- declaration ------------------------------------------------------------------
    def recognizer(self, func: Callable[[str], bool]) -> Callable[[str], bool]:
        """Register `func(normalized_text) -> bool`."""
        self.sniff = func
        if not self.description and func.__doc__:
            self.description = func.__doc__.strip().splitlines()[0]
        return func

    def parser(self, func: Callable[[str], Any]) -> Callable[[str], Any]:
        self.parse = func
        return func

    def variant(self, path: str, name: str | None = None) -> "Kind":
        """The same evidence at another path (a snapshot after the load, say); not sniffed."""
        k = Kind(name or f"{self.name}@{path}", path, command=self.command, priority=self.priority,
                 description=self.description)
        k.parse = self.parse
        return k

    # ---- paths --------------------------------------------------------------------------
    @property
    def glob(self) -> str:
        return _FIELD.sub("*", self.path)

    @property
    def templated(self) -> bool:
        return bool(_FIELD.search(self.path))

    def at(self, **fields: str) -> str:
        return self.path.format(**fields)

    def field_of(self, path: str) -> str | None:
        """The `{field}` value of a concrete path of this kind ('eth0' of fabric/ethtool-S-eth0.txt)."""
        m = self._pattern.match(path) if self.templated else None
        return next(iter(m.groupdict().values())) if m else None

    @property
    def loose_path(self) -> str:
        """Where a pasted file of this kind goes in its virtual bundle."""
        return _FIELD.sub("pasted", self.path)

    def argv(self, **fields: str) -> list[str]:
        """The collecting command with its `{field}` placeholders filled in."""
        if self.command is None:
            raise TypeError(f"evidence kind {self.name} has no command of its own")
        # Only the named fields are filled: shell scripts in a command keep their own ${...}.
        return [_FIELD.sub(lambda m: fields.get(m[1], m[0]), a) if fields else a for a in self.command]

    @property
    def command_line(self) -> str:
        return " ".join(self.command) if self.command else f"(collected by clusterkit: {self.name})"


KINDS: dict[str, Kind] = {}


def declare(name: str, path: str, **kw: Any) -> Kind:
    """Declare (and register for recognition) a kind of evidence."""
    if name in KINDS:
        raise ValueError(f"evidence kind {name} declared twice")
    k = Kind(name, path, **kw)
    KINDS[name] = k
    return k


VARIANTS: list[Kind] = []


def variant(base: Kind, path: str) -> Kind:
    """`base` at another path (e.g. a snapshot after the load window); never sniffed."""
    k = base.variant(path)
    VARIANTS.append(k)
    return k


def kind_of_path(path: str) -> Kind | None:
    """The declared kind a bundle path belongs to (variants included)."""
    # every node's bundle has the same paths: look each up once (while no kind is declared since)
    stamp = (len(KINDS), len(VARIANTS))
    got = _KIND_OF.get(path)
    if got is not None and got[0] == stamp:
        return got[1]
    kind = next((k for k in list(KINDS.values()) + VARIANTS if k.path == path or k.field_of(path) is not None), None)
    if len(_KIND_OF) < 100_000:
        _KIND_OF[path] = (stamp, kind)
    return kind


_KIND_OF: dict[str, tuple[tuple[int, int], Kind | None]] = {}


def sniff_document(doc: Document) -> Kind | None:
    """The most specific kind whose recognizer accepts the normalized text, or None. When none
    does, the command lines the paste showed (`$ mpirun ... all_reduce_perf`) are read with it:
    a failure that printed no table is still known by the command that failed."""
    texts = [doc.text] + (["\n".join(doc.commands + [doc.text])] if doc.commands else [])
    for t in texts:
        for k in sorted(KINDS.values(), key=lambda k: (-k.priority, k.name)):
            if k.sniff is None:
                continue
            try:
                if k.sniff(t):
                    return k
            except Exception:  # a recognizer bug must not stop the others
                continue
    # A journal or syslog whose lines say they came from the kernel is a kernel log, whatever they say.
    body = [l for l in doc.lines if l.text.strip()]
    if body and sum(l.source == "kernel" for l in body) >= 0.6 * len(body):
        return KINDS.get("kernel-log")
    return None


def sniff(text: str) -> Kind | None:
    return sniff_document(normalize_document(text))
