"""Result history in SQLite: runs, nodes, checks, findings and metrics.

Every check is written in its own transaction as soon as it is known, so a
burn-in killed at any moment keeps everything already measured. The database
runs in WAL mode, so an exporter can read while a burn-in writes.

The schema (version 1) is a contract other modules read (exporter, trends,
cost): add tables or columns with a new migration, never change old ones.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import sqlite3
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

from clusterkit.errors import ConfigError
from clusterkit.results import CheckResult, Finding, RunResult, now_iso

def label_value(v: str | None) -> str:
    """A label value escaped for the Prometheus text format; cluster checks (no host) -> `_cluster`."""
    return (v or "_cluster").replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def label_sql(col: str) -> str:
    """The same escaping as an SQL expression (SQLite string literals have no escapes)."""
    return (f"replace(replace(replace(coalesce(nullif({col}, ''), '_cluster'), '\\', '\\\\'), char(10), '\\n'),"
            f" '\"', '\\\"')")


# Each entry migrates from version i to i+1; applied in order, each in one transaction.
_MIGRATIONS: list[str] = [
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,            -- verify | burnin
        started_at TEXT NOT NULL,      -- ISO-8601 UTC
        finished_at TEXT,
        suite TEXT,
        profile TEXT,
        status TEXT,                   -- running | interrupted | pass | warn | fail | error
        simulated INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE node_results (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        host TEXT NOT NULL,
        outcome TEXT,
        status TEXT
    );
    CREATE TABLE check_results (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        host TEXT,                     -- NULL for cluster checks
        check_id TEXT NOT NULL,
        status TEXT NOT NULL,
        summary TEXT,
        duration_s REAL,
        finished_at TEXT
    );
    CREATE TABLE findings (
        check_result_id INTEGER NOT NULL REFERENCES check_results(id),
        code TEXT NOT NULL,
        severity TEXT,
        component TEXT,
        message TEXT,
        observed TEXT,                 -- JSON
        limit_value TEXT,              -- JSON
        unit TEXT,
        action TEXT
    );
    CREATE TABLE metrics (
        check_result_id INTEGER NOT NULL REFERENCES check_results(id),
        run_id INTEGER NOT NULL,
        host TEXT,
        check_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value REAL NOT NULL,
        ts TEXT NOT NULL
    );
    CREATE INDEX check_results_run ON check_results(run_id);
    CREATE INDEX check_results_latest ON check_results(host, check_id, id);
    CREATE INDEX findings_check ON findings(check_result_id);
    CREATE INDEX metrics_check ON metrics(check_result_id);
    CREATE INDEX metrics_series ON metrics(name, host, ts);
    CREATE UNIQUE INDEX node_results_run_host ON node_results(run_id, host);
    """,
    # v2: burn-in bookkeeping for --resume, compact metrics, the latest results for the
    # exporter, and the Slurm drains clusterkit made.
    """
    ALTER TABLE runs ADD COLUMN options TEXT;      -- JSON: what --resume needs
    ALTER TABLE runs ADD COLUMN progress TEXT;     -- JSON: cycles/steps completed
    ALTER TABLE check_results ADD COLUMN cycle INTEGER;
    -- Metric values, compact: the check's run, host, check id and time are not repeated per
    -- value (a 1,000-node fleet stores ~2M values a month). `metrics` becomes a view with the
    -- v1 columns, and inserting into it still works (trigger), so v1 readers and writers keep working.
    CREATE TABLE metric_names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
    CREATE TABLE metric_values (
        check_result_id INTEGER NOT NULL,
        name_id INTEGER NOT NULL,
        value REAL NOT NULL,
        PRIMARY KEY (check_result_id, name_id)
    ) WITHOUT ROWID;
    CREATE INDEX metric_values_name ON metric_values(name_id, check_result_id);
    INSERT OR IGNORE INTO metric_names(name) SELECT DISTINCT name FROM metrics;
    INSERT OR REPLACE INTO metric_values
        SELECT m.check_result_id, n.id, m.value FROM metrics m JOIN metric_names n ON n.name = m.name;
    DROP TABLE metrics;
    CREATE VIEW metrics AS
        SELECT v.check_result_id, c.run_id, c.host, c.check_id, n.name, v.value, c.finished_at AS ts
        FROM metric_values v JOIN check_results c ON c.id = v.check_result_id JOIN metric_names n ON n.id = v.name_id;
    CREATE TRIGGER metrics_insert INSTEAD OF INSERT ON metrics BEGIN
        INSERT OR IGNORE INTO metric_names(name) VALUES (NEW.name);
        INSERT OR REPLACE INTO metric_values
            VALUES (NEW.check_result_id, (SELECT id FROM metric_names WHERE name = NEW.name), NEW.value);
    END;
    DROP INDEX check_results_latest;       -- latest_checks answers "latest per (host, check)"
    -- The latest result per (host, check) and its metric samples, kept on write with their
    -- Prometheus label text: a scrape reads two small tables in order, not the history.
    CREATE TABLE latest_checks (
        host_key TEXT NOT NULL,         -- host, '' for cluster checks
        check_id TEXT NOT NULL,
        check_result_id INTEGER NOT NULL,
        labels TEXT NOT NULL,           -- host="...",check="..." escaped for the exposition format
        status TEXT NOT NULL,
        duration_s REAL,
        finished_at TEXT,
        PRIMARY KEY (host_key, check_id)
    ) WITHOUT ROWID;
    INSERT INTO latest_checks
        SELECT coalesce(c.host, ''), c.check_id, c.id,
               'host="' || {host} || '",check="' || {check} || '"', c.status, c.duration_s, c.finished_at
        FROM check_results c JOIN (SELECT max(id) AS id FROM check_results GROUP BY host, check_id) m ON m.id = c.id;
    CREATE TABLE latest_metrics (
        name_id INTEGER NOT NULL,
        host_key TEXT NOT NULL,
        check_id TEXT NOT NULL,
        sample TEXT NOT NULL,           -- {{labels}} value, exposition text after the family name
        PRIMARY KEY (name_id, host_key, check_id)
    ) WITHOUT ROWID;
    CREATE INDEX latest_metrics_check ON latest_metrics(host_key, check_id);
    INSERT INTO latest_metrics
        SELECT v.name_id, l.host_key, l.check_id, '{{' || l.labels || '}} ' || CAST(v.value AS TEXT)
        FROM latest_checks l JOIN metric_values v ON v.check_result_id = l.check_result_id;
    CREATE TABLE drains (
        id INTEGER PRIMARY KEY,
        run_id INTEGER,
        node TEXT NOT NULL,
        action TEXT NOT NULL,          -- drain | resume | skip
        reason TEXT,
        ts TEXT NOT NULL
    );
    """.format(host=label_sql("c.host"), check=label_sql("c.check_id")),
]
SCHEMA_VERSION = len(_MIGRATIONS)


