"""Prometheus exporter: the latest result per host and check, read from history at scrape time.

Like node_exporter, the work is split into collectors (checks, metrics,
findings, runs), each reporting its own success and duration, so a broken
query shows as `clusterkit_scrape_collector_success{collector="..."} 0` rather
than as silently missing series. Names follow the Prometheus conventions
(`promtool check metrics` is clean, tested): a `clusterkit_` prefix, base units
(seconds, bytes, watts, celsius, ratio) as the last word, `_total` only on
counters (there are none: every family is a gauge). Check metrics are served
under the series clusterkit/prom_names.py declares for them, converted to the
base unit; docs/metrics.md lists them, and the series renamed from earlier names.

The per-check families are large (a 1,000-node fleet with 30 checks is
~120k samples), so they are written as exposition text from the label text
and samples the history keeps pre-rendered for the latest results;
prometheus_client's per-sample formatting costs ~10 us a sample, which alone
would exceed the scrape budget. The small families (runs, collector health)
go through prometheus_client's registry and formatter. The rendered text is
kept until the database files change (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import datetime as _dt
import itertools
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from clusterkit.codes import aliases
from clusterkit.history import DEFAULT_STALE_AFTER_S, History, NodeState, label_sql, label_value, parse_ts
from clusterkit.scrape_server import ScrapeServer
from clusterkit.prom_names import series

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Families with fixed names (prom_names.py's check-metric families must not take one).
FIXED_FAMILIES = (
    "clusterkit_check_status", "clusterkit_check_duration_seconds", "clusterkit_node_timestamp_seconds",
    "clusterkit_check_findings", "clusterkit_node_status", "clusterkit_run_timestamp_seconds",
    "clusterkit_run_status", "clusterkit_scrape_collector_success", "clusterkit_scrape_collector_duration_seconds",
    "clusterkit_node_up", "clusterkit_node_outcome", "clusterkit_node_stale", "clusterkit_node_stale_after_seconds",
    "clusterkit_node_last_seen_timestamp_seconds",
)


def _head(out: list[str], name: str, help_text: str) -> None:
    h = help_text.replace("\\", r"\\").replace("\n", r"\n")
    out.append(f"# HELP {name} {h}\n# TYPE {name} gauge\n")


# History keeps the latest result per (host, check) with its label text and metric samples
# already rendered (latest_checks, latest_metrics), so a scrape reads two small tables in key
# order: formatting ~100k samples in Python, or joining them out of the history, would not
# fit the scrape budget.
_CHECK_ROWS = "SELECT labels, status, duration_s FROM latest_checks"


def _finding_lines_sql() -> str:
    """The findings family; a code stored under an earlier name is served under its current one."""
    code = "f.code"
    if aliases():
        code = ("CASE f.code " + " ".join(f"WHEN '{old}' THEN '{new}'" for old, new in sorted(aliases().items()))
                + " ELSE f.code END")
    return ("SELECT 'clusterkit_check_findings{' || l.labels || ',code=\"' || " + label_sql(code) +
            " || '\",severity=\"' || " + label_sql("f.severity") + " || '\"} ' || count(*) "
            "FROM latest_checks l JOIN findings f ON f.check_result_id = l.check_result_id "
            f"GROUP BY l.check_result_id, {code}, f.severity")


def _plain(hist: History, sql: str) -> list[tuple]:
    """Rows as plain tuples: sqlite3.Row costs more than the query itself at 100k rows."""
    cur = hist.conn.cursor()
    cur.row_factory = None
    return cur.execute(sql).fetchall()


def render_checks(hist: History) -> str:
    """Status and duration of the latest result per (host, check)."""
    rows = _plain(hist, _CHECK_ROWS)
    out: list[str] = []
    # Only the current status is exposed: a 5-state set would multiply the largest
    # family by five; a changed status's old series goes stale at the next scrape.
    _head(out, "clusterkit_check_status", "1, labelled with the status of the latest result of this check on this host.")
    out += [f'clusterkit_check_status{{{lab},status="{label_value(st)}"}} 1\n' for lab, st, _ in rows]
    _head(out, "clusterkit_check_duration_seconds", "How long the latest run of the check took.")
    out += [f"clusterkit_check_duration_seconds{{{lab}}} {float(d or 0.0)!r}\n" for lab, _, d in rows]
    return "".join(out)


def _ts(epoch: float | None) -> str:
    return repr(float(int(epoch))) if epoch else "0"


def render_nodes(states: list[NodeState], *, stale_after_s: float = DEFAULT_STALE_AFTER_S,
                 now: _dt.datetime | None = None) -> str:
    """One set of series per known host (never reached and never seen included): up, outcome, how
    current its result is, and its status, `stale` when the result is not current. Evaluated on
    every scrape: staleness changes with time, not with the database."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    rows = []       # (labels, state, stale?) per host, each judged once
    for n in states:
        stale = n.stale(now, stale_after_s)
        rows.append((f'host="{label_value(n.host)}"', n, stale))
    # (family, help, extra labels, value) per host
    families: tuple[tuple[str, str, Callable[[NodeState, bool], str], Callable[[NodeState, bool], object]], ...] = (
        ("clusterkit_node_up", "1 if the latest run that included the host reached it (SSH login and evidence, "
                               "possibly cut short), else 0; 0 for inventory hosts never run.",
         lambda n, st: "", lambda n, st: 1 if n.up else 0),
        ("clusterkit_node_outcome", "1, labelled with the host's outcome in the latest run that included it (ok, "
                                    "timeout, interrupted, unreachable, error; never_seen).",
         lambda n, st: f',outcome="{label_value(n.outcome)}"', lambda n, st: 1),
        ("clusterkit_node_status", "1, labelled with the worst status over the latest results of the host; stale "
                                   "when they are not current, unknown when there are none.",
         lambda n, st: f',status="{n.status(now, stale_after_s, st)}"', lambda n, st: 1),
        ("clusterkit_node_stale", "1 if the host's results are not current: none, older than the exporter's "
                                  "--stale-after, or older than its latest run (which did not reach it).",
         lambda n, st: "", lambda n, st: 1 if st else 0),
        # one timestamp per node, not per check: 30x fewer series, and what "is this node's result stale" needs
        ("clusterkit_node_timestamp_seconds", "When the newest stored result of the host finished (Unix time); 0 "
                                              "when there is none.", lambda n, st: "", lambda n, st: _ts(n.epochs[2])),
        ("clusterkit_node_last_seen_timestamp_seconds", "When the latest run that reached the host started (Unix "
                                                        "time); 0 when none ever did.",
         lambda n, st: "", lambda n, st: _ts(n.epochs[1])),
    )
    out: list[str] = []
    for name, help_text, labels, value in families:
        _head(out, name, help_text)
        out += [f"{name}{{{h}{labels(n, st)}}} {value(n, st)}\n" for h, n, st in rows]
    _head(out, "clusterkit_node_stale_after_seconds", "The age after which a result is served as stale.")
    out.append(f"clusterkit_node_stale_after_seconds {float(stale_after_s)!r}\n")
    return "".join(out)


