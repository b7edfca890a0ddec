"""`clusterkit exporter`: serve the history to Prometheus, or write a node_exporter textfile."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Optional

import typer

from clusterkit.cli.common import DbOpt, env_inventory
from clusterkit.history import default_db_path


def _inventory_hosts(path: Optional[Path]) -> list[str]:
    path = env_inventory(path)
    if path is None:
        return []
    from clusterkit.inventory import load_inventory

    return [h.name for h in load_inventory(path)[0].targets()]


def register(app: typer.Typer) -> None:
    @app.command("exporter")
    def exporter(
        port: int = typer.Option(9835, "--port", help="TCP port to listen on (0: any free port, printed)."),
        addr: str = typer.Option("127.0.0.1", "--addr", help="Address to listen on (0.0.0.0 for all)."),
        db: Optional[Path] = DbOpt,
        textfile: Optional[Path] = typer.Option(
            None, "--textfile", help="Write DIR/clusterkit.prom for node_exporter's textfile collector and exit."),
        stale_after: str = typer.Option("36h", "--stale-after", help="Serve a node's result as stale once it is "
                                                                      "older than this (26h, 2d)."),
        inventory: Optional[Path] = typer.Option(None, "--inventory", "-i",
                                                 help="Also serve node series for the inventory's hosts that no "
                                                      "stored run included (never seen); default: $ANSIBLE_INVENTORY."),
    ) -> None:
        """Prometheus exporter: latest result per host and check, read from history at scrape time."""
        from clusterkit import exporter as exp
        from clusterkit.timespec import parse_duration

        path = db or default_db_path()
        options = {"stale_after_s": parse_duration(stale_after), "inventory": _inventory_hosts(inventory)}
        if textfile is not None:
            out = exp.write_textfile(path, textfile, **options)
            typer.echo(f"wrote {out}")
            return
        server, _thread = exp.serve(path, port, addr, **options)
        host, bound = server.server_address[:2]
        # Tests and wrappers read this line to find a port chosen with --port 0.
        print(f"clusterkit exporter listening on http://{host}:{bound}/metrics (db {path})", flush=True)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        server.shutdown()
        sys.exit(0)