def default_db_path() -> Path:
    """$XDG_DATA_HOME/clusterkit/history.db (~/.local/share/clusterkit/history.db)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "clusterkit" / "history.db"


def _json(v: Any) -> str | None:
    if v is None:
        return None
    return json.dumps(v, default=str, sort_keys=True)


def _numeric(v: Any) -> float | None:
    """A metric value worth a time series: a finite real number (bools are not)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def parse_ts(ts: str) -> _dt.datetime:
    d = _dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return d if d.tzinfo else d.replace(tzinfo=_dt.timezone.utc)


# Outcomes of a run that reached the node (its evidence, possibly partial, was analyzed).
REACHED = ("ok", "timeout", "interrupted")
NEVER_SEEN = "never_seen"          # an inventory host no stored run ever included
DEFAULT_STALE_AFTER_S = 36 * 3600  # a nightly run missed: the result is no longer current
# Worst status in SQL: the rank of a status, and the status of a rank.
RANK_SQL = "CASE status WHEN 'fail' THEN 4 WHEN 'error' THEN 3 WHEN 'warn' THEN 2 WHEN 'pass' THEN 1 ELSE 0 END"
BY_RANK = ("skip", "pass", "warn", "error", "fail")


@dataclass(frozen=True)
class NodeState:
    """What the history knows about one host: was it reached last time, and how current is its result."""

    host: str
    outcome: str                     # in the latest run that included it; NEVER_SEEN when none did
    last_run_at: str | None          # when that run started
    last_seen_at: str | None         # when the latest run that reached it started
    last_result_at: str | None       # when its newest stored check result finished
    worst: str | None                # worst status over its latest results (None: no result)

    @property
    def up(self) -> bool:
        return self.outcome in REACHED

    @cached_property
    def epochs(self) -> tuple[float | None, float | None, float | None]:
        """(last run, last seen, last result) as Unix time: parsed once, a scrape asks for each host."""
        return tuple(parse_ts(t).timestamp() if t else None  # type: ignore[return-value]
                     for t in (self.last_run_at, self.last_seen_at, self.last_result_at))

    def stale(self, now: _dt.datetime, max_age_s: float) -> bool:
        """Its results are not current: none, older than `max_age_s`, or from before its latest run
        (that run did not reach it, or stored nothing for it)."""
        run_at, _, newest = self.epochs
        if not self.up or newest is None:
            return True
        if now.timestamp() - newest > max_age_s:
            return True
        return run_at is not None and newest < run_at

    def status(self, now: _dt.datetime, max_age_s: float, stale: bool | None = None) -> str:
        """`stale` instead of a status that is not current; `unknown` when there was never one."""
        if self.worst is None:
            return "unknown"
        return "stale" if (self.stale(now, max_age_s) if stale is None else stale) else self.worst


