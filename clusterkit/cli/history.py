"""`clusterkit history`: recent runs, what is broken now, and metric trends per node."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Optional

import typer

from clusterkit.cli.common import DbOpt, env_inventory
from clusterkit.codes import canonical
from clusterkit.fleet.progress import duration
from clusterkit.history import DEFAULT_STALE_AFTER_S, NEVER_SEEN, History, default_db_path
from clusterkit.render import console_width
from clusterkit.timespec import parse_duration, parse_since
from clusterkit.triage import DEFAULT_TIER, tier

_SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    if not values:
        return ""
    lo, hi = min(values), max(values)
    if hi == lo:
        return _SPARK[3] * len(values)
    return "".join(_SPARK[round((v - lo) / (hi - lo) * (len(_SPARK) - 1))] for v in values)


def node_problems(hist: History, *, stale_after_s: float = DEFAULT_STALE_AFTER_S, inventory: list[str] | None = None,
                  now: _dt.datetime | None = None) -> list[dict[str, Any]]:
    """Hosts whose latest result is not current: not reached in their latest run, never seen, or stale."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    out = []
    for n in hist.node_states(inventory or ()):
        if not n.stale(now, stale_after_s):
            continue
        why = ("never seen: no stored run included it" if n.outcome == NEVER_SEEN else
               f"{n.outcome} in its latest run ({n.last_run_at})" if not n.up else
               "no result stored" if n.last_result_at is None else
               f"newest result is older than {duration(stale_after_s)}")
        out.append({"host": n.host, "outcome": n.outcome, "up": n.up, "last_run_at": n.last_run_at,
                    "last_seen_at": n.last_seen_at, "last_result_at": n.last_result_at,
                    "last_status": n.worst, "why": why})
    return out


def gather(hist: History, *, since: str, host: str | None, check: str | None, metric: str | None,
           stale_after_s: float = DEFAULT_STALE_AFTER_S, inventory: list[str] | None = None) -> dict[str, Any]:
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
                         "findings": [{"code": canonical(f.code), "severity": f.severity,   # current names
                                       "component": f.component, "action": f.action} for f in bad]})
    problems.sort(key=lambda p: ({"fail": 0, "error": 1, "warn": 2}[p["status"]],
                                 min((tier(f["code"]) for f in p["findings"]), default=DEFAULT_TIER),
                                 p["host"] or "", p["check"]))
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
    nodes = [n for n in node_problems(hist, stale_after_s=stale_after_s, inventory=inventory)
             if not host or n["host"] == host]
    return {"since": since, "runs": runs, "nodes": nodes, "problems": problems, "series": series}