def _converted(family: str, extra: str, convert: Callable[[float], float], samples: Iterable[str]) -> list[str]:
    """Samples `{labels} value` of one metric as `family{labels,extra} converted-value` lines."""
    out = []
    for sample in samples:
        labels, _, value = sample.rpartition(" ")
        if extra:
            labels = labels[:-1] + extra + "}"
        out.append(f"{family}{labels} {convert(float(value))!r}\n")
    return out


def render_metrics(hist: History) -> str:
    """Every numeric metric of the latest result per (host, check), under its declared series
    (prom_names.py): converted to the base unit, with the series' labels; a family's samples together."""
    names = dict(_plain(hist, "SELECT id, name FROM metric_names"))
    lines: dict[str, list[str]] = {}
    helps: dict[str, str] = {}
    rows = _plain(hist, "SELECT name_id, sample FROM latest_metrics ORDER BY name_id, host_key, check_id")
    # the primary key's order: grouped by metric, no sort
    for nid, group in itertools.groupby(rows, key=lambda r: r[0]):
        s = series(names.get(nid, str(nid)))
        helps.setdefault(s.family, s.help)
        out = lines.setdefault(s.family, [])
        extra = "".join(f',{k}="{label_value(v)}"' for k, v in s.labels)
        if s.scale == 1.0 and not extra:      # the samples as stored: `{host="...",check="..."} 229.0`
            fam = s.family
            out += [fam + smp + "\n" for _, smp in group]
        else:
            out += _converted(s.family, extra, s.convert, (smp for _, smp in group))
    text: list[str] = []
    for fam, samples in lines.items():
        _head(text, fam, helps[fam])
        text += samples
    return "".join(text)


def render_findings(hist: History) -> str:
    out: list[str] = []
    _head(out, "clusterkit_check_findings", "Findings in the latest result of the check, by code and severity.")
    out += [r[0] + "\n" for r in _plain(hist, _finding_lines_sql())]
    return "".join(out)


