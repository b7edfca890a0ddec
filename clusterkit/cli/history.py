"""`clusterkit history`: recent runs, what is broken now, and metric trends per node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from clusterkit.history import History, default_db_path
from clusterkit.timespec import parse_since

_SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    if not values:
        return ""
    lo, hi = min(values), max(values)
    if hi == lo:
        return _SPARK[3] * len(values)
    return "".join(_SPARK[round((v - lo) / (hi - lo) * (len(_SPARK) - 1))] for v in values)


def gather(hist: History, *, since: str, host: str | None, check: str | None, metric: str | None) -> dict[str, Any]:
    """The data the command shows (also its --format json)."""
    runs = [dict(r) for r in hist.conn.execute(
        "SELECT id, kind, started_at, finished_at, suite, profile, status, simulated FROM runs"
        " WHERE started_at >= ? ORDER BY id DESC LIMIT 20", (since,))]
    for r in runs:
        r["failed_nodes"] = [x[0] for x in hist.conn.execute(
            "SELECT host FROM node_results WHERE run_id=? AND status IN ('fail','error') ORDER BY host", (r["id"],))]
    problems = []
    for r in hist.latest_checks():
        if r["status"] not in ("fail", "error", "warn") or r["finished_at"] < since:
            continue
        if host and r["host"] != host or check and r["check_id"] != check:
            continue
        fs = hist.findings_of(r["id"])
        bad = [f for f in fs if f.severity != "info"] or fs
        problems.append({"host": r["host"], "check": r["check_id"], "status": r["status"], "run_id": r["run_id"],
                         "finished_at": r["finished_at"], "summary": r["summary"],
                         "findings": [{"code": f.code, "severity": f.severity, "component": f.component,
                                       "action": f.action} for f in bad]})
    problems.sort(key=lambda p: ({"fail": 0, "error": 1, "warn": 2}[p["status"]], p["host"] or "", p["check"]))
    series: list[dict[str, Any]] = []
    if host or check or metric:
        q = "SELECT host, check_id, name, value, ts FROM metrics WHERE ts >= ?"
        args: list[Any] = [since]
        for col, val in (("host", host), ("check_id", check), ("name", metric)):
            if val:
                q += f" AND {col} = ?"
                args.append(val)
        grouped: dict[tuple, list[tuple[str, float]]] = {}
        for h, c, n, v, ts in hist.conn.execute(q + " ORDER BY ts, check_result_id", args):
            grouped.setdefault((h, c, n), []).append((ts, v))
        for (h, c, n), pts in sorted(grouped.items(), key=lambda kv: (kv[0][0] or "", kv[0][1], kv[0][2])):
            vals = [v for _, v in pts]
            first, last = vals[0], vals[-1]
            series.append({"host": h, "check": c, "metric": n, "samples": len(vals), "first": first, "last": last,
                           "change_percent": (last - first) / abs(first) * 100.0 if first else None,
                           "min": min(vals), "max": max(vals), "first_ts": pts[0][0], "last_ts": pts[-1][0],
                           "values": vals})
    return {"since": since, "runs": runs, "problems": problems, "series": series}


def render(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title=f"Runs since {data['since']}", title_justify="left")
    for col in ("run", "kind", "started", "finished", "suite", "status", "failed nodes"):
        t.add_column(col)
    for r in data["runs"]:
        failed = ", ".join(r["failed_nodes"][:6]) + (" ..." if len(r["failed_nodes"]) > 6 else "")
        t.add_row(str(r["id"]), r["kind"] + (" (sim)" if r["simulated"] else ""), r["started_at"],
                  r["finished_at"] or "-", r["suite"] or "", r["status"] or "", failed)
    con.print(t)
    if data["problems"]:
        p = Table(title="Latest results that are not passing", title_justify="left")
        for col in ("host", "check", "status", "finding", "part", "action"):
            p.add_column(col, overflow="fold")
        for x in data["problems"]:
            f = x["findings"][0] if x["findings"] else {"code": "", "component": "", "action": ""}
            more = f" (+{len(x['findings']) - 1})" if len(x["findings"]) > 1 else ""
            p.add_row(x["host"] or "(cluster)", x["check"], x["status"], f["code"] + more, f["component"] or "",
                      f["action"] or x["summary"])
        con.print(p)
    else:
        con.print("No failing or warning results in this window.")
    if data["series"]:
        s = Table(title="Metric trends", title_justify="left")
        for col in ("host", "check", "metric", "n", "first", "last", "change", "trend"):
            s.add_column(col)
        for x in data["series"]:
            ch = "" if x["change_percent"] is None else f"{x['change_percent']:+.1f}%"
            s.add_row(x["host"] or "(cluster)", x["check"], x["metric"], str(x["samples"]), f"{x['first']:.4g}",
                      f"{x['last']:.4g}", ch, sparkline(x["values"][-40:]))
        con.print(s)
    else:
        con.print("Metric trends: name a --host, --check or --metric.")


def register(app: typer.Typer) -> None:
    @app.command("history")
    def history(
        db: Optional[Path] = typer.Option(None, "--db", help="History database (default: under $XDG_DATA_HOME)."),
        host: Optional[str] = typer.Option(None, "--host", help="Only this host."),
        check: Optional[str] = typer.Option(None, "--check", help="Only this check id (e.g. nccl.allreduce)."),
        metric: Optional[str] = typer.Option(None, "--metric", help="Only this metric (e.g. busbw_large_gbps)."),
        since: str = typer.Option("7d", "--since", help="Window: a duration (7d, 24h) or a date (2026-11-01)."),
        fmt: Optional[str] = typer.Option(None, "--format", "-f", help="table (default) or json."),
    ) -> None:
        """Recent runs, the latest failing results with their actions, and metric trends."""
        from clusterkit.errors import ConfigError

        if fmt not in (None, "table", "json"):
            raise ConfigError(f"--format must be table or json, not '{fmt}'")
        with History(db or default_db_path(), readonly=True) as h:
            data = gather(h, since=parse_since(since), host=host, check=check, metric=metric)
        if fmt == "json":
            typer.echo(json.dumps(data, indent=2))
        else:
            render(data)
