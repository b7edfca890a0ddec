"""The exporter's HTTP side against bursts and hostile clients, before and after issue 18.

    python benchmarks/exporter_clients.py [--nodes 1000] [--checks 30] [--burst 200] [--half-open 3000]

One history (NODES x CHECKS latest results, built by benchmarks/exporter_scrape.py's `build`)
served twice: by `http.server.ThreadingHTTPServer` as before issue 18 (a thread per connection,
no socket timeout), and by clusterkit's bounded server (clusterkit/scrape_server.py), both around
the same `Scraper`. Measured: latency of --burst concurrent scrapes (goal p99 < 200 ms, issue 8),
and one scrape while --half-open connections hold a request begun and never finished.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from exporter_scrape import build  # noqa: E402

from clusterkit.exporter import CONTENT_TYPE, Scraper, serve  # noqa: E402


def serve_threading(db: Path) -> tuple[ThreadingHTTPServer, str]:
    """The server before issue 18, around the same Scraper."""
    scraper = Scraper(db)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = scraper()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/metrics"


def scrape(url: str, timeout: float = 600) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as r:
        r.read()
    return time.perf_counter() - t0


def burst(url: str, n: int) -> list[float]:
    scrape(url)   # warm: the first reading fills the cache
    with ThreadPoolExecutor(max_workers=n) as ex:
        return sorted(ex.map(lambda _: scrape(url), range(n)))


def behind_half_open(url: str, n: int, limit_s: float) -> float | None:
    host, port = url.split("//")[1].split("/")[0].split(":")
    held = []
    try:
        for _ in range(n):
            s = socket.create_connection((host, int(port)), timeout=10)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            held.append(s)
        try:
            return scrape(url, timeout=limit_s)
        except OSError:
            return None
    finally:
        for s in held:
            s.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--checks", type=int, default=30)
    ap.add_argument("--burst", type=int, default=200)
    ap.add_argument("--half-open", type=int, default=3000)
    ap.add_argument("--limit", type=float, default=60.0, help="give up on the scrape behind half-open ones after this")
    a = ap.parse_args()
    db = Path(tempfile.mkdtemp(prefix="ck-bench-")) / "history.db"
    build(db, a.nodes, a.checks, 1)
    old, old_url = serve_threading(db)
    new, _ = serve(db, 0, "127.0.0.1")
    new_url = f"http://127.0.0.1:{new.server_address[1]}/metrics"
    print(f"history of {a.nodes} nodes x {a.checks} checks; load average {os.getloadavg()[0]:.1f}")
    p99 = {}
    for label, url in (("ThreadingHTTPServer (before)", old_url), ("clusterkit scrape server", new_url)):
        t = burst(url, a.burst)
        p99[label] = t[min(len(t) - 1, int(round(0.99 * (len(t) - 1))))]
        print(f"  {label}: {a.burst} concurrent scrapes: median {statistics.median(t) * 1000:.0f} ms, "
              f"p99 {p99[label] * 1000:.0f} ms, max {t[-1] * 1000:.0f} ms (goal p99 < 200 ms)")
    for label, url in (("clusterkit scrape server", new_url), ("ThreadingHTTPServer (before)", old_url)):
        took = behind_half_open(url, a.half_open, a.limit)
        print(f"  {label}: one scrape behind {a.half_open:,} half-open requests: "
              + (f"{took * 1000:.0f} ms" if took is not None else f"no answer within {a.limit:g} s"))
    old.shutdown()
    new.shutdown()


if __name__ == "__main__":
    main()
