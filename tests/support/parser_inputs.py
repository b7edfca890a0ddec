"""Every parser, and hostile input for it: lines of 1 MB and files of 10^5 lines.

Shared by the property test (tests/unit/core/test_parser_time.py) and the benchmark
(benchmarks/parser_long_lines.py). "Every parser" is read from the registries, so a new
one joins by itself: every declared evidence kind's recognizer and parser (variants
included), every public function of a `clusterkit.parsers` module that takes the text as
its one required argument (helpers such as `link_event`), the normalization every parser
starts with, recognition (all recognizers on one text), the kernel-log rules applied to a
parsed log, and the fatal-signature scan. Sample texts of each kind's format come from the
simulator (the kind's bundle path) and from the real-output corpus (tests/real/corpus, files
recognized as that kind), so each parser also gets long lines built from its own format.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import shutil
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

MB = 1 << 20
# characters and tokens that make a backtracking regex try again and again
FILLERS = (" ", "a", "0", ":", "|", "=", ".", "-", "\t", "a ", ": ", "a: ", "| ", "0 ", "0.", "[", "(", "x=",
           "0x", "/", ",", "a|", "=a", "mlx5_0 port 1 ", "NVRM: GPU ", "EDAC ", "AER: Uncorrected ",
           "GPU0 ", "NCCL INFO ", "Link is ", "to ", "\n", " \n", "\n\t", "# a: ", "[  1.0] ", "node1: ", "a:\n")
# many short lines of one shape: what normalization's per-document layers (quoting, prompts, host
# prefixes, indentation) look at line by line
SHORT_LINES = ("\n", " \n", "\n\t", "a\n", "a:\n", " a\n", "| a\n", "> a\n", "$ a\n", "[    1.0] a\n",
               "node1: a\n", "node1: \n", "+-\n", "```\n")
CORPUS = Path(__file__).resolve().parent.parent / "real" / "corpus"
LOG_MODULES = ("kernel_log", "link_events", "xid")   # helpers on kernel-log messages


def _scan_kernel_log(text: str) -> Any:
    from clusterkit.checks.kernel_log_rules import scan
    from clusterkit.parsers.kernel_log import parse_kernel_log

    return scan(parse_kernel_log(text))


def _recognize(text: str) -> Any:
    from clusterkit.evidence.kinds import sniff_document
    from clusterkit.evidence.normalize import normalize_document

    return sniff_document(normalize_document(text))


def _scan_fatal_lines(text: str) -> Any:
    from clusterkit.checks.signatures import _scan_text

    return list(_scan_text("pasted.txt", text))


def _module_functions() -> dict[str, Callable[[str], Any]]:
    import clusterkit.parsers as pkg

    out: dict[str, Callable[[str], Any]] = {}
    for m in pkgutil.iter_modules(pkg.__path__):
        mod = importlib.import_module(f"{pkg.__name__}.{m.name}")
        for name, f in inspect.getmembers(mod, inspect.isfunction):
            if name.startswith("_") or f.__module__ != mod.__name__:
                continue
            params = list(inspect.signature(f).parameters.values())
            if not params or params[0].annotation not in (str, "str"):
                continue
            if any(p.default is inspect.Parameter.empty for p in params[1:]):
                continue
            out[f"{mod.__name__.rsplit('.', 1)[1]}.{name}"] = f
    return out


def parsers() -> dict[str, Callable[[str], Any]]:
    """name -> function(text) for every parser (see the module docstring)."""
    from clusterkit.evidence import normalize
    from clusterkit.plugins import load_all

    load_all()
    out = _module_functions()
    seen = set(out.values())
    for k in registered_kinds():
        for role, f in (("recognizer", k.sniff), ("parser", k.parse)):
            if f is not None and f not in seen:   # a kind's function defined elsewhere, or not public
                out[f"kind {k.name}.{role}"] = f
                seen.add(f)
    out["normalize.normalize"] = normalize.normalize
    out["normalize.normalize_document"] = normalize.normalize_document
    out["normalize.normalize_lines"] = normalize.normalize_lines
    out["kinds.recognize"] = _recognize
    out["checks.kernel_log_rules.scan"] = _scan_kernel_log
    out["checks.signatures.scan"] = _scan_fatal_lines
    return out


def registered_kinds() -> list[Any]:
    """Every declared kind and variant."""
    from clusterkit.evidence.kinds import KINDS, VARIANTS
    from clusterkit.plugins import load_all

    load_all()
    return list(KINDS.values()) + list(VARIANTS)


def _kind_samples() -> dict[str, list[str]]:
    """kind name -> texts of its format: the simulator's file at its path, then the corpus files
    recognized as that kind."""
    from clusterkit.evidence.kinds import kind_of_path
    from clusterkit.sim.cluster import generate

    out: dict[str, list[str]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="ck-samples-"))
    try:
        generate(tmp, nodes=2, seed=3)
        for d in sorted(p for p in tmp.iterdir() if p.is_dir()):
            for f in sorted(d.rglob("*")):
                k = kind_of_path(str(f.relative_to(d))) if f.is_file() and f.name != "bundle.json" else None
                if k is not None and not out.get(k.name):
                    out[k.name] = [f.read_text(errors="replace")]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    header = re.compile(r"^# [a-z]+: ")
    for f in sorted(CORPUS.glob("*/*.txt")):
        text = "\n".join(ln for ln in f.read_text(errors="replace").split("\n") if not header.match(ln))
        k = _recognize(text)
        if k is not None:
            out.setdefault(k.name, []).append(text)
    return out


def samples() -> dict[str, str]:
    """name of a parser -> real-format text it reads (its kind's samples, joined), where known."""
    by_kind = _kind_samples()
    kinds = registered_kinds()
    by_func: dict[Any, str] = {}
    by_module: dict[str, str] = {}
    for k in kinds:
        base = k.name.split("@")[0]
        text = "\n".join(by_kind.get(base, []))
        if not text:
            continue
        for f in (k.sniff, k.parse):
            if f is not None:
                by_func.setdefault(f, text)
                by_module.setdefault(f.__module__.rsplit(".", 1)[1], text)
    log = "\n".join(by_kind.get("kernel-log", []))
    everything = "\n".join(t for ts in by_kind.values() for t in ts[:1])
    out = {}
    for name, f in parsers().items():
        mod = getattr(f, "__module__", "").rsplit(".", 1)[-1]
        text = by_func.get(f) or by_module.get(mod) or (log if mod in LOG_MODULES or "kernel_log" in name else None)
        if name.startswith(("normalize.", "kinds.", "checks.signatures")):
            text = everything
        if text:
            out[name] = text
    return out


def shapes(sample: str, most: int = 16) -> list[str]:
    """Lines of `sample` of different shapes (letters, digits and blank runs folded), at most `most`
    per call of `stretched`: one of each structure a parser's patterns meet."""
    seen: dict[str, str] = {}
    for ln in sample.split("\n"):
        if not ln.strip():
            continue
        key = re.sub(r"\s+", " ", re.sub(r"[0-9]+", "0", re.sub(r"[A-Za-z]+", "a", ln[:48])))
        seen.setdefault(key, ln)
    return list(seen.values())


def stretched(lines: list[str], filler: str, size: int = 64 * 1024) -> str:
    """Each line cut in half and `filler` repeated to `size` characters after it, one per line:
    a pattern that is quadratic on any one of them takes seconds."""
    return "\n".join(long_line(ln[: max(1, len(ln) // 2)], filler, size) for ln in lines) + "\n"


def long_line(prefix: str, filler: str, size: int = MB) -> str:
    """`prefix` then `filler` repeated to `size` characters, ending in a character that matches nothing."""
    body = filler * ((size - len(prefix)) // max(1, len(filler)) + 1)
    return (prefix + body)[: size - 1] + "\x7f"


def hostile_lines(sample: str | None, size: int = MB) -> list[tuple[str, str]]:
    """(label, text of one line of `size` characters) for a parser with this sample text."""
    out = [(f"filler {f!r}", long_line("", f, size)) for f in FILLERS]
    if sample:
        lines = [ln for ln in sample.splitlines() if ln.strip()]
        picks = sorted({0, len(lines) // 2, len(lines) - 1, max(range(len(lines)), key=lambda i: len(lines[i]))})
        for i in picks:
            ln = lines[i]
            for f in (" ", "a", ln[-1:] or "a"):
                out.append((f"line {i} half + {f!r}", long_line(ln[: max(1, len(ln) // 2)], f, size)))
            out.append((f"line {i} repeated", long_line("", ln.strip() + " ", size)))
        words = Counter(w for ln in lines for w in ln.split())
        for w, _ in words.most_common(6):
            out.append((f"word {w[:20]!r}", long_line("", w + " ", size)))
        out.append(("sample on one line", long_line("", " ".join(lines) + " ", size)))
    return out


def many_lines(sample: str | None, n: int = 100_000, size: int = 10 * MB) -> str:
    """`n` lines: the sample's lines over and over (or a kernel-log-like line), stopping at `size`
    characters (a format of long lines, a 200-field CSV row, gets fewer of them)."""
    lines = [ln for ln in (sample or "").splitlines() if ln.strip()] or ["[    1.000000] a: b c 0x1f"]
    out, total = [], 0
    for i in range(n):
        ln = lines[i % len(lines)]
        total += len(ln) + 1
        if total > size and out:
            break
        out.append(ln)
    return "\n".join(out) + "\n"


class _Overran(BaseException):
    pass


def call_within(func: Callable[[str], Any], text: str, limit_s: float,
                answers: tuple[type[BaseException], ...] = (Exception,)) -> float | None:
    """Seconds `func(text)` took, or None when an alarm stopped it at `limit_s` (the re module
    checks for signals, so a backtracking regex is interrupted too). An exception in `answers`
    counts as an answer; any other propagates."""
    def fire(*_: Any) -> None:
        raise _Overran

    previous = signal.signal(signal.SIGALRM, fire)
    t0 = time.perf_counter()
    try:
        signal.setitimer(signal.ITIMER_REAL, limit_s)
        try:
            func(text)
        except answers:
            pass
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Overran:
        return None
    finally:
        signal.signal(signal.SIGALRM, previous)
    return time.perf_counter() - t0
