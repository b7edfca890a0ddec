"""JSON output: the result contract, as is."""

from __future__ import annotations

import json

from clusterkit.results import RunResult


def render_json(run: RunResult) -> str:
    return json.dumps(run.to_dict(), indent=2, default=str) + "\n"