class _SmallFamilies(Collector):
    """Runs and the collectors' own health, through prometheus_client."""

    def __init__(self, hist: History | None, health: dict[str, tuple[float, float]]):
        self.hist = hist
        self.health = health

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        t0 = time.perf_counter()
        runs: list[Metric] = []
        ok = 0.0
        if self.hist is not None:
            try:
                runs = _runs(self.hist)
                ok = 1.0
            except Exception:  # noqa: BLE001 - reported as success=0, never a failed scrape
                runs = []
        self.health["runs"] = (ok, time.perf_counter() - t0)
        yield from runs
        success = GaugeMetricFamily("clusterkit_scrape_collector_success",
                                    "1 if the collector read the history without error.", labels=["collector"])
        duration = GaugeMetricFamily("clusterkit_scrape_collector_duration_seconds",
                                     "Time the collector took on this scrape.", labels=["collector"])
        for name, (good, secs) in self.health.items():
            success.add_metric([name], good)
            duration.add_metric([name], secs)
        yield success
        yield duration


def _runs(hist: History) -> list[Metric]:
    ts = GaugeMetricFamily("clusterkit_run_timestamp_seconds",
                           "Start and finish time (Unix) of the latest run of each kind (verify, burnin).",
                           labels=["kind", "event"])
    st = GaugeMetricFamily("clusterkit_run_status", "1, labelled with the status of the latest finished run of "
                                                    "each kind.", labels=["kind", "status"])
    for kind, in hist.conn.execute("SELECT DISTINCT kind FROM runs").fetchall():
        last = hist.conn.execute("SELECT * FROM runs WHERE kind=? ORDER BY id DESC LIMIT 1", (kind,)).fetchone()
        ts.add_metric([kind, "started"], parse_ts(last["started_at"]).timestamp())
        done = hist.conn.execute("SELECT * FROM runs WHERE kind=? AND finished_at IS NOT NULL"
                                 " ORDER BY finished_at DESC, id DESC LIMIT 1", (kind,)).fetchone()
        if done is not None:
            ts.add_metric([kind, "finished"], parse_ts(done["finished_at"]).timestamp())
            st.add_metric([kind, done["status"]], 1.0)
    return [ts, st]


_RENDERERS: tuple[tuple[str, Callable[[History], str]], ...] = (
    ("checks", render_checks), ("metrics", render_metrics), ("findings", render_findings))


def _change_token(db_path: Path) -> tuple | None:
    """Changes on every commit: SQLite appends to the -wal file (or rewrites the DB on checkpoint)."""
    try:
        toks = []
        for p in (db_path, db_path.with_name(db_path.name + "-wal")):
            try:
                st = p.stat()
                toks.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except FileNotFoundError:
                toks.append(None)
        return tuple(toks) if toks[0] else None
    except OSError:
        return None


class Scraper:
    """Scrapes with the large families cached until the database changes.

    Every scrape checks the database files; the per-check families are re-read
    only after a commit, so between nightly runs a scrape costs microseconds.
    While a burn-in writes, the re-read (about 0.2 s for 1,000 nodes) runs in a
    background thread: a scrape waits for it at most `fresh_wait_s`, then serves
    the previous complete reading, and the next scrape gets the new one. So a
    scrape stays inside Prometheus's budget, at the price of showing data up to
    one re-read old during writes (benchmarks/RESULTS.md).
    """

    def __init__(self, db_path: Path | str, *, cache: bool = True, fresh_wait_s: float = 0.1,
                 stale_after_s: float = DEFAULT_STALE_AFTER_S, inventory: Iterable[str] = ()):
        self.db_path = Path(db_path)
        self.cache = cache
        self.fresh_wait_s = fresh_wait_s
        self.stale_after_s = stale_after_s
        self.inventory = tuple(inventory)
        self._lock = threading.Lock()
        self._token: tuple | None = None          # the change token of the cached complete reading
        self._big = b""
        self._states: list[NodeState] = []
        self._health: dict[str, tuple[float, float]] = {}
        self._latest: tuple[tuple | None, bytes, list[NodeState], dict[str, tuple[float, float]]] | None = None
        self._reader: threading.Thread | None = None

    def __call__(self) -> bytes:
        t0 = time.perf_counter()
        token = _change_token(self.db_path) if self.cache else None
        if token is None:
            return scrape(self.db_path, stale_after_s=self.stale_after_s, inventory=self.inventory)
        with self._lock:
            stale = token != self._token
            if stale and (self._reader is None or not self._reader.is_alive()):
                self._reader = threading.Thread(target=self._read, args=(token,), name="clusterkit-exporter-read",
                                                daemon=True)
                self._reader.start()
            reader, have = self._reader, self._token is not None
        if stale and reader is not None:
            reader.join(self.fresh_wait_s if have else None)
        with self._lock:
            if self._latest is not None and self._latest[0] == token:
                _, big, states, health = self._latest     # this very state (with any collector's failure)
            else:
                big, states, health = self._big, self._states, self._health   # the previous complete reading
            if not stale:   # the collectors' work this scrape: the change check
                health = {k: (ok, time.perf_counter() - t0) for k, (ok, _) in health.items()}
        # node staleness changes with the clock, not the database: rendered on every scrape
        return big + render_nodes(states, stale_after_s=self.stale_after_s).encode() + self._small(health)

    def _read(self, token: tuple) -> None:
        _, parts, states, health = _scrape_fresh(self.db_path, small=False, inventory=self.inventory)
        big = "".join(parts).encode()
        with self._lock:
            self._latest = (token, big, states, health)
            if all(ok for ok, _ in health.values()):
                self._token, self._big, self._states, self._health = token, big, states, health

    def _small(self, health: dict[str, tuple[float, float]]) -> bytes:
        try:
            hist: History | None = History(self.db_path, readonly=True)
        except Exception:  # noqa: BLE001
            hist = None
        try:
            return _small(hist, health)
        finally:
            if hist is not None:
                hist.close()


