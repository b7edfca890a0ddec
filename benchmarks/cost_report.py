"""How long `clusterkit cost report` takes per output format on the built-in example, the history read
(time-weighted uptime over 300k check results), and a formula engine's recompute of the workbook.

Prints the median of several runs per step (in-process, after imports).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from openpyxl import load_workbook

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


def history(path: Path, hosts: int, nights: int, cycles: int) -> None:
    """A history in clusterkit's schema (made by History): `nights` burn-in runs of `cycles` cycles, one GPU check
    with a power sample per host per cycle, a few nodes failing or unreachable, and some drains."""
    from clusterkit.history import History

    with History(path) as h:
        con = h.conn
        con.execute("INSERT INTO metric_names(id, name) VALUES (1, 'gpu_power_draw_total_w')")
        cid = 0
        with con:
            for night in range(nights):
                day = f"2026-10-{night + 1:02d}"
                con.execute("INSERT INTO runs(id, kind, started_at, finished_at, suite, profile, status, simulated)"
                            " VALUES (?, 'burnin', ?, ?, 'full', 'h100-sxm5-80gb', 'pass', 0)",
                            (night + 1, f"{day}T00:00:00+00:00", f"{day}T05:00:00+00:00"))
                checks, values = [], []
                for c in range(cycles):
                    ts = f"{day}T{c // 2:02d}:{(c % 2) * 30:02d}:00+00:00"
                    for n in range(hosts):
                        if (n + night + c) % 97 == 0:          # unreachable this cycle
                            continue
                        cid += 1
                        status = "fail" if (n * 7 + night) % 211 == 0 else "pass"
                        checks.append((cid, night + 1, f"n{n}", "gpu.power_step", status, "", 60.0, ts, c))
                        values.append((cid, 1, 4000.0 + (n % 50)))
                con.executemany("INSERT INTO check_results(id, run_id, host, check_id, status, summary, duration_s,"
                                " finished_at, cycle) VALUES (?,?,?,?,?,?,?,?,?)", checks)
                con.executemany("INSERT INTO metric_values VALUES (?,?,?)", values)
                con.executemany("INSERT INTO node_results(run_id, host, outcome, status) VALUES (?,?,'ok','pass')",
                                [(night + 1, f"n{n}") for n in range(hosts)])
            con.executemany("INSERT INTO drains(run_id, node, action, reason, ts) VALUES (NULL, ?, ?, 'b', ?)",
                            [(f"n{n}", a, f"2026-10-0{d}T0{d}:00:00+00:00") for n in range(0, hosts, 50)
                             for a, d in (("drain", 2), ("resume", 4))])


def main() -> None:
    cfg = load_config(None)
    print(f"build (model + tornado + scenarios + curve): {timed(lambda: build(cfg)):.1f} ms")
    rep = build(cfg)
    for fmt in ("table", "json", "csv", "md", "html"):
        print(f"render {fmt}: {timed(lambda: render_text(rep, fmt)):.2f} ms")
    print(f"render xlsx: {timed(lambda: render_bytes(rep, 'xlsx'), 3):.1f} ms")
    try:
        from pycel import ExcelCompiler
    except ImportError:
        return
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.xlsx"
        path.write_bytes(render_bytes(rep, "xlsx"))

        def recompute() -> None:   # every Model column's NPV (IRR aside: pycel lacks it)
            xl = ExcelCompiler(filename=str(path))
            ws = xl.excel.workbook["Model"]
            row = next(c.row for c in ws["A"] if c.value == "NPV saving of owning")
            for col in range(2, ws.max_column + 1):
                xl.evaluate(f"Model!{ws.cell(1, col).column_letter}{row}")
        cols = load_workbook(path)["Model"].max_column - 1
        print(f"pycel recompute of the workbook ({cols} Model columns): {timed(recompute, 1) / 1000:.1f} s")
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "h.db"
        history(db, hosts=1000, nights=30, cycles=10)
        size = db.stat().st_size / 1e6
        m = measure.from_history(db)
        got = {x.key: x.value for x in m.values}
        print(f"from_history, 1000 GPU nodes x 30 nights x 10 cycles, 300k check results ({size:.1f} MB): "
              f"{timed(lambda: measure.from_history(db), 3):.0f} ms; availability {got['utilization.availability']:.4f}")


if __name__ == "__main__":
    main()
