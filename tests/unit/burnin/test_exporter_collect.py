"""Exporter: what a scrape shows for a history (parsed back with prometheus_client's parser)."""

from __future__ import annotations

import sqlite3

from prometheus_client.parser import text_string_to_metric_families

from clusterkit.exporter import scrape as scrape_text, write_textfile
from clusterkit.history import History
from tests.burnin_helpers import FLAP, ROW_REMAP, node, run


def scrape(db) -> dict[str, list]:
    text = scrape_text(db).decode()
    out: dict[str, list] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(samples, **labels):
    hits = [v for lab, v in samples if all(lab.get(k) == w for k, w in labels.items())]
    assert len(hits) == 1, (labels, hits)
    return hits[0]


def test_scrape_serves_latest_status_metrics_findings(tmp_path):
    db = tmp_path / "h.db"
    with History(db) as h:
        h.record_run(run([node("n1", busbw=231.0), node("n2", busbw=180.0, fail=[ROW_REMAP, FLAP])]))
        h.record_run(run([node("n1", busbw=229.0)]))  # newer result for n1 only
    m = scrape(db)
    st = m["clusterkit_check_status"]
    assert value(st, host="n2", check="gpu.health", status="fail") == 1
    assert not [lab for lab, _ in st if lab["host"] == "n2" and lab["check"] == "gpu.health" and lab["status"] != "fail"]
    assert value(st, host="n1", check="gpu.health", status="pass") == 1
    bw = m["clusterkit_nccl_busbw_large_bytes_per_second"]               # GB/s served in bytes/s
    assert value(bw, host="n1", check="nccl.allreduce") == 229e9
    assert value(bw, host="n2", check="nccl.allreduce") == 180e9
    # a metric no series is declared for keeps its meaning in the `metric` label
    assert value(m["clusterkit_check_metric"], host="_cluster", check="nccl.multinode",
                 metric="busbw_multinode_gbps") == 190.0
    f = m["clusterkit_check_findings"]
    assert value(f, host="n2", code="GPU_ROW_REMAP_PENDING", severity="fail") == 1
    assert value(f, host="n2", code="IB_LINK_DOWNED_INCREASED") == 1
    assert not [lab for lab, _ in f if lab["host"] == "n1"]
    assert value(m["clusterkit_node_status"], host="n2", status="fail") == 1
    assert value(m["clusterkit_run_status"], kind="verify", status="pass") == 1  # the latest run
    assert value(m["clusterkit_run_timestamp_seconds"], kind="verify", event="finished") > 1.7e9
    for c in ("checks", "metrics", "findings", "runs", "nodes"):
        assert value(m["clusterkit_scrape_collector_success"], collector=c) == 1
        assert value(m["clusterkit_scrape_collector_duration_seconds"], collector=c) >= 0


def test_missing_or_broken_db_reports_collector_failure_not_an_error(tmp_path):
    m = scrape(tmp_path / "absent.db")
    assert {lab["collector"]: v for lab, v in m["clusterkit_scrape_collector_success"]} == {
        "checks": 0, "metrics": 0, "findings": 0, "runs": 0, "nodes": 0}
    db = tmp_path / "h.db"
    with History(db) as h:
        h.record_run(run([node("n1")]))
    c = sqlite3.connect(db)
    c.execute("DROP TABLE findings")
    c.commit()
    c.close()
    m = scrape(db)
    ok = {lab["collector"]: v for lab, v in m["clusterkit_scrape_collector_success"]}
    assert ok == {"checks": 1, "metrics": 1, "findings": 0, "runs": 1, "nodes": 1}
    assert "clusterkit_check_status" in m


def test_check_metrics_are_served_in_base_units_with_their_meaning_in_the_name_or_a_label(tmp_path):
    from clusterkit.results import CheckResult

    db = tmp_path / "h.db"
    metrics = {"clock_skew_ms": 250.0, "disk_free_percent_min": 12.5, "memory_available_gib": 2.0,
               "rx_power_dbm_min": -3.0, "symbol_error_delta_max": 9, "busbw_large_gbps_regression_percent": 7.5,
               "probes_run": 30, "probes_skipped": 2, "ib_port_rate_min_gbps": 400.0}
    with History(db) as h:
        h.record_check(h.start_run("verify"), "n1", CheckResult("x.y", "pass", "", metrics=metrics))
    m = scrape(db)
    assert value(m["clusterkit_host_clock_skew_seconds"], host="n1") == 0.25
    assert value(m["clusterkit_host_disk_free_min_ratio"], host="n1") == 0.125
    assert value(m["clusterkit_host_memory_available_bytes"], host="n1") == 2 * 2 ** 30
    assert abs(value(m["clusterkit_fabric_optic_rx_power_min_watts"], host="n1") - 0.000501187) < 1e-9   # -3 dBm
    assert value(m["clusterkit_fabric_error_increase_max"], counter="symbol_error") == 9
    assert value(m["clusterkit_trend_regression_ratio"], metric="busbw_large_gbps") == 0.075
    assert value(m["clusterkit_host_probes"], result="run") == 30
    assert value(m["clusterkit_host_probes"], result="skipped") == 2
    assert value(m["clusterkit_fabric_port_rate_min_bytes_per_second"], host="n1") == 50e9
    assert "clusterkit_check_metric" not in m


