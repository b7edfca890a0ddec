"""Measured inputs from a real Prometheus server (Debian `prometheus`), its TSDB filled by `promtool`
with the series clusterkit's exporter serves."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from clusterkit.cost import measure
from clusterkit.cost.config import DEFAULT_PROMETHEUS

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openmetrics(now: int) -> str:
    """Two GPU hosts for 2 hours, one sample a minute, starting 6 hours ago: n1 draws 5000 W and is always
    healthy; n2 draws 4000 W and failed its checks for the first 30 of 120 samples. login1 has no GPU (no
    power series) and failed throughout: it must not count."""
    start = now - 6 * 3600
    out = ["# TYPE clusterkit_gpu_power_draw_watts gauge"]
    for i in range(120):
        t = start + 60 * i
        out.append(f'clusterkit_gpu_power_draw_watts{{host="n1",check="gpu.power_step"}} 5000 {t}')
        out.append(f'clusterkit_gpu_power_draw_watts{{host="n2",check="gpu.power_step"}} 4000 {t}')
    out.append("# TYPE clusterkit_node_status gauge")
    for i in range(120):
        t = start + 60 * i
        out.append(f'clusterkit_node_status{{host="n1",status="pass"}} 1 {t}')
        out.append(f'clusterkit_node_status{{host="n2",status="{"fail" if i < 30 else "warn"}"}} 1 {t}')
        out.append(f'clusterkit_node_status{{host="login1",status="fail"}} 1 {t}')
    return "\n".join(out + ["# EOF"]) + "\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        pytest.skip("prometheus/promtool not installed (Debian package prometheus)")
    tmp = tmp_path_factory.mktemp("prom")
    (tmp / "data.om").write_text(_openmetrics(int(time.time())))
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(tmp / "data.om"), str(tmp / "tsdb")],
                   check=True, capture_output=True, timeout=60)
    (tmp / "prometheus.yml").write_text("global: {}\n")
    port = _free_port()
    log = open(tmp / "prometheus.log", "w")
    proc = subprocess.Popen(["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.25)
        else:
            pytest.fail("prometheus did not become ready: " + (tmp / "prometheus.log").read_text()[-2000:])
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_default_queries_against_real_prometheus(prometheus):
    m = measure.from_prometheus(prometheus, {**DEFAULT_PROMETHEUS, "period_days": "1"})
    got = {x.key: x for x in m.values}
    assert got["power.gpu_power_w"].value == pytest.approx(4500)             # (5000 + 4000) / 2
    assert got["power.gpu_power_w"].nodes == 2
    a = got["utilization.availability"]
    # n1 up 120 of 120 minutes, n2 90 of 120: 210/240. Read at 60 s steps, Prometheus also carries each series'
    # last sample 5 minutes on (its lookback), so the ratio is (125 + 95)/250 = 0.88 give or take a step
    assert a.value == pytest.approx(210 / 240, abs=0.01)
    assert a.nodes == 2 and "2 GPU nodes" in a.source                  # login1 (no GPU power) left out
    assert m.warnings == []


def test_default_30_day_window(prometheus):
    m = measure.from_prometheus(prometheus, DEFAULT_PROMETHEUS)
    a = {x.key: x for x in m.values}["utilization.availability"]
    assert a.value == pytest.approx(210 / 240, abs=0.03) and a.nodes == 2   # 260 s steps over 30 days


def test_cli_report_with_real_prometheus(prometheus, tmp_path):
    p = subprocess.run([sys.executable, "-m", "clusterkit", "cost", "report", "--prometheus", prometheus, "--format", "json"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    inputs = {i["key"]: i for i in j["inputs"]}
    assert inputs["power.gpu_power_w"]["basis"] == "measured" and inputs["power.gpu_power_w"]["value"] == 4500
    assert inputs["utilization.availability"]["value"] == pytest.approx(0.875, abs=0.03)
    # the example's 8 nodes at (4500 + 1500 W assumed overhead) x PUE 1.3 x 8760 h x CNY 0.8
    assert j["result"]["power"] == pytest.approx(8 * 6.0 * 1.3 * 8760 * 0.8)


def test_unknown_metric_stays_assumed(prometheus):
    m = measure.from_prometheus(prometheus, {**DEFAULT_PROMETHEUS, "power_query": "avg(no_such_metric)"})
    assert [x.key for x in m.values] == ["utilization.availability"]
    assert "stays assumed" in m.warnings[0]


def test_bad_promql_is_a_clear_error(prometheus):
    from clusterkit.errors import ConfigError

    with pytest.raises(ConfigError, match="HTTP 400"):
        measure.from_prometheus(prometheus, {**DEFAULT_PROMETHEUS, "power_query": "avg("})
