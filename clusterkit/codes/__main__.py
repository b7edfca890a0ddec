"""`python -m clusterkit.codes --write`: regenerate the code tables of docs/findings*.md
(`--check`: exit 1 when a page is not current)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    stale = stale_pages(ROOT)
    for p in stale:
        print(f"{p}: code tables are not what clusterkit/codes/*.toml declare (run python -m clusterkit.codes "
              "--write)", file=sys.stderr)
    return 1 if stale and (args.check or args.write) else 0


if __name__ == "__main__":
    sys.exit(main())
