"""Measured inputs: mean node GPU power and availability from the cluster's own data.

Two sources, either fills `power.gpu_power_w` and `utilization.availability`:
- the burn-in history (SQLite): metric `gpu_power_draw_total_w` per host, and the
  share of node results that were reachable and healthy;
- Prometheus' HTTP API (`/api/v1/query`) with the queries of the config's
  [prometheus] table (defaults: dcgm-exporter power, `up` of the node job).
What was not measured stays assumed, and the report says which is which.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path

from clusterkit.cost.config import MEASURED, CostConfig, Input
from clusterkit.errors import ConfigError

POWER_METRIC = "gpu_power_draw_total_w"


@dataclass(frozen=True)
class Measured:
    key: str              # config key it replaces
    value: float
    source: str           # where and how many samples


@dataclass
class Measurements:
    values: list[Measured] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


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


def _read_history(con: sqlite3.Connection, name: str) -> Measurements:
    out = Measurements()
    # Simulated runs carry invented numbers: use them only when there is nothing else, and say so.
    real = con.execute("SELECT COUNT(*) FROM runs WHERE NOT simulated").fetchone()[0]
    sim_filter = "NOT r.simulated" if real else "1"
    if not real:
        out.warnings.append(f"history {name} holds only simulated runs: 'measured' power and availability "
                            f"are from the simulator, not from hardware")
    rows = con.execute(
        f"SELECT m.host, AVG(m.value), COUNT(*) FROM metrics m JOIN runs r ON r.id = m.run_id "
        f"WHERE m.name = ? AND typeof(m.value) IN ('real', 'integer') AND {sim_filter} "
        f"GROUP BY m.host", (POWER_METRIC,)).fetchall()
    if rows:
        mean = sum(r[1] for r in rows) / len(rows)
        n = sum(r[2] for r in rows)
        out.values.append(Measured("power.gpu_power_w", mean,
                                   f"history {name}: mean of {POWER_METRIC} over {len(rows)} hosts, {n} samples "
                                   f"(burn-in load: an upper bound for a production mix)"))
    else:
        out.warnings.append(f"history {name}: no {POWER_METRIC} samples; GPU power stays assumed")
    total, healthy = con.execute(
        f"SELECT COUNT(*), COALESCE(SUM(n.outcome = 'ok' AND n.status IN ('pass', 'warn')), 0) "
        f"FROM node_results n JOIN runs r ON r.id = n.run_id WHERE {sim_filter}").fetchone()
    if total:
        out.values.append(Measured("utilization.availability", healthy / total,
                                   f"history {name}: {healthy} of {total} node results reachable and pass/warn"))
    else:
        out.warnings.append(f"history {name}: no node results; availability stays assumed")
    return out


def _query(url: str, promql: str, timeout: float) -> float | None:
    full = url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(full, timeout=timeout) as resp:
            doc = json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        raise ConfigError(f"--prometheus {url}: HTTP {e.code} for query {promql!r}") from None
    except (urllib.error.URLError, OSError) as e:
        raise ConfigError(f"--prometheus {url}: cannot reach Prometheus ({getattr(e, 'reason', e)})") from None
    except ValueError:
        raise ConfigError(f"--prometheus {url}: answer is not JSON (is this a Prometheus server?)") from None
    if not isinstance(doc, dict) or doc.get("status") != "success":
        err = doc.get("error", "unknown error") if isinstance(doc, dict) else "unexpected answer"
        raise ConfigError(f"--prometheus {url}: query {promql!r} failed: {err}")
    data = doc.get("data") or {}
    try:
        if data.get("resultType") == "scalar":
            return float(data["result"][1])
        result = data.get("result") or []
        return float(result[0]["value"][1]) if result else None
    except (KeyError, IndexError, TypeError, ValueError):
        raise ConfigError(f"--prometheus {url}: unexpected result shape for {promql!r}") from None


def from_prometheus(url: str, queries: dict[str, str], timeout: float = 10.0) -> Measurements:
    out = Measurements()
    power = _query(url, queries["power_query"], timeout)
    if power is None or power != power:
        out.warnings.append(f"Prometheus {url}: no data for {queries['power_query']!r}; GPU power stays assumed")
    else:
        out.values.append(Measured("power.gpu_power_w", power, f"Prometheus {url}: {queries['power_query']}"))
    avail = _query(url, queries["availability_query"], timeout)
    if avail is None or avail != avail:
        out.warnings.append(f"Prometheus {url}: no data for {queries['availability_query']!r}; availability stays assumed")
    elif not 0 < avail <= 1:
        raise ConfigError(f"--prometheus {url}: availability query returned {avail:g}, expected a share in (0, 1]")
    else:
        out.values.append(Measured("utilization.availability", avail,
                                   f"Prometheus {url}: {queries['availability_query']}"))
    return out


def apply(cfg: CostConfig, m: Measurements) -> CostConfig:
    """The config with measured values in place of the assumed ones (kept for the report)."""
    new = dict(cfg.inputs)
    for x in m.values:
        old = new[x.key]
        new[x.key] = Input(x.key, x.value, old.unit, MEASURED, f"{x.source}; assumed was {old.value:g}")
    # a config's own scenarios run on the same cluster, so they get the same measurements
    return replace(cfg, inputs=new, scenarios=[(name, apply(sc, m)) for name, sc in cfg.scenarios])
