"""JSON output: the result contract, with a summary block first (counts, failing hosts, each host's
worst problem) and, from `verify --compare`, what changed since each host's previous run."""

from __future__ import annotations

import json
from typing import Any

from clusterkit.results import RunResult


def render_json(run: RunResult, changes: Any = None) -> str:
    from clusterkit.summary import run_summary

    body = run.to_dict()
    d: dict[str, Any] = {k: body[k] for k in ("clusterkit_version", "profile", "suite", "started_at", "finished_at",
                                              "status", "simulated") if k in body}
    d["summary"] = run_summary(run)
    d.update(body)
    if changes is not None:
        d["changes"] = changes.to_dict()
    return json.dumps(d, indent=2, default=str) + "\n"
