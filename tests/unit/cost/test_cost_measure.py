"""Measured power and availability from a burn-in history DB and from Prometheus' HTTP API."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterkit.cost import measure
from clusterkit.cost.config import DEFAULT_PROMETHEUS
from clusterkit.cost.model import compute
from clusterkit.errors import ConfigError

from history_db import make_history


def _history(tmp_path):
    return make_history(tmp_path / "history.db", [
        {"nodes": {"n1": ("ok", "pass"), "n2": ("ok", "warn"), "n3": ("unreachable", "error")},
         "power": {"n1": [5000, 5200], "n2": [4000]}},
        {"nodes": {"n1": ("ok", "fail"), "n2": ("ok", "pass"), "n3": ("ok", "pass")},
         "power": {"n1": [5100], "n3": [4600]}},
        # a simulated run: must be ignored while real runs exist
        {"simulated": 1, "nodes": {"n9": ("ok", "fail")}, "power": {"n9": [100]}},
    ])


def test_history_power_and_availability(tmp_path, small_cfg):
    m = measure.from_history(_history(tmp_path))
    got = {x.key: x.value for x in m.values}
    # per-host means: n1 (5000+5200+5100)/3 = 5100, n2 4000, n3 4600 -> mean 4566.67 W
    assert got["power.gpu_power_w"] == pytest.approx((5100 + 4000 + 4600) / 3)
    # ok+pass/warn: run 1 n1, n2; run 2 n2, n3 -> 4 of 6
    assert got["utilization.availability"] == pytest.approx(4 / 6)
    assert m.warnings == []
    cfg = measure.apply(small_cfg, m)
    assert cfg.inputs["power.gpu_power_w"].basis == "measured"
    assert "assumed was 1000" in cfg.inputs["power.gpu_power_w"].source
    assert compute(cfg).effective_utilization == pytest.approx(0.5 * 4 / 6)


def test_history_only_simulated_is_used_but_flagged(tmp_path):
    db = make_history(tmp_path / "sim.db", [{"simulated": 1, "nodes": {"a": ("ok", "pass")}, "power": {"a": [4200]}}])
    m = measure.from_history(db)
    assert {x.key: x.value for x in m.values} == {"power.gpu_power_w": 4200, "utilization.availability": 1.0}
    assert "only simulated runs" in m.warnings[0]


def test_history_without_power_keeps_it_assumed(tmp_path):
    db = make_history(tmp_path / "np.db", [{"nodes": {"a": ("ok", "pass")}}])
    m = measure.from_history(db)
    assert [x.key for x in m.values] == ["utilization.availability"]
    assert "GPU power stays assumed" in m.warnings[0]


def test_history_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        measure.from_history(tmp_path / "missing.db")
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite at all" * 100)
    with pytest.raises(ConfigError, match="not a readable clusterkit history"):
        measure.from_history(junk)


class _Prom(BaseHTTPRequestHandler):
    """Answers /api/v1/query like Prometheus does, from a table of query -> answer."""
    answers: dict = {}
    seen: list = []

    def do_GET(self):  # noqa: N802
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query).get("query", [""])[0]
        self.seen.append((url.path, q))
        status, body = self.answers.get(q, (400, {"status": "error", "errorType": "bad_data", "error": "parse error"}))
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *a):
        pass


@pytest.fixture
def prom():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Prom)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    _Prom.seen = []
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _vector(v):
    return 200, {"status": "success", "data": {"resultType": "vector",
                                               "result": [{"metric": {}, "value": [1764000000.0, str(v)]}]}}


def test_prometheus_measures(prom):
    _, url = prom
    _Prom.answers = {DEFAULT_PROMETHEUS["power_query"]: _vector(4321.5),
                     DEFAULT_PROMETHEUS["availability_query"]: _vector(0.985)}
    m = measure.from_prometheus(url, DEFAULT_PROMETHEUS)
    assert {x.key: x.value for x in m.values} == {"power.gpu_power_w": 4321.5, "utilization.availability": 0.985}
    assert [p for p, _ in _Prom.seen] == ["/api/v1/query", "/api/v1/query"]


def test_prometheus_empty_result_stays_assumed(prom):
    _, url = prom
    empty = (200, {"status": "success", "data": {"resultType": "vector", "result": []}})
    _Prom.answers = {DEFAULT_PROMETHEUS["power_query"]: empty,
                     DEFAULT_PROMETHEUS["availability_query"]: (200, {"status": "success", "data": {
                         "resultType": "scalar", "result": [1764000000.0, "0.9"]}})}
    m = measure.from_prometheus(url, DEFAULT_PROMETHEUS)
    assert [x.key for x in m.values] == ["utilization.availability"]
    assert "GPU power stays assumed" in m.warnings[0]


@pytest.mark.parametrize("answer,words", [
    ((400, {"status": "error", "error": "parse error"}), "HTTP 400"),
    ((200, b"<html>not prometheus</html>"), "not JSON"),
    ((200, {"status": "error", "error": "boom"}), "failed: boom"),
    ((200, {"status": "success", "data": {"resultType": "vector", "result": [{"value": "x"}]}}), "unexpected result"),
])
def test_prometheus_errors(prom, answer, words):
    _, url = prom
    _Prom.answers = {DEFAULT_PROMETHEUS["power_query"]: answer}
    with pytest.raises(ConfigError, match=words):
        measure.from_prometheus(url, DEFAULT_PROMETHEUS)


def test_prometheus_bad_availability(prom):
    _, url = prom
    _Prom.answers = {DEFAULT_PROMETHEUS["power_query"]: _vector(4000),
                     DEFAULT_PROMETHEUS["availability_query"]: _vector(97)}
    with pytest.raises(ConfigError, match="expected a share"):
        measure.from_prometheus(url, DEFAULT_PROMETHEUS)


def test_prometheus_unreachable():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ConfigError, match="cannot reach Prometheus"):
        measure.from_prometheus(f"http://127.0.0.1:{port}", DEFAULT_PROMETHEUS, timeout=2)


def test_cli_prometheus_fills_measured_inputs(prom, tmp_path, small_toml):
    import subprocess
    import sys

    _, url = prom
    cfg = tmp_path / "cost.toml"
    cfg.write_text(small_toml + '\n[prometheus]\npower_query = "avg(node_gpu_watts)"\n'
                                'availability_query = "avg(healthy)"\n')
    _Prom.answers = {"avg(node_gpu_watts)": _vector(2000), "avg(healthy)": _vector(0.8)}
    p = subprocess.run([sys.executable, "-m", "clusterkit", "cost", "report", "-c", str(cfg), "--prometheus", url,
                        "-f", "json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    assert sorted(j["measured_inputs"]) == ["power.gpu_power_w", "utilization.availability"]
    assert j["result"]["power"] == pytest.approx(2 * 2.0 * 1.5 * 8760)     # 2 nodes x 2 kW x PUE 1.5 x 8760 h
    assert j["result"]["effective_utilization"] == pytest.approx(0.5 * 0.8)
    assert ("/api/v1/query", "avg(node_gpu_watts)") in _Prom.seen


# Text samples are letters only: SQLite stores numeric-looking text in a REAL column as a number.
@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["h1", "h2", ""]), st.sampled_from(["ok", "error", "timeout", None]),
                          st.sampled_from(["pass", "warn", "fail", "error", None]),
                          st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=False, width=32),
                                    st.text(alphabet="abc", max_size=3))), max_size=12))
def test_fuzzed_history_never_tracebacks(tmp_path_factory, rows):
    import sqlite3

    db = tmp_path_factory.mktemp("fz") / "h.db"
    make_history(db, [{}])
    con = sqlite3.connect(db)
    for host, outcome, status, value in rows:
        con.execute("INSERT INTO node_results VALUES (1, ?, ?, ?)", (host, outcome, status))
        con.execute("INSERT INTO metrics VALUES (1, 1, ?, 'x', 'gpu_power_draw_total_w', ?, 't')", (host, value))
    con.commit()
    con.close()
    try:
        m = measure.from_history(db)
    except ConfigError as e:
        assert "\n" not in str(e)
        return
    numbers = {}
    for host, _, _, value in rows:
        if isinstance(value, float) and value == value:
            numbers.setdefault(host, []).append(value)
    for x in m.values:
        assert x.value == x.value                       # never NaN
        if x.key == "power.gpu_power_w":                # text or missing samples are not averaged in as zeros
            assert x.value == pytest.approx(sum(sum(v) / len(v) for v in numbers.values()) / len(numbers), rel=1e-6)
        if x.key == "utilization.availability":
            assert 0 <= x.value <= 1
