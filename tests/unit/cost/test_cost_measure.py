"""Measured inputs: time-weighted GPU-node uptime, power and GEMM/NCCL figures from a burn-in history
(written by clusterkit's History), and from Prometheus' HTTP API (a stand-in server here; the real
Prometheus is in tests/integration/cost)."""

from __future__ import annotations

import json
import sqlite3
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


def _three_nodes(tmp_path):
    """Three GPU nodes and a login node, looked at 0, 12 and 24 hours after 2026-11-01 00:00 UTC.

    Each look stands for the time from the midpoint with the one before to the midpoint with the one after:
    cells 0-6 h, 6-18 h, 18-24 h, so 24 node-hours each, 72 in all.
      g1 up at every look, drained by clusterkit from 3 h to 9 h:        6 h drained
      g2 failed a check at 12 h (cell 6-18 h), drained 10-14 h inside it: 4 h drained, 8 h failed
      g3 unreachable at 12 h:                                           12 h unreachable
    Down 30 of 72 node-hours: availability 42/72 = 58.33 %. login1 has no GPU and is left out.
    """
    return make_history(tmp_path / "history.db", [
        {"cycles": [{"h": 0, "nodes": {"g1": "pass", "g2": "pass", "g3": "pass", "login1": "nogpu"}},
                    {"h": 12, "nodes": {"g1": "pass", "g2": "fail", "g3": "unreachable", "login1": "nogpu"}},
                    {"h": 24, "nodes": {"g1": "warn", "g2": "pass", "g3": "pass", "login1": "nogpu"}}],
         "power": {"g1": [5000, 5200, 5100], "g2": [4000, 4000, 4000], "g3": [4600, 0, 4600]}},      # nothing is recorded while unreachable
        # a simulated run: ignored while real runs exist
        {"simulated": True, "cycles": [{"h": 30, "nodes": {"g9": "fail"}}], "power": {"g9": [100]}},
    ], drains=(("g1", "drain", 3), ("g1", "resume", 9), ("g2", "drain", 10), ("g2", "resume", 14)))


def test_history_time_weighted_gpu_node_uptime(tmp_path, small_cfg):
    m = measure.from_history(_three_nodes(tmp_path))
    got = {x.key: x for x in m.values}
    a = got["utilization.availability"]
    assert a.value == pytest.approx(42 / 72)
    assert a.nodes == 3 and a.period == ("2026-11-01 00:00", "2026-11-02 00:00")
    assert "3 GPU nodes from 2026-11-01 00:00 to 2026-11-02 00:00 UTC" in a.source
    assert "unreachable 12.0 h, drained 10.0 h, failed 8.0 h" in a.source
    assert any("left out 1 host(s) with no GPU result: login1" in w for w in m.warnings)
    # power: per-node means 5100, 4000, 4600 W over 3 GPU nodes (the simulated g9 is not counted)
    p = got["power.gpu_power_w"]
    assert p.value == pytest.approx((5100 + 4000 + 4600) / 3) and p.nodes == 3 and "3 GPU nodes, 8 samples" in p.source
    cfg = measure.apply(small_cfg, m)
    assert cfg.inputs["utilization.availability"].basis == "measured"
    assert "assumed was 1" in cfg.inputs["utilization.availability"].source
    assert compute(cfg).effective_utilization == pytest.approx(0.5 * 42 / 72)


def test_a_failed_check_counts_until_the_next_look_not_the_whole_run(tmp_path):
    # looks at 0, 1 and 25 h; the node failed at 1 h only: cells 0-0.5, 0.5-13, 13-25 -> 12.5 of 25 h failed
    db = make_history(tmp_path / "h.db", [{"cycles": [{"h": 0, "nodes": {"a": "pass"}}, {"h": 1, "nodes": {"a": "fail"}},
                                                      {"h": 25, "nodes": {"a": "pass"}}]}])
    a = {x.key: x for x in measure.from_history(db).values}["utilization.availability"]
    assert a.value == pytest.approx(12.5 / 25)


def test_open_drain_runs_to_the_end_and_runs_join_into_one_timeline(tmp_path):
    db = make_history(tmp_path / "h.db", [
        {"cycles": [{"h": 0, "nodes": {"a": "pass", "b": "pass"}}]},
        {"cycles": [{"h": 10, "nodes": {"a": "pass", "b": "pass"}}]},
    ], drains=(("b", "drain", 6),))
    a = {x.key: x for x in measure.from_history(db).values}["utilization.availability"]
    # 10 h each; b drained from 6 h to the end: 4 of 20 node-hours down
    assert a.value == pytest.approx(16 / 20) and "drained 4.0 h" in a.source


