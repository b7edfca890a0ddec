"""The exporter process against hostile and bursty clients: thousands of half-open requests
(slow loris) do not starve a scrape, a burst of concurrent scrapes is answered, and what the
exporter serves is unchanged (tests/unit/burnin/test_exporter_collect.py pins the content)."""

from __future__ import annotations

import socket
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from clusterkit.history import History
from tests.burnin_helpers import node, run

pytestmark = pytest.mark.integration


def _db(tmp_path):
    db = tmp_path / "h.db"
    with History(db) as h:
        h.record_run(run([node(f"gpu{i:02d}") for i in range(8)]), kind="burnin")
    return db


def _scrape(url: str) -> tuple[float, bytes]:
    """(seconds, the body without the collectors' own timings, which change every scrape)."""
    t0 = time.monotonic()
    with urllib.request.urlopen(url, timeout=30) as r:
        body = r.read()
    took = time.monotonic() - t0
    return took, b"\n".join(ln for ln in body.split(b"\n")
                            if not ln.startswith(b"clusterkit_scrape_collector_duration_seconds{"))


def test_half_open_requests_do_not_starve_a_scrape(tmp_path, start_exporter):
    exp = start_exporter(_db(tmp_path))
    host, port = exp.target.rsplit(":", 1)
    baseline = _scrape(exp.url)[1]
    held = []
    try:
        for i in range(3000):   # slow loris: a request begun and never finished, or never begun
            s = socket.create_connection((host, int(port)), timeout=5)
            if i % 2:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            held.append(s)
        took, body = _scrape(exp.url)
        assert body == baseline
        assert took < 10, f"a scrape behind 3,000 half-open connections took {took:.1f} s"
        time.sleep(6)           # past the header limit: the begun requests are dropped by the exporter
        dropped = 0
        for s in held[1:20:2]:
            s.settimeout(2)
            try:
                dropped += s.recv(1) == b""
            except OSError:
                dropped += 1
        assert dropped == 10
    finally:
        for s in held:
            s.close()


def test_a_burst_of_concurrent_scrapes_is_answered(tmp_path, start_exporter):
    exp = start_exporter(_db(tmp_path))
    baseline = _scrape(exp.url)[1]
    with ThreadPoolExecutor(max_workers=200) as ex:
        results = list(ex.map(lambda _: _scrape(exp.url), range(200)))
    assert all(body == baseline for _, body in results)
    assert max(t for t, _ in results) < 20


def test_bad_requests_get_http_errors_and_the_server_lives_on(tmp_path, start_exporter):
    exp = start_exporter(_db(tmp_path))
    host, port = exp.target.rsplit(":", 1)
    for raw, want in ((b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n", b"405"), (b"GET /x HTTP/1.1\r\n\r\n", b"404"),
                      (b"nonsense\r\n\r\n", b"400"), (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", b"")):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(raw)
            s.settimeout(5)
            first = s.recv(64)
            assert want in first.split(b"\r\n")[0] if want else first[:12] in (b"", b"HTTP/1.1 400")
    assert _scrape(exp.url)[1].startswith(b"# HELP")