def test_textfile_is_node_exporter_format(tmp_path):
    db = tmp_path / "h.db"
    with History(db) as h:
        h.record_run(run([node("n1", fail=[ROW_REMAP])]))
    out = write_textfile(db, tmp_path / "tf")
    text = out.read_text()
    assert out.name == "clusterkit.prom"
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["clusterkit_check_findings"].type == "gauge"
    assert "# HELP clusterkit_check_status" in text
    assert not list((tmp_path / "tf").glob("*.tmp*"))  # atomic rename left nothing behind


def test_odd_names_and_label_values_stay_valid_exposition(tmp_path):
    from clusterkit.results import CheckResult

    db = tmp_path / "h.db"
    with History(db) as h:
        rid = h.start_run("verify")
        h.record_check(rid, 'we"ird\\host\nx', CheckResult("c.x", "pass", "", metrics={"a.b": 1.0, "a_b": 2.0,
                                                                                      "zero": 0, "big": 1e300}))
    m = scrape(db)  # the parser raises on invalid text
    generic = m["clusterkit_check_metric"]
    assert value(generic, check="c.x", metric="a.b") == 1.0 and value(generic, check="c.x", metric="a_b") == 2.0
    assert value(generic, check="c.x", metric="big") == 1e300
    assert {lab["host"] for lab, _ in generic} == {'we"ird\\host\nx'}


def test_cached_scrape_follows_every_commit(tmp_path):
    from clusterkit.exporter import Scraper

    db = tmp_path / "h.db"
    with History(db) as h:
        h.record_run(run([node("n1", busbw=231.0)]))
    s = Scraper(db, fresh_wait_s=60)   # always waits for the re-read: every scrape shows every commit

    def parsed():
        out = {}
        for fam in text_string_to_metric_families(s().decode()):
            for smp in fam.samples:
                out.setdefault(smp.name, []).append((smp.labels, smp.value))
        return out

    first = parsed()
    again = parsed()
    assert value(again["clusterkit_nccl_busbw_large_bytes_per_second"], host="n1") == 231e9
    assert value(first["clusterkit_node_timestamp_seconds"], host="n1") > 1.7e9
    assert value(again["clusterkit_scrape_collector_success"], collector="metrics") == 1
    with History(db) as h:
        h.record_run(run([node("n1", busbw=199.0, fail=[ROW_REMAP])]))
    m = parsed()
    assert value(m["clusterkit_nccl_busbw_large_bytes_per_second"], host="n1") == 199e9
    assert value(m["clusterkit_check_findings"], host="n1", code="GPU_ROW_REMAP_PENDING") == 1
    db.unlink()
    for p in tmp_path.glob("h.db-*"):
        p.unlink()
    gone = parsed()
    assert {lab["collector"]: v for lab, v in gone["clusterkit_scrape_collector_success"]}["checks"] == 0


def test_scrape_during_writes_serves_the_previous_reading_instead_of_waiting(tmp_path, monkeypatch):
    """A re-read slower than fresh_wait_s does not hold the scrape: the previous complete reading
    is served at once, and a later scrape shows the new data."""
    import threading
    import time

    from clusterkit import exporter
    from clusterkit.exporter import Scraper

    db = tmp_path / "h.db"
    with History(db) as h:
        h.record_run(run([node("n1", busbw=231.0)]))
    s = Scraper(db, fresh_wait_s=0.05)

    def busbw() -> float:
        fams = {f.name: f for f in text_string_to_metric_families(s().decode())}
        return value([(x.labels, x.value) for x in fams["clusterkit_nccl_busbw_large_bytes_per_second"].samples],
                     host="n1") / 1e9     # GB/s, as the check gave it

    assert busbw() == 231.0
    release = threading.Event()
    real_render = exporter.render_metrics

    def slow_render(hist):               # a re-read that takes as long as the test wants
        release.wait(30)
        return real_render(hist)

    monkeypatch.setattr(exporter, "_RENDERERS", tuple((n, slow_render if n == "metrics" else f)
                                                      for n, f in exporter._RENDERERS))
    with History(db) as h:
        h.record_run(run([node("n1", busbw=199.0)]))
    t0 = time.monotonic()
    assert busbw() == 231.0              # the previous reading, served without waiting for the re-read
    assert time.monotonic() - t0 < 5
    release.set()
    deadline = time.monotonic() + 30
    while busbw() != 199.0:
        assert time.monotonic() < deadline, "the finished re-read must be served"
        time.sleep(0.05)