def test_single_look_is_a_snapshot_and_says_so(tmp_path):
    # b never answered: nothing says it has GPUs, so it is left out (and named)
    db = make_history(tmp_path / "h.db", [{"cycles": [{"h": 0, "nodes": {"a": "pass", "b": "unreachable",
                                                                         "c": "fail", "d": "warn"}}]}])
    m = measure.from_history(db)
    a = {x.key: x for x in m.values}["utilization.availability"]
    assert a.value == pytest.approx(2 / 3) and "not a time-weighted uptime" in a.source and a.nodes == 3
    assert any("snapshot" in w for w in m.warnings)
    assert any("left out 1 host(s) with no GPU result: b" in w for w in m.warnings)


def test_history_only_simulated_is_used_but_flagged(tmp_path):
    db = make_history(tmp_path / "sim.db", [{"simulated": True, "cycles": [{"h": 0, "nodes": {"a": "pass"}},
                                                                           {"h": 2, "nodes": {"a": "pass"}}],
                                             "power": {"a": [4200, 4200]}}])
    m = measure.from_history(db)
    assert {x.key: x.value for x in m.values} == {"power.gpu_power_w": 4200, "utilization.availability": 1.0}
    assert "only simulated runs" in m.warnings[0]


def test_history_without_power_keeps_it_assumed(tmp_path):
    db = make_history(tmp_path / "np.db", [{"cycles": [{"h": 0, "nodes": {"a": "pass"}}, {"h": 1, "nodes": {"a": "pass"}}]}])
    m = measure.from_history(db)
    assert [x.key for x in m.values] == ["utilization.availability"]
    assert "GPU power stays assumed" in m.warnings[0]


def test_measured_nccl_figure_adjusts_the_generation_throughput(tmp_path, small_cfg):
    # H100 published: 2.0x A100 training, 478 GB/s single-node NCCL. Measured 239 GB/s (half), no GEMM
    # figure: one step = 80 % compute at the published speed + 20 % communication at half the speed
    # efficiency 1 / (0.8 + 0.2/0.5) = 0.8333 -> 1.6667x A100
    db = make_history(tmp_path / "n.db", [{"cycles": [{"h": 0, "nodes": {"a": "pass", "b": "pass"}},
                                                      {"h": 1, "nodes": {"a": "pass", "b": "pass"}}],
                                           "metrics": {"a": {"busbw_large_gbps": 239.0},
                                                       "b": {"busbw_large_gbps": 239.0}}}])
    m = measure.from_history(db)
    assert m.figures == {"H100": {"nccl_busbw_gbps": (239.0, 2)}}
    cfg = measure.apply(small_cfg, m)
    i = cfg.inputs["generation.throughput.H100"]
    assert i.value == pytest.approx(2.0 / 1.2) and i.basis == "measured" and "NCCL 239 measured on 2 host(s)" in i.source


def test_history_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        measure.from_history(tmp_path / "missing.db")
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite at all" * 100)
    with pytest.raises(ConfigError, match="not a readable clusterkit history"):
        measure.from_history(junk)


def test_uptime_of_one_node_by_hand():
    # looks at 0, 10, 20 s: cells 0-5, 5-15, 15-20; failed at 10; drained 12-30 (to the end)
    u = measure.uptime([(0, "up"), (10, "failed"), (20, "up")], [(12, 30)])
    assert u.period_s == 20
    assert u.down_s == {"unreachable": 0.0, "drained": 8.0, "failed": 7.0}      # 15-20 and 12-15 drained
    assert u.up_s == 5


class _Prom(BaseHTTPRequestHandler):
    """Answers /api/v1/query and /api/v1/query_range like Prometheus does, from a table of query -> answer."""
    answers: dict = {}
    seen: list = []

    def do_GET(self):  # noqa: N802
        url = urllib.parse.urlparse(self.path)
        params = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        q = params.get("query", "")
        self.seen.append((url.path, q, params))
        status, body = self.answers.get(q, (400, {"status": "error", "errorType": "bad_data", "error": "parse error"}))
        if callable(body):
            body = body(params)
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


def _vector(*values):
    return 200, {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"host": f"n{i}"}, "value": [1764000000.0, str(v)]} for i, v in enumerate(values)]}}


def _matrix(*series):
    """series: lists of 0/1 (None = no sample at that step) from the query's start, one step apart."""
    def answer(params):
        start, step = float(params["start"]), float(params["step"])
        return {"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"host": f"n{i}"}, "values": [[start + k * step, str(v)] for k, v in enumerate(s) if v is not None]}
            for i, s in enumerate(series)]}}
    return 200, answer


Q = {k: v.replace("{period}", "2592000s") for k, v in DEFAULT_PROMETHEUS.items()}