def _small(hist: History | None, health: dict[str, tuple[float, float]]) -> bytes:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_SmallFamilies(hist, health))
    return generate_latest(reg)


def scrape(db_path: Path | str, *, stale_after_s: float = DEFAULT_STALE_AFTER_S, inventory: Iterable[str] = ()) -> bytes:
    """One uncached scrape: read the history now and return the exposition text (format 0.0.4).
    `inventory`: host names that get node series even when no stored run included them."""
    return _scrape_fresh(Path(db_path), stale_after_s=stale_after_s, inventory=inventory)[0]


def _scrape_fresh(db_path: Path, small: bool = True, *, stale_after_s: float = DEFAULT_STALE_AFTER_S,
                  inventory: Iterable[str] = ()
                  ) -> tuple[bytes, list[str], list[NodeState], dict[str, tuple[float, float]]]:
    try:
        hist: History | None = History(db_path, readonly=True)
    except Exception:  # noqa: BLE001 - missing/unreadable DB: every collector reports failure
        hist = None
    health: dict[str, tuple[float, float]] = {}
    parts: list[str] = []
    states: list[NodeState] = [NodeState(h, "never_seen", None, None, None, None) for h in sorted(set(inventory))]
    try:
        for name, render in _RENDERERS:
            t0 = time.perf_counter()
            ok = 0.0
            if hist is not None:
                try:
                    parts.append(render(hist))
                    ok = 1.0
                except Exception:  # noqa: BLE001
                    pass
            health[name] = (ok, time.perf_counter() - t0)
        t0 = time.perf_counter()
        ok = 0.0
        if hist is not None:
            try:
                states = hist.node_states(inventory)
                ok = 1.0
            except Exception:  # noqa: BLE001
                pass
        health["nodes"] = (ok, time.perf_counter() - t0)
        tail = (render_nodes(states, stale_after_s=stale_after_s).encode() + _small(hist, dict(health))
                if small else b"")
    finally:
        if hist is not None:
            hist.close()
    return "".join(parts).encode() + tail, parts, states, health


def write_textfile(db_path: Path | str, directory: Path | str, **options: object) -> Path:
    """node_exporter textfile collector format, written atomically (DIR/clusterkit.prom).
    `options`: those of `scrape` (stale_after_s, inventory)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out = d / "clusterkit.prom"
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".clusterkit.prom.")  # not *.prom: node_exporter skips it
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(scrape(db_path, **options))  # type: ignore[arg-type]
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def serve(db_path: Path | str, port: int = 9835, addr: str = "127.0.0.1",
          **options: object) -> tuple[ScrapeServer, threading.Thread]:
    """Serve /metrics in a thread; returns (server, thread). Port 0 picks a free port.
    `options`: those of `Scraper` (stale_after_s, inventory). The HTTP side is bounded
    against slow and hostile clients (clusterkit/scrape_server.py)."""
    server = ScrapeServer(Scraper(db_path, **options), CONTENT_TYPE, addr, port)  # type: ignore[arg-type]
    return server, server.thread
