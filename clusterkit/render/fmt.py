"""Numbers, quantities and plurals as people write them, for every text renderer.

`4629135.0` is `4,629,135`; `0.000012` stays exact enough (`1.2e-05`); a unit is written out where
its symbol is ambiguous or terse (`s` -> seconds, `C` -> °C); a count of one is singular.
"""

from __future__ import annotations

import math
from typing import Any

# unit as the checks give it -> as a reader expects it (empty: the number says it all)
_UNITS = {"s": "seconds", "ms": "milliseconds", "C": "°C", "W": "watts", "%": "percent", "count": "",
          "mA": "milliamperes", "GiB": "GiB"}
# plural unit -> singular, for a value of exactly one
_SINGULAR = {"seconds": "second", "milliseconds": "millisecond", "watts": "watt", "lanes": "lane", "links": "link",
             "errors": "error", "events": "event", "rows": "row", "pages": "page", "GPUs": "GPU", "probes": "probe",
             "lines": "line", "results": "result", "elements": "element", "milliamperes": "milliampere",
             "in-phase events": "in-phase event", "nodes": "node", "hosts": "host", "checks": "check"}


def number(v: Any, grouped: bool = True) -> str:
    """A number for a person: integers (and whole floats) as integers, with thousands separators when
    `grouped` (a quantity, not an identifier such as an error number), others to 4 significant digits."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}" if grouped else str(int(v))
    if abs(v) >= 1000:
        return f"{v:,.1f}" if grouped else f"{v:.1f}"
    return f"{v:.4g}"


def unit_text(unit: str | None, value: Any = None) -> str:
    u = _UNITS.get(unit or "", unit or "")
    if value is not None and not isinstance(value, bool) and isinstance(value, (int, float)) and value == 1:
        u = _SINGULAR.get(u, u)
    return u


def quantity(value: Any, unit: str | None) -> str:
    """`4,629,135 elements`, `1 error`, `12.5 °C`; lists and dicts as they are."""
    if isinstance(value, (list, tuple)):
        return ", ".join(number(v, bool(unit)) for v in value) + (f" {unit_text(unit)}" if unit_text(unit) else "")
    u = unit_text(unit, value)
    return f"{number(value)} {u}".rstrip() if u else number(value, grouped=bool(unit))


def plural(n: int, word: str, words: str | None = None) -> str:
    """`1 node`, `2 nodes` (`words` for an irregular plural)."""
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def observed(f: Any) -> str:
    """`observed 4,629,135 elements, limit 10` for a finding (empty when it observed nothing)."""
    if f.observed is None:
        return ""
    out = f"observed {quantity(f.observed, f.unit)}"
    if f.limit is not None:
        out += f", limit {quantity(f.limit, f.unit)}"
    return out
