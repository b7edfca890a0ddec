"""`gpu/power-trace.csv`: what the power-step sampler recorded (clusterkit/node_scripts/gpu_node.py).

Samples are numpy columns (`PowerTrace.t_s`, `.power_w`...): a node's trace has 6,000+ rows and the
power step is judged on whole columns. They come from the CSV (`parse_power_trace`), or, much
faster, from `gpu/power-trace.columns.json` written beside it (`parse_power_trace_columns`); both
go through clusterkit/node_scripts/trace_columns.py's row rule.

    # clusterkit power-trace v1
    # power_source: instant            (NVML_FI_DEV_POWER_INSTANT, else 'average')
    # period_s: 4.0                     (square wave: idle half, load half)
    # load: torch-gemm
    # uptime_start_s: 1234.5            (node uptime, to place kernel log Xids in the test)
    # uptime_t0_s: 1235.5              (uptime at t_s = 0)
    # uptime_end_s: 1274.9
    # gpu: 0,0000:1b:00.0,1652922001234,NVIDIA H100 80GB HBM3,700.0   (index,bus id,serial,name,enforced limit W)
    # pcie_under_load: 0,5,5,16,16      (index,gen,gen max,width,width max read during a load half)
    # event_time_delta_ns: 0,hw_power_brake,20000000   (NVML clock-event time counter growth over the step)
    t_s,gpu,phase,power_w,sm_clock_mhz,clock_event_reasons,temp_c,error
    0.050,0,idle,71.2,345,0x1,35,
"""

from __future__ import annotations

import base64
import binascii
import csv
import math
import re
import zlib
from dataclasses import dataclass, field

import numpy as np

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.text import clean
from clusterkit.node_scripts.trace_columns import (COLUMN_TYPES, COLUMNS_FORMAT, NO_REASONS, TRACE_HEADER,
                                                   parse_rows, split_trace)
from clusterkit.parsers import ParseError, json_object
from clusterkit.parsers.gpu_records import gpu_label, norm_bus_id

COLUMNS = TRACE_HEADER
_DTYPES = {"d": "<f8", "q": "<i8", "b": "i1"}


@dataclass
class TraceGpu:
    index: int
    bus_id: str | None = None
    serial: str | None = None
    name: str | None = None
    power_limit_w: float | None = None
    pcie_under_load: tuple[int, int, int, int] | None = None   # gen, gen max, width, width max
    # growth of NVML's cumulative clock-event time counters over the step, by reason (ns)
    event_time_delta_ns: dict[str, int] = field(default_factory=dict)

    def label(self) -> str:
        return gpu_label(self.index, self.bus_id, self.serial)


@dataclass(slots=True)
class Sample:
    """One row, for reading a trace by hand (tests, a GPU node); analysis uses the columns."""
    t: float
    gpu: int
    phase: str                  # idle | load
    power_w: float | None
    sm_clock_mhz: float | None
    reasons: int | None
    temp_c: float | None
    error: str = ""


def _empty(code: str) -> np.ndarray:
    return np.zeros(0, dtype=_DTYPES[code])


