"""Durations and points in time as users type them: `2h`, `1h30m`, `7d`, `2026-11-20`."""

from __future__ import annotations

import datetime as _dt
import re

from clusterkit.errors import ConfigError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """Seconds in `90s`, `30m`, `2h`, `1h30m`, `7d`, `2w` (a bare number is seconds)."""
    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    if not t or _PART.sub("", t):
        raise ConfigError(f"invalid duration '{text}' (examples: 90s, 30m, 2h, 1h30m, 7d)")
    return float(sum(float(n) * _UNITS[u] for n, u in _PART.findall(t)))


def parse_since(text: str, now: _dt.datetime | None = None) -> str:
    """`7d` (ago) or an ISO date/time -> ISO-8601 UTC, comparable with history timestamps."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    try:
        ago = parse_duration(text)
    except ConfigError:
        try:
            d = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"invalid --since '{text}' (a duration such as 7d, or a date such as 2026-11-20)") from None
        d = d if d.tzinfo else d.replace(tzinfo=_dt.timezone.utc)
        return d.astimezone(_dt.timezone.utc).isoformat(timespec="seconds")
    return (now - _dt.timedelta(seconds=ago)).isoformat(timespec="seconds")
