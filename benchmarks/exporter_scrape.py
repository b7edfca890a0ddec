"""Exporter scrape latency and history write throughput on a large history.

Builds a history of NODES x CHECKS x NIGHTS check results (default 1,000 x 30 x 30)
through the burn-in's own write path (`History.record_check`, one transaction per
check), then scrapes the exporter over HTTP as Prometheus would.

    python benchmarks/exporter_scrape.py [--nodes 1000] [--checks 30] [--nights 30] [--scrapes 50]

Goals (issue 8): p99 scrape < 200 ms, history DB < 200 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clusterkit.exporter import scrape, serve  # noqa: E402
from clusterkit.history import History  # noqa: E402
from clusterkit.results import CheckResult, Finding  # noqa: E402


def _check(rng: random.Random, cid: str) -> CheckResult:
    bad = rng.random() < 0.02
    findings = [Finding("SOME_FINDING", "fail", "GPU 3", "something broke", observed=1, limit=0, unit="count",
                        action="replace it")] if bad else []
    # two real check metrics: one served as stored, one converted to its base unit (GB/s -> bytes/s)
    r = CheckResult.from_findings(cid, findings, "ok", {"busbw_large_gbps": 230 + rng.random(),
                                                       "gpu_power_draw_total_w": 700 * rng.random()})
    r.duration_s = rng.random()
    return r


def build(db: Path, nodes: int, checks: int, nights: int, seed: int = 0) -> list[tuple[str, int, float]]:
    """Night 1 one transaction per check (`record_check`), later nights one per node
    (`record_checks`, what a burn-in cycle does); returns (path, checks, seconds)."""
    rng = random.Random(seed)
    hosts = [f"gpu{i:04d}" for i in range(nodes)]
    check_ids = [f"family{i % 5}.check{i:02d}" for i in range(checks)]
    start = dt.datetime(2026, 10, 24, 1, 0, tzinfo=dt.timezone.utc)
    timings: list[tuple[str, int, float]] = []
    with History(db) as h:
        for night in range(nights):
            ts = (start + dt.timedelta(days=night)).isoformat(timespec="seconds")
            rid = h.start_run("burnin", suite="full", profile="h100-sxm5-80gb", started_at=ts)
            t0 = time.perf_counter()
            for host in hosts:
                if night == 0:
                    for cid in check_ids:
                        h.record_check(rid, host, _check(rng, cid), finished_at=ts, cycle=0)
                else:
                    h.record_checks(rid, [(host, _check(rng, cid)) for cid in check_ids], finished_at=ts, cycle=0)
                h.record_node(rid, host, "ok", "pass")
            timings.append(("per check" if night == 0 else "per node", nodes * checks, time.perf_counter() - t0))
            h.finish_run(rid, "pass", ts)
        h.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return timings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--checks", type=int, default=30)
    ap.add_argument("--nights", type=int, default=30)
    ap.add_argument("--scrapes", type=int, default=50)
    ap.add_argument("--db", type=Path, help="reuse/keep this database (built if absent)")
    a = ap.parse_args()
    db = a.db or Path(tempfile.mkdtemp(prefix="ck-bench-")) / "history.db"
    if not db.exists():
        timings = build(db, a.nodes, a.checks, a.nights)
        for label in ("per check", "per node"):
            got = [(n, s) for lab, n, s in timings if lab == label]
            if got:
                n, secs = sum(x for x, _ in got), sum(s for _, s in got)
                print(f"history write, one transaction {label}: {n:,} check results (2 metrics each, 2% with a "
                      f"finding) in {secs:.1f} s = {n / secs:,.0f} checks/s")
    size = db.stat().st_size + sum(p.stat().st_size for p in db.parent.glob(db.name + "-*"))
    print(f"history DB size: {size / 2**20:.1f} MiB (goal < 200 MB)")
    cpu = []
    for _ in range(5):
        c0 = time.process_time()
        scrape(db)
        cpu.append(time.process_time() - c0)
    print(f"uncached scrape, CPU time in-process: median {statistics.median(cpu) * 1000:.0f} ms (5 scrapes)")
    server, _ = serve(db, 0, "127.0.0.1")
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"

    def timed(n: int, before=None, after=None) -> tuple[list[float], bytes]:
        times, body = [], b""
        for i in range(n):
            if before:
                before(i)
            t0 = time.perf_counter()
            with urllib.request.urlopen(url, timeout=60) as r:
                body = r.read()
            times.append(time.perf_counter() - t0)
            if after:
                after(body)
        return sorted(times), body

    def report(label: str, times: list[float], body: bytes) -> None:
        p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
        lines = sum(1 for ln in body.splitlines() if ln and not ln.startswith(b"#"))
        print(f"{label}: {lines:,} samples, {len(body) / 2**20:.1f} MiB; {len(times)} scrapes over HTTP: "
              f"median {statistics.median(times) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms (goal p99 < 200 ms)")

    hist = History(db)
    rid = hist.start_run("burnin")

    written: list[int] = []

    def write_one(i: int) -> None:  # a burn-in is writing: a commit before every scrape
        hist.record_check(rid, "gpu0000", CheckResult("family0.check00", "pass", "ok",
                                                      metrics={"busbw_large_gbps": 1000 + i}))
        written.append(1000 + i)

    seen: list[int] = []

    def record_seen(body: bytes) -> None:  # which commit this scrape showed
        line = next(ln for ln in body.splitlines() if ln.startswith(
            b'clusterkit_nccl_busbw_large_bytes_per_second{host="gpu0000",check="family0.check00"}'))
        seen.append(round(float(line.rsplit(b" ", 1)[1]) / 1e9))

    timed(1)  # the exporter has been running: it holds a reading when the burn-in starts writing
    report("scrape while a burn-in writes (a commit before each scrape)", *timed(a.scrapes, write_one, record_seen))
    fresh = sum(1 for w, v in zip(written, seen) if v == w)
    lag = [written.index(w) - written.index(v) for w, v in zip(written, seen) if v in written]
    print(f"  served the commit just made in {fresh} of {len(seen)} scrapes; the others served the reading "
          f"{max(lag, default=0)} commit(s) older at most (the re-read finishes in the background)")
    hist.close()
    timed(1)  # the first scrape after the writes re-reads; the ones after it are what a quiet day sees
    report("scrape between burn-ins (history unchanged, cached)", *timed(a.scrapes))
    server.shutdown()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
