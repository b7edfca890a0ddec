"""The exporter's HTTP side against bursts and hostile clients, before and after issue 18.

    python benchmarks/exporter_clients.py [--nodes 64] [--checks 30] [--burst 200] [--half-open 3000]

One history (NODES x CHECKS latest results, built by benchmarks/exporter_scrape.py's `build`)
served by two exporter processes: clusterkit's (`clusterkit exporter`: one event loop, bounded
body pool, clusterkit/scrape_server.py) and the server before issue 18 (`http.server`'s
ThreadingHTTPServer around the same `Scraper`: a thread per connection, no socket timeout).
The clients run here on one asyncio loop, so that client threads do not compete with the
servers. Measured: latency of --burst concurrent scrapes (goal p99 < 200 ms, issue 8), and a
scrape while --half-open connections hold a request begun and never finished.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from exporter_scrape import build  # noqa: E402

BEFORE = r"""
import sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from clusterkit.exporter import CONTENT_TYPE, Scraper
scraper = Scraper(sys.argv[1])
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = scraper()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(f"listening on http://127.0.0.1:{server.server_address[1]}/metrics", flush=True)
server.serve_forever()
"""


def start(argv: list[str]) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = p.stdout.readline()
    return p, int(line.split("http://127.0.0.1:")[1].split("/")[0])


async def get(port: int, timeout: float) -> float | None:
    """Seconds for one whole scrape; None when the server refused or reset it, or sent no 200."""
    t0 = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), timeout)     # until the server closes: the whole response
        writer.close()
    except (asyncio.TimeoutError, OSError):
        return None
    return time.perf_counter() - t0 if data.startswith(b"HTTP/1.") and b" 200 " in data[:16] else None


async def burst(port: int, n: int) -> tuple[list[float], int]:
    await get(port, 60)   # warm: the first reading fills the cache
    got = await asyncio.gather(*(get(port, 120) for _ in range(n)))
    return sorted(t for t in got if t is not None), sum(t is None for t in got)


async def behind_half_open(port: int, n: int, limit: float, pid: int) -> tuple[float | None, str]:
    """(a scrape's seconds while n requests are begun and never finished, what the server holds then
    and 6 s later: threads and open descriptors)."""
    import psutil

    server = psutil.Process(pid)
    held = []
    try:
        for _ in range(n):
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
            except (asyncio.TimeoutError, OSError):
                continue
            w.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            held.append(w)
        await asyncio.sleep(0.5)
        took = await get(port, limit)
        now = f"{server.num_threads()} threads, {server.num_fds()} descriptors"
        await asyncio.sleep(6)
        return took, f"holding {now}; 6 s later {server.num_threads()} threads, {server.num_fds()} descriptors"
    finally:
        for w in held:
            w.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--checks", type=int, default=30)
    ap.add_argument("--burst", type=int, default=200)
    ap.add_argument("--half-open", type=int, default=3000)
    ap.add_argument("--limit", type=float, default=60.0, help="give up on the scrape behind half-open ones after this")
    a = ap.parse_args()
    db = Path(tempfile.mkdtemp(prefix="ck-bench-")) / "history.db"
    build(db, a.nodes, a.checks, 1)
    servers = {"clusterkit exporter": start([sys.executable, "-m", "clusterkit", "exporter", "--port", "0",
                                             "--db", str(db)]),
               "ThreadingHTTPServer (before)": start([sys.executable, "-c", BEFORE, str(db)])}
    try:
        size = len(subprocess.run(["curl", "-s", f"http://127.0.0.1:{servers['clusterkit exporter'][1]}/metrics"],
                                  capture_output=True).stdout)
        print(f"history of {a.nodes} nodes x {a.checks} checks ({size / 1024:.0f} KiB a scrape); load average "
              f"{os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M')}")
        for label, (_, port) in servers.items():
            t, failed = asyncio.run(burst(port, a.burst))
            p99 = t[min(len(t) - 1, int(round(0.99 * (len(t) - 1))))] if t else float("nan")
            print(f"  {label}: {a.burst} concurrent scrapes: {failed} refused or reset; of the others median "
                  f"{statistics.median(t) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {t[-1] * 1000:.0f} ms "
                  f"(goal p99 < 200 ms)")
        for label, (proc, port) in servers.items():
            took, held = asyncio.run(behind_half_open(port, a.half_open, a.limit, proc.pid))
            print(f"  {label}: a scrape behind {a.half_open:,} half-open requests: "
                  + (f"{took * 1000:.0f} ms" if took is not None else f"no answer within {a.limit:g} s")
                  + f"; the exporter {held}")
    finally:
        for p, _ in servers.values():
            p.terminate()
            p.wait(timeout=10)


if __name__ == "__main__":
    main()
