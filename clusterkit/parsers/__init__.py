"""Parsers: tool output text -> typed records. Pure functions; no I/O, no thresholds."""

from __future__ import annotations

import json
from typing import Any


class ParseError(ValueError):
    """The text is not usable output of the tool (the message says why)."""


def json_object(text: str, what: str) -> dict[str, Any]:
    """The JSON object a file holds (clusterkit's own snapshots), else ParseError naming `what`."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ParseError(f"{what} is not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ParseError(f"{what}: expected a JSON object, got {type(doc).__name__}")
    return doc
