"""`gpu/power-trace.csv`: what the power-step sampler recorded (clusterkit/node_scripts/power_step.py).

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

import csv
import math
import re
from dataclasses import dataclass, field

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.text import clean
from clusterkit.parsers import ParseError
from clusterkit.parsers.gpu_records import gpu_label, norm_bus_id

COLUMNS = ["t_s", "gpu", "phase", "power_w", "sm_clock_mhz", "clock_event_reasons", "temp_c", "error"]


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


@dataclass(slots=True)  # tens of thousands per node: slots halve the memory and the build time
class Sample:
    t: float
    gpu: int
    phase: str                  # idle | load
    power_w: float | None
    sm_clock_mhz: float | None
    reasons: int | None
    temp_c: float | None
    error: str = ""


@dataclass
class PowerTrace:
    meta: dict[str, str] = field(default_factory=dict)
    gpus: dict[int, TraceGpu] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    skipped_rows: int = 0

    @property
    def power_source(self) -> str:
        return self.meta.get("power_source", "unknown")

    def fmeta(self, key: str) -> float | None:
        try:
            v = float(self.meta[key])
        except (KeyError, ValueError):
            return None
        return v if math.isfinite(v) else None

    def by_gpu(self) -> dict[int, list[Sample]]:
        out: dict[int, list[Sample]] = {i: [] for i in self.gpus}
        for s in self.samples:
            out.setdefault(s.gpu, []).append(s)
        return out


POWER_TRACE = declare("power-trace", "gpu/power-trace.csv", command=("python3", "-", "power-step"), priority=70, description="clusterkit power-step trace")


@POWER_TRACE.recognizer
def is_power_trace(text: str) -> bool:
    return "# clusterkit power-trace" in text[:200] or text.lstrip().startswith(",".join(COLUMNS[:4]))


def _f(s: str) -> float | None:
    try:
        v = float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def parse_power_trace_header(text: str) -> PowerTrace:
    """Only the `#` lines (GPU identities, PCIe under load, event counters), no samples: what
    checks other than power.step read, at a fraction of the full parse's cost."""
    keep = [line for line in text.split("\n") if line.startswith("#") or line.startswith("t_s,")]
    return parse_power_trace("\n".join(keep), require_samples=False)


# `# key: value`; the value ends in a non-blank (a lazy value before `\s*$` retried every blank run)
_META = re.compile(r"#\s*([a-z_0-9]+)\s*:\s*((?:.*\S)?)\s*$")


def _records(rows: list[str]):
    """csv rows; a field past csv's 128 KiB limit (no trace value is) is unusable input."""
    try:
        yield from csv.reader(rows)
    except csv.Error as e:
        raise ParseError(f"power trace row unreadable: {e}") from None


@POWER_TRACE.parser
def parse_power_trace(text: str, *, require_samples: bool = True) -> PowerTrace:
    tr = PowerTrace()
    rows: list[str] = []
    pcie: dict[int, tuple[int, int, int, int]] = {}
    events: dict[int, dict[str, int]] = {}
    for line in clean(text).split("\n"):
        if line.startswith("#"):
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
        elif line.strip():
            rows.append(line)
    if not rows or [c.strip() for c in rows[0].split(",")][:4] != COLUMNS[:4]:
        raise ParseError(f"power trace has no header row '{','.join(COLUMNS)}'")
    append, seen = tr.samples.append, set()
    for rec in _records(rows[1:]):
        if len(rec) < 6:
            tr.skipped_rows += 1
            continue
        t, g = _f(rec[0]), rec[1].strip()
        if t is None or not g.isdigit() or rec[2] not in ("idle", "load"):
            tr.skipped_rows += 1
            continue
        try:
            reasons = int(rec[5], 16) if rec[5].strip() else None
        except ValueError:
            reasons = None
        gi = int(g)
        append(Sample(t, gi, rec[2], _f(rec[3]), _f(rec[4]), reasons,
                      _f(rec[6]) if len(rec) > 6 else None, rec[7].strip() if len(rec) > 7 else ""))
        if gi not in seen:
            seen.add(gi)
            tr.gpus.setdefault(gi, TraceGpu(gi))
    for i, link in pcie.items():
        tr.gpus.setdefault(i, TraceGpu(i)).pcie_under_load = link
    for i, ev in events.items():
        tr.gpus.setdefault(i, TraceGpu(i)).event_time_delta_ns = ev
    if require_samples and not tr.samples and not tr.meta.get("error"):
        raise ParseError("power trace has a header but no usable samples")
    return tr
