"""How long `clusterkit cost report` takes per output format on the built-in example, and the history read.

Prints the median of several runs per step (in-process, after imports).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clusterkit.cost import measure
from clusterkit.cost.config import load_config
from clusterkit.cost.render import render_bytes, render_text
from clusterkit.cost.report import build


def timed(fn, n: int = 7) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def history(path: Path, hosts: int, nights: int, samples: int) -> None:
    import sqlite3

    con = sqlite3.connect(path)
    con.executescript("""
    CREATE TABLE runs (id INTEGER PRIMARY KEY, kind, started_at, finished_at, suite, profile, status, simulated);
    CREATE TABLE node_results (run_id, host, outcome, status);
    CREATE TABLE metrics (check_result_id, run_id, host, check_id, name, value REAL, ts);""")
    for r in range(nights):
        con.execute("INSERT INTO runs VALUES (?, 'burnin', '', '', 'full', 'h100', 'pass', 0)", (r,))
        con.executemany("INSERT INTO node_results VALUES (?, ?, 'ok', 'pass')", [(r, f"n{h}") for h in range(hosts)])
        con.executemany("INSERT INTO metrics VALUES (0, ?, ?, 'gpu', 'gpu_power_draw_total_w', ?, '')",
                        [(r, f"n{h}", 4000.0 + s) for h in range(hosts) for s in range(samples)])
    con.commit()
    con.close()


def main() -> None:
    cfg = load_config(None)
    print(f"build (model + tornado + scenarios + curve): {timed(lambda: build(cfg)):.1f} ms")
    rep = build(cfg)
    for fmt in ("table", "json", "csv", "md", "html"):
        print(f"render {fmt}: {timed(lambda: render_text(rep, fmt)):.2f} ms")
    print(f"render xlsx: {timed(lambda: render_bytes(rep, 'xlsx')):.1f} ms")
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "h.db"
        history(db, hosts=1000, nights=30, samples=10)
        size = db.stat().st_size / 1e6
        print(f"from_history, 1000 hosts x 30 nights x 10 power samples ({size:.1f} MB): "
              f"{timed(lambda: measure.from_history(db), 3):.0f} ms")


if __name__ == "__main__":
    main()
