"""Prometheus exporter: the latest result per host and check, read from history at scrape time.

Like node_exporter, the work is split into collectors, each of which reports
its own success and duration, so a broken query shows up as
`clusterkit_scrape_collector_success{collector="..."} 0` rather than as a
silently missing series. Names follow the Prometheus conventions: a
`clusterkit_` prefix, units in the name (`_seconds`, `_gbps` as the check
named them), `_total`/`_timestamp_seconds` suffixes. docs/metrics.md lists them.
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from clusterkit.history import History, parse_ts

STATUSES = ("pass", "warn", "fail", "error", "skip")
_PREFIX = "clusterkit_"
# Families with fixed names; a check metric that sanitizes to one of these is renamed.
FIXED_FAMILIES = (
    "clusterkit_check_status", "clusterkit_check_duration_seconds", "clusterkit_check_timestamp_seconds",
    "clusterkit_check_findings", "clusterkit_node_status", "clusterkit_run_timestamp_seconds",
    "clusterkit_run_status", "clusterkit_scrape_collector_success", "clusterkit_scrape_collector_duration_seconds",
)
_BAD = re.compile(r"[^a-zA-Z0-9_]")


def metric_family_name(metric: str) -> str:
    """`busbw_large_gbps` -> `clusterkit_busbw_large_gbps` (valid and not colliding with a fixed family)."""
    name = _PREFIX + _BAD.sub("_", metric).strip("_").lower()
    name = re.sub(r"__+", "_", name)
    if name in FIXED_FAMILIES or name == _PREFIX.rstrip("_"):
        name += "_value"
    return name


def _host(h: str | None) -> str:
    return h if h else "_cluster"


class HistoryCollector(Collector):
    """Reads the history database on every scrape (nothing cached between scrapes)."""

    def __init__(self, db_path: Path | str, *, clock: Callable[[], float] = time.time):
        self.db_path = Path(db_path)
        self.clock = clock

    def describe(self) -> list[Metric]:
        return []  # dynamic families: don't let the registry call collect() at registration

    def collect(self) -> Iterator[Metric]:
        success = GaugeMetricFamily("clusterkit_scrape_collector_success",
                                    "1 if the collector read the history without error.", labels=["collector"])
        duration = GaugeMetricFamily("clusterkit_scrape_collector_duration_seconds",
                                     "Time the collector took on this scrape.", labels=["collector"])
        hist: History | None = None
        latest: list[sqlite3.Row] | None = None
        try:
            hist = History(self.db_path, readonly=True)
        except Exception:  # noqa: BLE001 - reported as success=0, never a failed scrape
            hist = None
        collectors: list[tuple[str, Callable[[History], list[Metric]]]] = [
            ("checks", lambda h: self._checks(h, latest_rows())),
            ("metrics", lambda h: self._metrics(h, latest_rows())),
            ("findings", lambda h: self._findings(h, latest_rows())),
            ("runs", self._runs),
        ]

        def latest_rows() -> list[sqlite3.Row]:
            nonlocal latest
            if latest is None:
                assert hist is not None
                latest = hist.latest_checks()
            return latest

        try:
            for name, func in collectors:
                t0 = time.perf_counter()
                ok = 0.0
                families: list[Metric] = []
                if hist is not None:
                    try:
                        families = func(hist)
                        ok = 1.0
                    except Exception:  # noqa: BLE001
                        families = []
                yield from families
                success.add_metric([name], ok)
                duration.add_metric([name], time.perf_counter() - t0)
        finally:
            if hist is not None:
                hist.close()
        yield success
        yield duration

    # -- collectors ----------------------------------------------------------------
    def _checks(self, hist: History, rows: list[sqlite3.Row]) -> list[Metric]:
        status = GaugeMetricFamily("clusterkit_check_status",
                                   "1 for the status of the latest result of this check on this host, else 0.",
                                   labels=["host", "check", "status"])
        dur = GaugeMetricFamily("clusterkit_check_duration_seconds",
                                "How long the latest run of the check took.", labels=["host", "check"])
        ts = GaugeMetricFamily("clusterkit_check_timestamp_seconds",
                               "When the latest result of the check finished (Unix time).", labels=["host", "check"])
        for r in rows:
            h, c = _host(r["host"]), r["check_id"]
            for s in STATUSES:
                status.add_metric([h, c, s], 1.0 if r["status"] == s else 0.0)
            dur.add_metric([h, c], float(r["duration_s"] or 0.0))
            ts.add_metric([h, c], parse_ts(r["finished_at"]).timestamp())
        node = GaugeMetricFamily("clusterkit_node_status",
                                 "1 for the worst status over the latest result of every check of the host.",
                                 labels=["host", "status"])
        rank = {s: i for i, s in enumerate(("skip", "pass", "warn", "error", "fail"))}
        worst: dict[str, str] = {}
        for r in rows:
            if r["host"] is None:
                continue
            cur = worst.get(r["host"])
            if cur is None or rank.get(r["status"], 0) > rank.get(cur, 0):
                worst[r["host"]] = r["status"]
        for h, s in sorted(worst.items()):
            for st in STATUSES:
                node.add_metric([h, st], 1.0 if s == st else 0.0)
        return [status, dur, ts, node]

    def _metrics(self, hist: History, rows: list[sqlite3.Row]) -> list[Metric]:
        ids = [r["id"] for r in rows]
        by_id = {r["id"]: r for r in rows}
        families: dict[str, GaugeMetricFamily] = {}
        for chunk in _chunks(ids, 900):
            q = ("SELECT check_result_id, name, value FROM metrics WHERE check_result_id IN (%s)"
                 % ",".join("?" * len(chunk)))
            for cid, name, value in hist.conn.execute(q, chunk):
                fam_name = metric_family_name(name)
                fam = families.get(fam_name)
                if fam is None:
                    fam = families[fam_name] = GaugeMetricFamily(
                        fam_name, f"Check metric '{name}' from the latest result of each check.",
                        labels=["host", "check"])
                r = by_id[cid]
                fam.add_metric([_host(r["host"]), r["check_id"]], float(value))
        return [families[k] for k in sorted(families)]

    def _findings(self, hist: History, rows: list[sqlite3.Row]) -> list[Metric]:
        fam = GaugeMetricFamily("clusterkit_check_findings",
                                "Findings in the latest result of the check, by code and severity.",
                                labels=["host", "check", "code", "severity"])
        by_id = {r["id"]: r for r in rows}
        ids = list(by_id)
        for chunk in _chunks(ids, 900):
            q = ("SELECT check_result_id, code, severity, count(*) FROM findings WHERE check_result_id IN (%s)"
                 " GROUP BY check_result_id, code, severity" % ",".join("?" * len(chunk)))
            for cid, code, sev, n in hist.conn.execute(q, chunk):
                r = by_id[cid]
                fam.add_metric([_host(r["host"]), r["check_id"], code, sev or ""], float(n))
        return [fam]

    def _runs(self, hist: History) -> list[Metric]:
        ts = GaugeMetricFamily("clusterkit_run_timestamp_seconds",
                               "Start and finish time (Unix) of the latest run of each kind (verify, burnin).",
                               labels=["kind", "event"])
        st = GaugeMetricFamily("clusterkit_run_status",
                               "1 for the status of the latest finished run of each kind.",
                               labels=["kind", "status"])
        for kind, in hist.conn.execute("SELECT DISTINCT kind FROM runs").fetchall():
            last = hist.conn.execute("SELECT * FROM runs WHERE kind=? ORDER BY id DESC LIMIT 1", (kind,)).fetchone()
            ts.add_metric([kind, "started"], parse_ts(last["started_at"]).timestamp())
            done = hist.conn.execute("SELECT * FROM runs WHERE kind=? AND finished_at IS NOT NULL"
                                     " ORDER BY finished_at DESC, id DESC LIMIT 1", (kind,)).fetchone()
            if done is not None:
                ts.add_metric([kind, "finished"], parse_ts(done["finished_at"]).timestamp())
                for s in STATUSES + ("interrupted",):
                    st.add_metric([kind, s], 1.0 if done["status"] == s else 0.0)
        return [ts, st]


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def make_registry(db_path: Path | str) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(HistoryCollector(db_path))
    return reg


def write_textfile(db_path: Path | str, directory: Path | str) -> Path:
    """node_exporter textfile collector format, written atomically (DIR/clusterkit.prom)."""
    from prometheus_client import write_to_textfile

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out = d / "clusterkit.prom"
    write_to_textfile(str(out), make_registry(db_path))
    return out


def serve(db_path: Path | str, port: int = 9835, addr: str = "127.0.0.1"):
    """Start the HTTP server in a thread; returns (server, thread). Port 0 picks a free port."""
    from prometheus_client import start_http_server

    return start_http_server(port, addr=addr, registry=make_registry(db_path))