@dataclass
class PowerTrace:
    meta: dict[str, str] = field(default_factory=dict)
    gpus: dict[int, TraceGpu] = field(default_factory=dict)
    skipped_rows: int = 0
    # one entry per sample, in file order; NaN = not printed, reasons NO_REASONS = not printed
    t_s: np.ndarray = field(default_factory=lambda: _empty("d"))
    gpu: np.ndarray = field(default_factory=lambda: _empty("q"))
    load: np.ndarray = field(default_factory=lambda: _empty("b"))
    power_w: np.ndarray = field(default_factory=lambda: _empty("d"))
    sm_clock_mhz: np.ndarray = field(default_factory=lambda: _empty("d"))
    reasons: np.ndarray = field(default_factory=lambda: _empty("q"))
    temp_c: np.ndarray = field(default_factory=lambda: _empty("d"))
    errors: dict[int, str] = field(default_factory=dict)     # sample number -> error text (GPU_LOST...)
    csv_crc32: int | None = None                             # columns form: the CSV it was made from
    # hundreds of KB of columns, read by node checks only: dropped after the node's checks, never
    # sent back from a worker (clusterkit.analysis.NodeContext.parsed), whatever the file's size
    keep_after_node = False

    @property
    def power_source(self) -> str:
        return self.meta.get("power_source", "unknown")

    @property
    def n_samples(self) -> int:
        return int(self.t_s.size)

    def fmeta(self, key: str) -> float | None:
        try:
            v = float(self.meta[key])
        except (KeyError, ValueError):
            return None
        return v if math.isfinite(v) else None

    @property
    def samples(self) -> list[Sample]:
        def opt(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        return [Sample(float(t), int(g), "load" if ld else "idle", opt(p), opt(c), None if r == NO_REASONS else int(r),
                       opt(tc), self.errors.get(i, ""))
                for i, (t, g, ld, p, c, r, tc) in enumerate(zip(self.t_s, self.gpu, self.load, self.power_w,
                                                                 self.sm_clock_mhz, self.reasons, self.temp_c))]

    def by_gpu(self) -> dict[int, list[Sample]]:
        out: dict[int, list[Sample]] = {i: [] for i in self.gpus}
        for s in self.samples:
            out.setdefault(s.gpu, []).append(s)
        return out


POWER_TRACE = declare("power-trace", "gpu/power-trace.csv", command=("python3", "-", "power-step"), priority=70, description="clusterkit power-step trace")
# Written beside the CSV by the node script and the simulator; never pasted, so never recognized.
POWER_TRACE_COLUMNS = declare("power-trace-columns", "gpu/power-trace.columns.json",
                              command=("python3", "-", "power-step"),
                              description="clusterkit power-step trace, compact columns")


@POWER_TRACE.recognizer
def is_power_trace(text: str) -> bool:
    return "# clusterkit power-trace" in text[:200] or text.lstrip().startswith(",".join(COLUMNS[:4]))


def _f(s: str) -> float | None:
    try:
        v = float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


# `# key: value`; the value ends in a non-blank (a lazy value before `\s*$` retried every blank run)
_META = re.compile(r"#\s*([a-z_0-9]+)\s*:\s*((?:.*\S)?)\s*$")


def _apply_header(tr: PowerTrace, comments: list[str], require_samples: bool) -> PowerTrace:
    """The `#` lines (metadata, GPU identities, PCIe under load, clock-event counters) onto a trace
    whose samples are read: GPUs named by the header first, then those seen only in samples."""
    pcie: dict[int, tuple[int, int, int, int]] = {}
    events: dict[int, dict[str, int]] = {}
    for line in comments:
        m = _META.match(line)
        if not m:
            continue
        key, val = m.groups()
        if key == "gpu":
            p = [x.strip() for x in val.split(",")]
            if p and p[0].isdigit():
                g = TraceGpu(int(p[0]), *(p[1:4] + [None] * (3 - len(p[1:4]))))
                g.bus_id = norm_bus_id(g.bus_id) or g.bus_id or None
                g.serial, g.name = g.serial or None, g.name or None
                g.power_limit_w = _f(p[4]) if len(p) > 4 else None
                tr.gpus[g.index] = g
        elif key == "pcie_under_load":
            p = [x.strip() for x in val.split(",")]
            if len(p) == 5 and all(x.isdigit() for x in p):
                pcie[int(p[0])] = tuple(int(x) for x in p[1:])  # type: ignore[assignment]
        elif key == "event_time_delta_ns":
            p = [x.strip() for x in val.split(",")]
            if len(p) == 3 and p[0].isdigit() and re.fullmatch(r"-?\d+", p[2]):
                events.setdefault(int(p[0]), {})[p[1]] = int(p[2])
        else:
            tr.meta[key] = val
    for gi in dict.fromkeys(tr.gpu.tolist()):
        tr.gpus.setdefault(gi, TraceGpu(gi))
    for i, link in pcie.items():
        tr.gpus.setdefault(i, TraceGpu(i)).pcie_under_load = link
    for i, ev in events.items():
        tr.gpus.setdefault(i, TraceGpu(i)).event_time_delta_ns = ev
    if require_samples and not tr.n_samples and not tr.meta.get("error"):
        raise ParseError("power trace has a header but no usable samples")
    return tr


def _check_header_row(head: str | None) -> None:
    if head is None or [c.strip() for c in head.split(",")][:4] != COLUMNS[:4]:
        raise ParseError(f"power trace has no header row '{','.join(COLUMNS)}'")


def parse_power_trace_header(text: str) -> PowerTrace:
    """Only the `#` lines (GPU identities, PCIe under load, event counters), no samples: what
    checks other than power.step read, at a fraction of the full parse's cost."""
    comments, head, _rows = split_trace(clean(text))
    _check_header_row(head)
    return _apply_header(PowerTrace(), comments, require_samples=False)


@POWER_TRACE.parser
def parse_power_trace(text: str, *, require_samples: bool = True) -> PowerTrace:
    comments, head, rows = split_trace(clean(text))
    _check_header_row(head)
    try:
        cols, skipped = parse_rows(rows)
    except csv.Error as e:      # a field past csv's 128 KiB limit: no trace value is that long
        raise ParseError(f"power trace row unreadable: {e}") from None
    tr = PowerTrace(skipped_rows=skipped, errors=cols["error"])
    for name, code in COLUMN_TYPES.items():
        setattr(tr, name, np.array(cols[name], dtype=_DTYPES[code]))
    return _apply_header(tr, comments, require_samples)


@POWER_TRACE_COLUMNS.parser
def parse_power_trace_columns(text: str) -> PowerTrace:
    """`gpu/power-trace.columns.json` -> the trace its CSV gives (`csv_crc32` names that CSV)."""
    doc = json_object(text, POWER_TRACE_COLUMNS.path)
    if doc.get("format") != COLUMNS_FORMAT:
        raise ParseError(f"power trace columns: not '{COLUMNS_FORMAT}'")
    try:
        n = int(doc["rows"])
        tr = PowerTrace(skipped_rows=int(doc["skipped_rows"]), csv_crc32=int(doc["csv_crc32"]),
                        errors={int(i): str(e) for i, e in doc["errors"]})
        for name, code in COLUMN_TYPES.items():
            got_code, data = doc["columns"][name]
            if got_code != code:
                raise ParseError(f"power trace columns: {name} is '{got_code}', expected '{code}'")
            col = np.frombuffer(zlib.decompress(base64.b64decode(data, validate=True)), dtype=_DTYPES[code])
            if col.size != n:
                raise ParseError(f"power trace columns: {name} has {col.size} values for {n} rows")
            setattr(tr, name, col)
        comments = [str(c) for c in doc["header"]]
    except ParseError:
        raise
    except (KeyError, TypeError, ValueError, OverflowError, zlib.error, binascii.Error) as e:
        raise ParseError(f"power trace columns: unusable ({type(e).__name__}: {e})") from None
    _check_header_row(doc.get("column_header"))
    return _apply_header(tr, comments, require_samples=True)
