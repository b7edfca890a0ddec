"""Every parser, and hostile input for it: lines of 1 MB and files of 10^5 lines.

Shared by the property test (tests/unit/core/test_parser_time.py) and the benchmark
(benchmarks/parser_long_lines.py). "Every parser" is every public function of a
`clusterkit.parsers` module that takes the text as its one required argument (the
kinds' sniffers and parse functions, and helpers such as `link_event`), plus the
kernel-log rules applied to a parsed log. Sample texts come from the simulator, one
per kind's bundle path, so each parser also gets long lines built from its own format.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
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
           "GPU0 ", "NCCL INFO ", "Link is ", "to ", "\n", " \n", "\n\t")


def _scan_kernel_log(text: str) -> Any:
    from clusterkit.checks.kernel_log_rules import scan
    from clusterkit.parsers.kernel_log import parse_kernel_log

    return scan(parse_kernel_log(text))


def parsers() -> dict[str, Callable[[str], Any]]:
    """name -> function(text) for every parser (see the module docstring)."""
    import clusterkit.parsers as pkg
    from clusterkit.plugins import load_all

    load_all()
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
    out["checks.kernel_log_rules.scan"] = _scan_kernel_log
    return out


def samples() -> dict[str, str]:
    """name of a parser -> a real-format text it reads (from a simulated bundle), where known."""
    from clusterkit.evidence.kinds import KINDS
    from clusterkit.sim.cluster import generate

    tmp = Path(tempfile.mkdtemp(prefix="ck-samples-"))
    try:
        generate(tmp, nodes=2, seed=3)
        files: dict[str, str] = {}
        for d in sorted(p for p in tmp.iterdir() if p.is_dir()):
            for f in d.rglob("*"):
                if f.is_file() and f.name != "bundle.json":
                    files.setdefault(str(f.relative_to(d)), f.read_text(errors="replace"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    by_module: dict[str, str] = {}
    for k in KINDS.values():
        text = files.get(k.path)
        if text:
            by_module.setdefault(k.sniff.__module__.rsplit(".", 1)[1], text)
    out = {}
    for name in parsers():
        mod = name.split(".")[0]
        text = by_module.get(mod) or (files.get("host/dmesg.txt") if mod in ("kernel_log", "link_events", "xid", "checks")
                                      else None)
        if text:
            out[name] = text
    return out


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


def many_lines(sample: str | None, n: int = 100_000) -> str:
    """`n` lines: the sample's lines over and over (or a kernel-log-like line)."""
    lines = [ln for ln in (sample or "").splitlines() if ln.strip()] or ["[    1.000000] a: b c 0x1f"]
    return "\n".join(lines[i % len(lines)] for i in range(n)) + "\n"


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