def render(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(markup=False, emoji=False, **console_width())
    t = Table(title=f"Runs since {data['since']}", title_justify="left")
    for col in ("run", "kind", "started", "finished", "suite", "status", "failed nodes"):
        t.add_column(col)
    for r in data["runs"]:
        failed = ", ".join(r["failed_nodes"][:6]) + (" ..." if len(r["failed_nodes"]) > 6 else "")
        t.add_row(str(r["id"]), r["kind"] + (" (sim)" if r["simulated"] else ""), r["started_at"],
                  r["finished_at"] or "-", r["suite"] or "", r["status"] or "", failed)
    con.print(t)
    if data["nodes"]:
        nt = Table(title="Nodes not reached or stale (their results are not current)", title_justify="left")
        for col in ("host", "outcome", "last reached", "newest result", "last status", "why"):
            nt.add_column(col, overflow="fold")
        for x in data["nodes"]:
            nt.add_row(x["host"], x["outcome"], x["last_seen_at"] or "never", x["last_result_at"] or "-",
                       x["last_status"] or "-", x["why"])
        con.print(nt)
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
    hist_app = typer.Typer(help="Recent runs, what is broken now, metric trends, and what changed since last time.")
    app.add_typer(hist_app, name="history")

    @hist_app.callback(invoke_without_command=True)
    def history(
        ctx: typer.Context,
        db: Optional[Path] = DbOpt,
        host: Optional[str] = typer.Option(None, "--host", help="Only this host."),
        check: Optional[str] = typer.Option(None, "--check", help="Only this check id (e.g. nccl.allreduce)."),
        metric: Optional[str] = typer.Option(None, "--metric", help="Only this metric (e.g. busbw_large_gbps)."),
        since: str = typer.Option("7d", "--since", help="Window: a duration (7d, 24h) or a date (2026-11-01)."),
        fmt: Optional[str] = typer.Option(None, "--format", help="table (default) or json."),
        stale_after: str = typer.Option("36h", "--stale-after", help="A node whose newest result is older than "
                                                                      "this is listed as stale."),
        inventory: Optional[Path] = typer.Option(None, "--inventory", "-i",
                                                 help="Also list the inventory's hosts no stored run included "
                                                      "(default: $ANSIBLE_INVENTORY)."),
    ) -> None:
        """Recent runs, the latest failing results with their actions, and metric trends
        (`clusterkit history diff`: what changed since each host's previous run)."""
        from clusterkit.errors import ConfigError

        if ctx.invoked_subcommand is not None:
            ctx.obj = {"db": db, "fmt": fmt, "host": host}
            return
        if fmt not in (None, "table", "json"):
            raise ConfigError(f"unknown --format '{fmt}' (table, json)")
        hosts = None
        inventory = env_inventory(inventory)
        if inventory is not None:
            from clusterkit.inventory import load_inventory

            hosts = [x.name for x in load_inventory(inventory)[0].targets()]
        with History(db or default_db_path(), readonly=True) as h:
            data = gather(h, since=parse_since(since), host=host, check=check, metric=metric,
                          stale_after_s=parse_duration(stale_after), inventory=hosts)
        if fmt == "json":
            typer.echo(json.dumps(data, indent=2))
        else:
            render(data)

    @hist_app.command("diff")
    def diff(
        ctx: typer.Context,
        run: Optional[int] = typer.Option(None, "--run", help="The run to look at (default: the newest)."),
        db: Optional[Path] = DbOpt,
        host: Optional[str] = typer.Option(None, "--host", help="Only this host."),
        fmt: Optional[str] = typer.Option(None, "--format", help="table (default) or json."),
    ) -> None:
        """Findings new, gone or changed in a run against each host's previous run (what is new since last night)."""
        from clusterkit.errors import ConfigError
        from clusterkit.history_diff import compare_stored, render_text

        parent = ctx.obj or {}
        db, fmt, host = db or parent.get("db"), fmt or parent.get("fmt"), host or parent.get("host")
        if fmt not in (None, "table", "json"):
            raise ConfigError(f"unknown --format '{fmt}' (table, json)")
        path = db or default_db_path()
        with History(path, readonly=True) as h:
            row = h.conn.execute("SELECT id, kind, started_at FROM runs" + (" WHERE id=?" if run else "")
                                 + " ORDER BY id DESC LIMIT 1", (run,) if run else ()).fetchone()
            if row is None:
                raise ConfigError(f"{path}: " + (f"no run {run}" if run else "no run stored yet"))
            changes = compare_stored(h, row["id"])
        if host:
            changes.changes = [c for c in changes.changes if c.host == host]
            changes.compared = {k: v for k, v in changes.compared.items() if k == host}
            changes.outcome_changes = [x for x in changes.outcome_changes if x[0] == host]
        if fmt == "json":
            typer.echo(json.dumps({"run": row["id"], "kind": row["kind"], "started_at": row["started_at"],
                                   **changes.to_dict()}, indent=2, default=str))
        else:
            typer.echo(render_text(changes, f"Run {row['id']} ({row['kind']}, {row['started_at']}) against each "
                                            "host's previous run:"), nl=False)