def test_prometheus_measures_uptime_with_missing_samples_as_unreachable(prom):
    _, url = prom
    # n0 up 10 steps; n1 up, down 2, a 3-step gap (unreachable), up: 5 of 10 steps
    _Prom.answers = {Q["power_query"]: _vector(4300, 4343),
                     Q["availability_query"]: _matrix([1] * 10, [1, 1, 0, 0, None, None, None, 1, 1, 1])}
    m = measure.from_prometheus(url, DEFAULT_PROMETHEUS, now=1_764_000_000)
    got = {x.key: x for x in m.values}
    assert got["power.gpu_power_w"].value == pytest.approx(4321.5) and got["power.gpu_power_w"].nodes == 2
    a = got["utilization.availability"]
    assert a.value == pytest.approx(15 / 20) and a.nodes == 2
    assert "time-weighted uptime of 2 GPU nodes" in a.source and "unreachable = missing samples" in a.source
    path, _, params = _Prom.seen[1]
    assert path == "/api/v1/query_range" and float(params["step"]) == 260      # 30 days in at most 10,000 steps
    assert float(params["end"]) - float(params["start"]) == 30 * 86400


def test_prometheus_empty_result_stays_assumed(prom):
    _, url = prom
    empty = (200, {"status": "success", "data": {"resultType": "vector", "result": []}})
    _Prom.answers = {Q["power_query"]: empty, Q["availability_query"]: _matrix([1, 1])}
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
    _Prom.answers = {Q["power_query"]: answer}
    with pytest.raises(ConfigError, match=words):
        measure.from_prometheus(url, DEFAULT_PROMETHEUS)


def test_prometheus_bad_availability(prom):
    _, url = prom
    _Prom.answers = {Q["power_query"]: _vector(4000), Q["availability_query"]: _matrix([1, 97])}
    with pytest.raises(ConfigError, match="expected 1 .up. or 0"):
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
    cfg.write_text(small_toml + '\n[prometheus]\npower_query = "avg_over_time(node_gpu_watts[{period}])"\n'
                                'availability_query = "healthy"\nperiod_days = 1\n')
    _Prom.answers = {"avg_over_time(node_gpu_watts[86400s])": _vector(2000), "healthy": _matrix([1, 1, 1, 0])}
    p = subprocess.run([sys.executable, "-m", "clusterkit", "cost", "report", "-c", str(cfg), "--prometheus", url,
                        "--format", "json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    assert sorted(j["measured_inputs"]) == ["power.gpu_power_w", "utilization.availability"]
    assert j["result"]["power"] == pytest.approx(2 * 2.0 * 1.5 * 8760)     # 2 nodes x 2 kW x PUE 1.5 x 8760 h
    assert j["result"]["effective_utilization"] == pytest.approx(0.5 * 0.75)
    assert ("/api/v1/query", "avg_over_time(node_gpu_watts[86400s])") in [s[:2] for s in _Prom.seen]


# Text samples are letters only: SQLite stores numeric-looking text in a REAL column as a number.
@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["h1", "h2", ""]), st.sampled_from(["ok", "error", "timeout", None]),
                          st.sampled_from(["pass", "warn", "fail", "error", None]),
                          st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=False, width=32),
                                    st.text(alphabet="abc", max_size=3))), max_size=12),
       st.lists(st.tuples(st.sampled_from(["h1", "h2"]), st.sampled_from(["drain", "resume", "skip", "x"]),
                          st.sampled_from(["2026-11-01T01:00:00+00:00", "garbage", "", "2026-10-01T00:00:00Z"])),
                max_size=4))
def test_fuzzed_history_never_tracebacks(tmp_path_factory, rows, drains):
    db = tmp_path_factory.mktemp("fz") / "h.db"
    make_history(db, [{"cycles": [{"h": 0, "nodes": {"h1": "pass"}}, {"h": 2, "nodes": {"h1": "pass"}}]}])
    con = sqlite3.connect(db)
    for host, outcome, status, value in rows:
        con.execute("INSERT INTO node_results VALUES (1, ?, ?, ?) ON CONFLICT DO NOTHING", (host, outcome, status))
        con.execute("INSERT INTO check_results (run_id, host, check_id, status, summary, duration_s, finished_at)"
                    " VALUES (1, ?, 'gpu.x', ?, '', 0, ?)", (host, status or "pass", "2026-11-01T01:00:00Z"))
        cid = con.execute("SELECT last_insert_rowid()").fetchone()[0]
        if isinstance(value, float) and value == value:
            con.execute("INSERT INTO metrics VALUES (?, 1, ?, 'gpu.x', 'gpu_power_draw_total_w', ?, 't')",
                        (cid, host, value))
    for node, action, ts in drains:
        con.execute("INSERT INTO drains(run_id, node, action, reason, ts) VALUES (1, ?, ?, '', ?)", (node, action, ts))
    con.commit()
    con.close()
    try:
        m = measure.from_history(db)
    except ConfigError as e:
        assert "\n" not in str(e)
        return
    for x in m.values:
        assert x.value == x.value                       # never NaN
        if x.key == "utilization.availability":
            assert 0 <= x.value <= 1