_LAST_RUN = """
    WITH last AS (SELECT host, max(run_id) AS run_id FROM node_results GROUP BY host)
    SELECT l.host, n.outcome, r.started_at FROM last l
    JOIN node_results n ON n.run_id = l.run_id AND n.host = l.host JOIN runs r ON r.id = l.run_id"""
_LAST_SEEN = ("SELECT n.host, max(r.started_at) FROM node_results n JOIN runs r ON r.id = n.run_id "
              "WHERE n.outcome IN (" + ",".join(f"'{o}'" for o in REACHED) + ") GROUP BY n.host")
_LAST_RESULT = ("SELECT host_key, max(" + RANK_SQL + "), max(finished_at) FROM latest_checks WHERE host_key != '' "
                "GROUP BY host_key")


class History:
    """One history database. Cheap to open; use as a context manager."""

    def __init__(self, path: Path | str, *, readonly: bool = False, timeout_s: float = 10.0):
        self.path = Path(path)
        if readonly:
            if not self.path.is_file():
                raise ConfigError(f"{self.path}: no history database here (run a burn-in or verify --history first)")
            uri = f"file:{self.path}?mode=ro"
            self.conn = sqlite3.connect(uri, uri=True, timeout=timeout_s, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.path), timeout=timeout_s, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self._names: dict[str, int] = {}
        try:
            if not readonly:
                self.conn.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode: a power cut may lose the last commits but never corrupts;
                # a killed process (kill -9) loses nothing committed.
                self.conn.execute("PRAGMA synchronous=NORMAL")
                self._migrate()
            else:
                self._check_version()
        except sqlite3.DatabaseError as e:
            self.conn.close()
            raise ConfigError(f"{self.path}: not a clusterkit history database ({e})") from None

    # -- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "History":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def version(self) -> int:
        try:
            row = self.conn.execute("SELECT max(version) FROM schema_version").fetchone()
        except sqlite3.OperationalError:
            return 0
        return int(row[0] or 0)

    def _check_version(self) -> None:
        v = self.version()
        if v > SCHEMA_VERSION:
            raise ConfigError(f"{self.path}: history schema v{v} is newer than this clusterkit (v{SCHEMA_VERSION})")

    def _migrate(self) -> None:
        with self.conn:
            self.conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        self._check_version()
        for target in range(self.version() + 1, SCHEMA_VERSION + 1):
            # executescript commits first; wrap each step so it applies whole or not at all.
            self.conn.executescript("BEGIN;\n" + _MIGRATIONS[target - 1] +
                                    f"\nINSERT INTO schema_version(version) VALUES ({target});\nCOMMIT;")

    # -- writing -----------------------------------------------------------------
    def start_run(self, kind: str, *, suite: str = "", profile: str = "", simulated: bool = False,
                  started_at: str | None = None, options: dict[str, Any] | None = None) -> int:
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO runs(kind, started_at, suite, profile, status, simulated, options, progress)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (kind, started_at or now_iso(), suite, profile, "running", int(simulated),
                 _json(options or {}), _json({})))
        return int(cur.lastrowid)

    def record_check(self, run_id: int, host: str | None, result: CheckResult, *,
                     finished_at: str | None = None, cycle: int | None = None) -> int:
        """Store one check with its findings and numeric metrics, committed at once."""
        return self.record_checks(run_id, [(host, result)], finished_at=finished_at, cycle=cycle)[0]

    def record_checks(self, run_id: int, items: list[tuple[str | None, CheckResult]], *,
                      finished_at: str | None = None, cycle: int | None = None) -> list[int]:
        """Store checks (host, result) in one transaction: all of them or none."""
        ts = finished_at or now_iso()
        ids: list[int] = []
        findings: list[tuple] = []
        metrics: list[tuple] = []
        try:
            self._insert_checks(run_id, items, ts, cycle, ids, findings, metrics)
        except BaseException:
            self._names.clear()  # a rolled-back transaction may have taken new metric names with it
            raise
        return ids

    def _insert_checks(self, run_id: int, items: list[tuple[str | None, CheckResult]], ts: str, cycle: int | None,
                       ids: list[int], findings: list[tuple], metrics: list[tuple]) -> None:
        latest: list[tuple] = []
        with self.conn:
            for host, result in items:
                cur = self.conn.execute(
                    "INSERT INTO check_results(run_id, host, check_id, status, summary, duration_s, finished_at,"
                    " cycle) VALUES (?,?,?,?,?,?,?,?)",
                    (run_id, host, result.id, result.status, result.summary, float(result.duration_s), ts, cycle))
                cid = int(cur.lastrowid)
                ids.append(cid)
                labels = f'host="{label_value(host)}",check="{label_value(result.id)}"'
                self.conn.execute(
                    "INSERT OR REPLACE INTO latest_checks(host_key, check_id, check_result_id, labels, status,"
                    " duration_s, finished_at) VALUES (?,?,?,?,?,?,?)",
                    (host or "", result.id, cid, labels, result.status, float(result.duration_s), ts))
                self.conn.execute("DELETE FROM latest_metrics WHERE host_key=? AND check_id=?", (host or "", result.id))
                findings += [(cid, f.code, f.severity, f.component, f.message, _json(f.observed), _json(f.limit),
                              f.unit, f.action) for f in result.findings]
                values = [(self._name_id(name), v)
                          for name, v in ((n, _numeric(x)) for n, x in result.metrics.items()) if v is not None]
                metrics += [(cid, nid, v) for nid, v in values]
                latest += [(nid, host or "", result.id, f"{{{labels}}} {v!r}") for nid, v in values]
            self.conn.executemany(
                "INSERT INTO findings(check_result_id, code, severity, component, message, observed,"
                " limit_value, unit, action) VALUES (?,?,?,?,?,?,?,?,?)", findings)
            self.conn.executemany("INSERT INTO metric_values(check_result_id, name_id, value) VALUES (?,?,?)",
                                  metrics)
            self.conn.executemany("INSERT OR REPLACE INTO latest_metrics(name_id, host_key, check_id, sample)"
                                  " VALUES (?,?,?,?)", latest)

    def _name_id(self, name: str) -> int:
        nid = self._names.get(name)
        if nid is None:
            self.conn.execute("INSERT OR IGNORE INTO metric_names(name) VALUES (?)", (name,))
            nid = self._names[name] = int(
                self.conn.execute("SELECT id FROM metric_names WHERE name=?", (name,)).fetchone()[0])
        return nid

    def record_node(self, run_id: int, host: str, outcome: str, status: str) -> None:
        """The node's outcome and worst status so far in this run (updated per cycle)."""
        with self.conn:
            self.conn.execute(
                "INSERT INTO node_results(run_id, host, outcome, status) VALUES (?,?,?,?)"
                " ON CONFLICT(run_id, host) DO UPDATE SET outcome=excluded.outcome, status=excluded.status",
                (run_id, host, outcome, status))

    def set_progress(self, run_id: int, progress: dict[str, Any]) -> None:
        with self.conn:
            self.conn.execute("UPDATE runs SET progress=? WHERE id=?", (_json(progress), run_id))

    def finish_run(self, run_id: int, status: str, finished_at: str | None = None) -> None:
        with self.conn:
            self.conn.execute("UPDATE runs SET status=?, finished_at=? WHERE id=?",
                              (status, finished_at or now_iso(), run_id))

    def record_drain(self, run_id: int | None, node: str, action: str, reason: str) -> None:
        with self.conn:
            self.conn.execute("INSERT INTO drains(run_id, node, action, reason, ts) VALUES (?,?,?,?,?)",
                              (run_id, node, action, reason, now_iso()))

    def record_run(self, run: RunResult, kind: str = "verify") -> int:
        """Store a finished RunResult (what `verify --history DB` calls)."""
        rid = self.start_run(kind, suite=run.suite, profile=run.profile, simulated=run.simulated,
                             started_at=run.started_at)
        ts = run.finished_at or now_iso()
        for n in run.nodes:
            self.record_checks(rid, [(n.host, c) for c in n.checks], finished_at=ts)
            self.record_node(rid, n.host, n.outcome, n.status)
        self.record_checks(rid, [(c.host, c) for c in run.cluster_checks], finished_at=ts)
        self.finish_run(rid, "interrupted" if run.interrupted else run.status, ts)   # a partial report says so
        return rid

    # -- reading -------------------------------------------------------------------
    def run(self, run_id: int) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()

    def runs(self, kind: str | None = None, limit: int = 50) -> list[sqlite3.Row]:
        q = "SELECT * FROM runs" + (" WHERE kind=?" if kind else "") + " ORDER BY id DESC LIMIT ?"
        return self.conn.execute(q, ((kind,) if kind else ()) + (limit,)).fetchall()

    def findings_of(self, check_result_id: int) -> list[Finding]:
        rows = self.conn.execute("SELECT * FROM findings WHERE check_result_id=?", (check_result_id,)).fetchall()
        return [Finding(r["code"], r["severity"], r["component"], r["message"],
                        json.loads(r["observed"]) if r["observed"] else None,
                        json.loads(r["limit_value"]) if r["limit_value"] else None,
                        r["unit"], r["action"]) for r in rows]

    def node_states(self, inventory: Iterable[str] = ()) -> list[NodeState]:
        """Every host a run included, and every `inventory` host (NEVER_SEEN when no run did), by name."""
        cur = self.conn.cursor()
        cur.row_factory = None
        last_run = {h: (o, t) for h, o, t in cur.execute(_LAST_RUN)}
        seen = dict(cur.execute(_LAST_SEEN).fetchall())
        results = {h: (r, t) for h, r, t in cur.execute(_LAST_RESULT)}
        out = []
        for host in sorted(set(last_run) | set(results) | set(inventory)):
            rank, result_at = results.get(host, (None, None))
            if host in last_run:
                (outcome, run_at), last_seen = last_run[host], seen.get(host)
            elif result_at is not None:   # results stored without a node row: reached when they were stored
                outcome, run_at, last_seen = "ok", None, result_at
            else:
                outcome, run_at, last_seen = NEVER_SEEN, None, None
            out.append(NodeState(host, outcome or "ok", run_at, last_seen, result_at,
                                 BY_RANK[rank] if rank is not None else None))
        return out

    def latest_checks(self) -> list[sqlite3.Row]:
        """The latest result per (host, check) over all runs: what the exporter serves."""
        return self.conn.execute(
            "SELECT c.*, r.kind AS run_kind FROM latest_checks l JOIN check_results c ON c.id = l.check_result_id"
            " JOIN runs r ON r.id = c.run_id").fetchall()
