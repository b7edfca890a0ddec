"""The power trace's rows, parsed by one rule, and its compact columns form.

`gpu/power-trace.csv` is what people read; next to it the node script and the simulator write
`gpu/power-trace.columns.json`: the same samples as typed columns (zlib + base64), the CSV's `#`
lines verbatim, and the CRC-32 of the CSV they came from. Analysis reads the columns with numpy
instead of parsing 6,000+ text rows per node, and falls back to the CSV when the columns are
missing, unreadable or not from this CSV. Both forms come out of `parse_rows`, so they cannot
disagree.

Stdlib only, and no `from __future__`: this file is also part of the on-node script
(clusterkit/probes/gpu.py joins nvml_backend.py, this file and gpu_node.py).
"""

import array
import base64
import csv
import json
import math
import sys
import zlib

COLUMNS_FORMAT = "clusterkit power-trace columns v1"
TRACE_HEADER = ["t_s", "gpu", "phase", "power_w", "sm_clock_mhz", "clock_event_reasons", "temp_c", "error"]
NO_REASONS = -1                          # clock_event_reasons not printed
REASON_BITS = (1 << 63) - 1              # NVML's reason bits all sit far below bit 63
MAX_GPU_INDEX = (1 << 31) - 1
# column -> array typecode (little-endian on the wire)
COLUMN_TYPES = {"t_s": "d", "gpu": "q", "load": "b", "power_w": "d", "sm_clock_mhz": "d", "reasons": "q",
                "temp_c": "d"}


def _num(s: str) -> float:
    """A finite number, else NaN (missing, garbage, inf)."""
    try:
        v = float(s)
    except ValueError:
        return math.nan
    return v if math.isfinite(v) else math.nan


def split_trace(text: str) -> "tuple[list[str], str | None, list[str]]":
    """(`#` lines, the column header row or None, the data rows): blank lines dropped, `#` lines anywhere."""
    comments, rows = [], []
    for line in text.split("\n"):
        if line.startswith("#"):
            comments.append(line)
        elif line.strip():
            rows.append(line)
    return comments, (rows[0] if rows else None), rows[1:]


def parse_rows(rows: "list[str]") -> "tuple[dict, int]":
    """Data rows -> ({column: values}, rows skipped). A row counts when it has at least 6 fields, a
    finite time, a GPU index and phase idle|load; a number that is missing or not finite is NaN,
    reasons not printed are NO_REASONS. `error` maps row number -> its non-empty error text.
    Raises csv.Error on a row csv cannot read (a field past its size limit)."""
    cols = {name: [] for name in COLUMN_TYPES}
    errors = {}
    skipped = 0
    t_s, gpu, load, power, clock, reasons, temp = (cols[n] for n in COLUMN_TYPES)
    for rec in csv.reader(rows):
        if len(rec) < 6:
            skipped += 1
            continue
        t, g, phase = _num(rec[0]), rec[1].strip(), rec[2]
        if math.isnan(t) or not (g.isascii() and g.isdigit()) or int(g) > MAX_GPU_INDEX or phase not in ("idle", "load"):
            skipped += 1
            continue
        try:
            r = int(rec[5], 16) & REASON_BITS if rec[5].strip() else NO_REASONS
        except ValueError:
            r = NO_REASONS
        err = rec[7].strip() if len(rec) > 7 else ""
        if err:
            errors[len(t_s)] = err
        t_s.append(t)
        gpu.append(int(g))
        load.append(1 if phase == "load" else 0)
        power.append(_num(rec[3]))
        clock.append(_num(rec[4]))
        reasons.append(r)
        temp.append(_num(rec[6]) if len(rec) > 6 else math.nan)
    cols["error"] = errors
    return cols, skipped


def _pack(typecode: str, values: list) -> str:
    a = array.array(typecode, values)
    if sys.byteorder == "big":
        a.byteswap()
    return base64.b64encode(zlib.compress(a.tobytes(), 1)).decode("ascii")


def columns_json(csv_text: str) -> str:
    """The compact columns form of a power-trace CSV (`gpu/power-trace.columns.json`)."""
    comments, head, rows = split_trace(csv_text)
    cols, skipped = parse_rows(rows if head is not None else [])
    doc = {
        "format": COLUMNS_FORMAT,
        "csv_crc32": zlib.crc32(csv_text.encode("utf-8")),
        "header": comments,
        "column_header": head,
        "rows": len(cols["t_s"]),
        "skipped_rows": skipped,
        "columns": {name: [code, _pack(code, cols[name])] for name, code in COLUMN_TYPES.items()},
        "errors": sorted(cols["error"].items()),
    }
    return json.dumps(doc, separators=(",", ":")) + "\n"
