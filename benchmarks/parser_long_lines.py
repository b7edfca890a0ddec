"""The slowest parser on a 1 MB line, and on 10^5 lines (goal, issue 18: every parser under 1 s on 1 MB).

    python benchmarks/parser_long_lines.py [--size 1048576] [--top 10]

Every parser of tests/support/parser_inputs.py (the kinds' sniffers and parse functions, the
message helpers, the kernel-log rules) gets every hostile 1 MB line there: fillers that made the
old regexes backtrack, and lines built from its own format. Each call is timed alone; a call past
--limit seconds is interrupted and reported as such (before issue 18 several never finished).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.parser_inputs import call_within, hostile_lines, many_lines, parsers, samples  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--limit", type=float, default=30.0)
    a = ap.parse_args()
    ps, texts = parsers(), samples()
    lines: list[tuple[float, str, str]] = []
    files: list[tuple[float, str]] = []
    overran: list[str] = []
    for name, func in sorted(ps.items()):
        for label, text in hostile_lines(texts.get(name), a.size):
            dt = call_within(func, text, a.limit)
            if dt is None:
                overran.append(f"{name} on {label}")
            else:
                lines.append((dt, name, label))
        dt = call_within(func, many_lines(texts.get(name)), a.limit)
        if dt is None:
            overran.append(f"{name} on 10^5 lines")
        else:
            files.append((dt, name))
    lines.sort(reverse=True)
    files.sort(reverse=True)
    print(f"{len(ps)} parsers, {len(lines) + len(files) + len(overran)} calls, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"slowest on a {a.size / 2**20:g} MB line (goal < 1 s):")
    for dt, name, label in lines[: a.top]:
        print(f"  {dt:6.3f} s  {name}  ({label})")
    print("slowest on 10^5 lines of its own format:")
    for dt, name in files[: a.top]:
        print(f"  {dt:6.3f} s  {name}")
    print(f"past {a.limit:g} s (interrupted): {len(overran)}" + "".join(f"\n  {o}" for o in overran))


if __name__ == "__main__":
    main()
