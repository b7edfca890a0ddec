"""`python -m clusterkit.codes --write`: regenerate the code tables of docs/findings*.md and the real
examples (clusterkit/codes/examples.toml) from the declarations and the real outputs' headers
(`--check`: exit 1 when one of them is not current)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clusterkit.codes import examples
from clusterkit.codes.docs import stale_pages, write_pages

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clusterkit.codes", description=__doc__)
    ap.add_argument("--write", action="store_true", help="rewrite the pages' generated tables")
    ap.add_argument("--check", action="store_true", help="exit 1 when a page's tables are not current")
    args = ap.parse_args(argv)
    if args.write:
        for p in write_pages(ROOT):
            print(f"wrote {p}")
        if examples.write(ROOT):
            print(f"wrote {examples.FILE.relative_to(ROOT)}")
    stale = stale_pages(ROOT) + ([] if examples.current(ROOT) else [str(examples.FILE.relative_to(ROOT))])
    for p in stale:
        print(f"{p}: not what the declarations and real outputs give (run python -m clusterkit.codes --write)",
              file=sys.stderr)
    return 1 if stale and (args.check or args.write) else 0


if __name__ == "__main__":
    sys.exit(main())
