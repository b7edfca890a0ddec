"""Measured inputs: GPU power, GPU-node availability and generation throughput from the cluster's own data.

Two sources:
- the burn-in history (SQLite, clusterkit/history.py): per GPU node, the state at each cycle's results
  (reachable and passing, failed, unreachable) and the Slurm drains clusterkit made, weighted by time;
  the mean of `gpu_power_draw_total_w`; GEMM and NCCL figures per GPU model;
- Prometheus' HTTP API: the [prometheus] queries of the config over `period_days` (range queries, so a
  host's missing samples count as unreachable time).
Each measured value says over which period and how many nodes. What was not measured stays assumed, and
the report says which is which.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
import statistics
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path

from clusterkit.cost.config import MEASURED, CostConfig, Input
from clusterkit.errors import ConfigError

POWER_METRIC = "gpu_power_draw_total_w"
NCCL_METRIC = "busbw_large_gbps"
DOWN_STATES = ("unreachable", "failed")


@dataclass(frozen=True)
class Measured:
    key: str              # config key it replaces
    value: float
    source: str           # where, over which period, how many nodes
    nodes: int | None = None
    period: tuple[str, str] | None = None


@dataclass
class Measurements:
    values: list[Measured] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # GPU model -> figure (gemm_tflops, nccl_busbw_gbps) -> (median, hosts)
    figures: dict[str, dict[str, tuple[float, int]]] = field(default_factory=dict)


def _hours(seconds: float) -> str:
    """A duration people read: 12.0 h, 25 min, 40 s."""
    if seconds == 0 or seconds >= 3600:
        return f"{seconds / 3600:,.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S").removesuffix(":00")


def _ts(text: str | None) -> float | None:
    if not text:
        return None
    try:
        d = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)).timestamp()


# ---------------------------------------------------------------- availability, time-weighted

@dataclass
class Uptime:
    """Per node: up, unreachable, drained and failed seconds over its observed period."""
    period_s: float = 0.0
    down_s: dict[str, float] = field(default_factory=lambda: {"unreachable": 0.0, "drained": 0.0, "failed": 0.0})

    @property
    def up_s(self) -> float:
        return self.period_s - sum(self.down_s.values())


def uptime(observations: list[tuple[float, str]], drained: list[tuple[float, float]]) -> Uptime:
    """Time-weighted state of one node from point observations (time, up|unreachable|failed) and drained
    intervals. Each observation stands for the time from the midpoint with the previous one to the
    midpoint with the next (the first and last for the half-gaps inside the period); drained time counts
    as drained whatever the observation. The period runs from the first observation to the last."""
    obs = sorted(observations)
    out = Uptime()
    if len(obs) < 2:
        return out
    start, end = obs[0][0], obs[-1][0]
    out.period_s = end - start
    cells = []
    for i, (t, state) in enumerate(obs):
        lo = start if i == 0 else (obs[i - 1][0] + t) / 2
        hi = end if i == len(obs) - 1 else (t + obs[i + 1][0]) / 2
        cells.append((lo, hi, state))
    spans = sorted((max(a, start), min(b, end)) for a, b in drained if b > start and a < end)
    for lo, hi, state in cells:
        covered = 0.0
        for a, b in spans:   # drained time inside this cell
            covered += max(0.0, min(b, hi) - max(a, lo))
        covered = min(covered, hi - lo)
        out.down_s["drained"] += covered
        if state in DOWN_STATES:
            out.down_s[state] += (hi - lo) - covered
    return out


def _drain_intervals(con: sqlite3.Connection, end: float) -> dict[str, list[tuple[float, float]]]:
    """Node -> [(drained at, resumed at)] from the drains clusterkit recorded (a drain still open runs to `end`)."""
    try:
        rows = con.execute("SELECT node, action, ts FROM drains ORDER BY ts, id").fetchall()
    except sqlite3.OperationalError:   # a history from before drains were recorded
        return {}
    out: dict[str, list[tuple[float, float]]] = {}
    since: dict[str, float] = {}
    for node, action, ts in rows:
        t = _ts(ts)
        if t is None:
            continue
        if action == "drain" and node not in since:
            since[node] = t
        elif action == "resume" and node in since:
            out.setdefault(node, []).append((since.pop(node), t))
    for node, t in since.items():
        out.setdefault(node, []).append((t, max(t, end)))
    return out


def _gpu_hosts(con: sqlite3.Connection, sim_filter: str) -> set[str]:
    """Hosts with GPUs: a GPU check that was not skipped, or a GPU power sample."""
    rows = con.execute(
        f"SELECT DISTINCT c.host FROM check_results c JOIN runs r ON r.id = c.run_id "
        f"WHERE c.host IS NOT NULL AND c.check_id LIKE 'gpu.%' AND c.status != 'skip' AND {sim_filter}").fetchall()
    hosts = {h for (h,) in rows}
    rows = con.execute(f"SELECT DISTINCT m.host FROM metrics m JOIN runs r ON r.id = m.run_id "
                       f"WHERE m.name = ? AND m.host IS NOT NULL AND {sim_filter}", (POWER_METRIC,)).fetchall()
    return hosts | {h for (h,) in rows}


def _observations(con: sqlite3.Connection, sim_filter: str) -> tuple[dict[str, list[tuple[float, str]]], set[str]]:
    """Host -> [(time, state)]: at every cycle's results in a run, each of the run's hosts was up, failed
    (a check failed) or unreachable (no results while the others had them). Also every host seen."""
    obs: dict[str, list[tuple[float, str]]] = {}
    seen: set[str] = set()
    stamps: dict[str, float | None] = {}     # a cycle's results share one time: parse it once
    runs = con.execute(f"SELECT r.id, r.started_at, r.finished_at FROM runs r WHERE {sim_filter} ORDER BY r.id").fetchall()
    for run_id, started, finished in runs:
        hosts = {h for (h,) in con.execute("SELECT host FROM node_results WHERE run_id = ?", (run_id,))}
        by_time: dict[float, dict[str, str]] = {}
        # one row per host and cycle (a node runs ~30 checks a cycle): did any of them fail?
        for host, failed, ts in con.execute(
                "SELECT host, MAX(status = 'fail'), finished_at FROM check_results WHERE run_id = ? "
                "AND host IS NOT NULL GROUP BY host, finished_at", (run_id,)):
            t = stamps[ts] if ts in stamps else stamps.setdefault(ts, _ts(ts))
            if t is None:
                continue
            hosts.add(host)
            by_time.setdefault(t, {})[host] = "failed" if failed else "up"
        if not by_time:   # nothing answered in this run: every host unreachable at its end
            t = _ts(finished) or _ts(started)
            if t is not None:
                by_time[t] = {}
        for t, states in by_time.items():
            for host in hosts:
                obs.setdefault(host, []).append((t, states.get(host, "unreachable")))
        seen |= hosts
    return obs, seen


def _history_availability(con: sqlite3.Connection, name: str, sim_filter: str, out: Measurements) -> None:
    obs, seen = _observations(con, sim_filter)
    gpu = _gpu_hosts(con, sim_filter)
    left_out = sorted(seen - gpu)
    if left_out:
        out.warnings.append(f"history {name}: availability counts GPU nodes only; left out {len(left_out)} host(s) "
                            f"with no GPU result: {', '.join(left_out[:10])}")
    hosts = sorted(h for h in gpu if h in obs)
    if not hosts:
        out.warnings.append(f"history {name}: no GPU node results; availability stays assumed")
        return
    end = max(t for h in hosts for t, _ in obs[h])
    drains = _drain_intervals(con, end)
    total = Uptime()
    times = [t for h in hosts for t, _ in obs[h]]
    for h in hosts:
        u = uptime(obs[h], drains.get(h, []))
        total.period_s += u.period_s
        for k, v in u.down_s.items():
            total.down_s[k] += v
    start = min(times)
    if total.period_s <= 0:
        # one look only: the share of GPU nodes up at that moment, and the report says so
        up = sum(1 for h in hosts if obs[h][-1][1] == "up")
        out.values.append(Measured("utilization.availability", up / len(hosts),
                                   f"history {name}: a single look at {_day(end)}, not a time-weighted uptime: "
                                   f"{up} of {len(hosts)} GPU nodes up", len(hosts), (_day(end), _day(end))))
        out.warnings.append(f"history {name}: one observation time only; availability is a snapshot, not uptime")
        return
    value = total.up_s / total.period_s
    down = ", ".join(f"{k} {_hours(v)}" for k, v in total.down_s.items())
    out.values.append(Measured(
        "utilization.availability", value,
        f"history {name}: time-weighted uptime of {len(hosts)} GPU nodes from {_day(start)} to {_day(end)} UTC "
        f"({_hours(end - start)}, {_hours(total.period_s)} node-time): {down}",
        len(hosts), (_day(start), _day(end))))


# ---------------------------------------------------------------- history

def from_history(db: Path) -> Measurements:
    if not Path(db).is_file():
        raise ConfigError(f"--from-history {db}: no such file")
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return _read_history(con, str(db))
        finally:
            con.close()
    except sqlite3.Error as e:
        raise ConfigError(f"--from-history {db}: not a readable clusterkit history ({e})") from None


def _gpu_of_profile(profile: str | None) -> str | None:
    p = (profile or "").lower()
    return next((g for g in ("H100", "A100") if g.lower() in p), None)


def _read_history(con: sqlite3.Connection, name: str) -> Measurements:
    out = Measurements()
    # Simulated runs carry invented numbers: use them only when there is nothing else, and say so.
    real = con.execute("SELECT COUNT(*) FROM runs WHERE NOT simulated").fetchone()[0]
    sim_filter = "NOT r.simulated" if real else "1"
    if not real:
        out.warnings.append(f"history {name} holds only simulated runs: 'measured' power and availability "
                            f"are from the simulator, not from hardware")
    rows = con.execute(
        f"SELECT m.host, AVG(m.value), COUNT(*), MIN(m.ts), MAX(m.ts) FROM metrics m JOIN runs r ON r.id = m.run_id "
        f"WHERE m.name = ? AND typeof(m.value) IN ('real', 'integer') AND m.host IS NOT NULL AND {sim_filter} "
        f"GROUP BY m.host", (POWER_METRIC,)).fetchall()
    if rows:
        mean = sum(r[1] for r in rows) / len(rows)
        n = sum(r[2] for r in rows)
        first, last = min(str(r[3]) for r in rows), max(str(r[4]) for r in rows)
        out.values.append(Measured("power.gpu_power_w", mean,
                                   f"history {name}: mean of {POWER_METRIC} over {len(rows)} GPU nodes, {n} samples "
                                   f"from {first[:16]} to {last[:16]} (burn-in load: an upper bound for a production "
                                   f"mix)", len(rows), (first[:16], last[:16])))
    else:
        out.warnings.append(f"history {name}: no {POWER_METRIC} samples; GPU power stays assumed")
    _history_availability(con, name, sim_filter, out)
    _history_figures(con, sim_filter, out)
    return out


def _history_figures(con: sqlite3.Connection, sim_filter: str, out: Measurements) -> None:
    """Median GEMM TFLOPS and large-message NCCL bus bandwidth per GPU model (from the run's profile)."""
    rows = con.execute(
        f"SELECT r.profile, m.name, m.host, m.value FROM metrics m JOIN runs r ON r.id = m.run_id "
        f"WHERE (m.name = ? OR (m.name LIKE '%gemm%' AND m.name LIKE '%tflops%')) "
        f"AND typeof(m.value) IN ('real', 'integer') AND {sim_filter}", (NCCL_METRIC,)).fetchall()
    acc: dict[tuple[str, str], dict[str, list[float]]] = {}
    for profile, metric, host, value in rows:
        gpu = _gpu_of_profile(profile)
        if gpu is None or not math.isfinite(value) or value <= 0:
            continue
        fig = "nccl_busbw_gbps" if metric == NCCL_METRIC else "gemm_tflops"
        acc.setdefault((gpu, fig), {}).setdefault(host or "_cluster", []).append(float(value))
    for (gpu, fig), hosts in acc.items():
        per_host = [statistics.median(v) for v in hosts.values()]
        out.figures.setdefault(gpu, {})[fig] = (statistics.median(per_host), len(per_host))


# ---------------------------------------------------------------- Prometheus

def _get(url: str, path: str, params: dict[str, str], timeout: float) -> dict:
    full = url.rstrip("/") + path + "?" + urllib.parse.urlencode(params)
    q = params.get("query", "")
    try:
        with urllib.request.urlopen(full, timeout=timeout) as resp:
            doc = json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        raise ConfigError(f"--prometheus {url}: HTTP {e.code} for query {q!r}") from None
    except (urllib.error.URLError, OSError) as e:
        raise ConfigError(f"--prometheus {url}: cannot reach Prometheus ({getattr(e, 'reason', e)})") from None
    except ValueError:
        raise ConfigError(f"--prometheus {url}: answer is not JSON (is this a Prometheus server?)") from None
    if not isinstance(doc, dict) or doc.get("status") != "success":
        err = doc.get("error", "unknown error") if isinstance(doc, dict) else "unexpected answer"
        raise ConfigError(f"--prometheus {url}: query {q!r} failed: {err}")
    return doc.get("data") or {}


def _instant(url: str, promql: str, timeout: float) -> list[float]:
    """Every sample value of an instant query (one per series; a scalar gives one)."""
    data = _get(url, "/api/v1/query", {"query": promql}, timeout)
    try:
        if data.get("resultType") == "scalar":
            return [float(data["result"][1])]
        return [float(s["value"][1]) for s in data.get("result") or []]
    except (KeyError, IndexError, TypeError, ValueError):
        raise ConfigError(f"--prometheus {url}: unexpected result shape for {promql!r}") from None


def _range(url: str, promql: str, start: float, end: float, step: float, timeout: float) -> list[list[tuple[float, float]]]:
    data = _get(url, "/api/v1/query_range",
                {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}, timeout)
    try:
        return [[(float(t), float(v)) for t, v in s["values"]] for s in data.get("result") or []]
    except (KeyError, IndexError, TypeError, ValueError):
        raise ConfigError(f"--prometheus {url}: unexpected result shape for {promql!r}") from None


def from_prometheus(url: str, queries: dict[str, str], timeout: float = 10.0, now: float | None = None) -> Measurements:
    out = Measurements()
    days = float(queries.get("period_days", "30"))
    period = f"{days * 86400:.0f}s"
    end = time.time() if now is None else now
    start = end - days * 86400
    power_q = queries["power_query"].replace("{period}", period)
    vals = [v for v in _instant(url, power_q, timeout) if v == v]
    if not vals:
        out.warnings.append(f"Prometheus {url}: no data for {power_q!r}; GPU power stays assumed")
    else:
        out.values.append(Measured("power.gpu_power_w", sum(vals) / len(vals),
                                   f"Prometheus {url}: {power_q}, mean over {len(vals)} series (GPU nodes) over the "
                                   f"{days:g} days to {_day(end)} UTC", len(vals), (_day(start), _day(end))))
    avail_q = queries["availability_query"].replace("{period}", period)
    step = max(60.0, math.ceil(days * 86400 / 10000))       # Prometheus answers at most 11,000 points a series
    series = _range(url, avail_q, start, end, step, timeout)
    up = expected = 0.0
    first = last = None
    for s in series:
        if not s:
            continue
        t0, t1 = s[0][0], s[-1][0]
        for _, v in s:
            if not (v == v and 0 <= v <= 1):
                raise ConfigError(f"--prometheus {url}: availability query returned {v:g}, expected 1 (up) or 0 "
                                  f"(down) per host")
        # samples missing between a host's first and last are time it could not be seen: unreachable
        expected += round((t1 - t0) / step) + 1
        up += sum(v for _, v in s)
        first = t0 if first is None else min(first, t0)
        last = t1 if last is None else max(last, t1)
    if not expected:
        out.warnings.append(f"Prometheus {url}: no data for {avail_q!r}; availability stays assumed")
    else:
        nodes = sum(1 for s in series if s)
        out.values.append(Measured(
            "utilization.availability", up / expected,
            f"Prometheus {url}: time-weighted uptime of {nodes} GPU nodes from {_day(first)} to {_day(last)} UTC "
            f"({(last - first) / 86400:,.2f} days, {step:g} s steps; unreachable = missing samples): {avail_q}",
            nodes, (_day(first), _day(last))))
    return out


# ---------------------------------------------------------------- applying

def measured_throughput(cfg: CostConfig, gpu: str, figures: dict[str, tuple[float, int]]) -> tuple[float, str] | None:
    """The catalog's published training throughput scaled by how this hardware measured against the published
    GEMM and NCCL figures: one training step = compute_share on GEMM + the rest on communication."""
    model = cfg.catalog.models.get(gpu)
    if model is None or not figures:
        return None
    c = cfg.v("generation.compute_share")
    parts, said = [], []
    for fig, published, share in (("gemm_tflops", model.gemm_tflops, c), ("nccl_busbw_gbps", model.nccl_busbw_gbps, 1 - c)):
        if fig in figures and published > 0:
            value, hosts = figures[fig]
            parts.append(share / (value / published))
            said.append(f"{fig.split('_')[0].upper()} {value:,.4g} measured on {hosts} host(s) vs {published:g} published")
        else:
            parts.append(share)
    eff = 1.0 / sum(parts)
    return model.training_throughput * eff, (f"published {model.training_throughput:g} x measured efficiency "
                                             f"{eff:.3f} ({'; '.join(said)}; compute share {c:g})")


def apply(cfg: CostConfig, m: Measurements) -> CostConfig:
    """The config with measured values in place of the assumed ones (kept for the report)."""
    new = dict(cfg.inputs)
    for x in m.values:
        old = new[x.key]
        new[x.key] = Input(x.key, x.value, old.unit, MEASURED, f"{x.source}; assumed was {old.value:g}")
    for gpu, figures in m.figures.items():
        got = measured_throughput(cfg, gpu, figures)
        if got is not None:
            key = f"generation.throughput.{gpu}"
            new[key] = Input(key, got[0], "x A100 training throughput", MEASURED, got[1])
    # a config's own scenarios run on the same cluster, so they get the same measurements
    return replace(cfg, inputs=new, scenarios=[(name, apply(sc, m)) for name, sc in cfg.scenarios])
