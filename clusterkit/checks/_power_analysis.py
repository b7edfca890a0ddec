"""Analysis of a power-step trace: per-GPU load power, brake episodes, clock sag, drop-outs,
and the correlation that decides between node power delivery and one GPU.

Pure: a parsed `PowerTrace` and thresholds in, a `StepAnalysis` out. The check
(clusterkit/checks/power.py) turns it into findings.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from clusterkit.parsers.gpu_records import BRAKE_MASK, CLOCK_REASON_BITS
from clusterkit.parsers.power_trace import PowerTrace, Sample

HW_THERMAL = CLOCK_REASON_BITS["hw_thermal"]
SW_POWER_CAP = CLOCK_REASON_BITS["sw_power_cap"]


@dataclass
class StepParams:
    target_w: float | None           # the GPU model's power target (profile power.target_w)
    min_load_fraction: float         # reach at least this x target under load
    in_phase_gpu_fraction: float     # this share of a node's GPUs braking together = node-wide
    coincidence_window_s: float      # "the same instant"
    ramp_exclude_s: float            # ignore this long after each idle->load edge
    max_clock_sag_percent: float
    min_sample_hz: float


@dataclass
class Episode:
    start: float
    end: float


@dataclass
class GpuStep:
    index: int
    load_power_w: float | None = None     # 90th percentile of steady load samples
    goal_w: float | None = None           # min(target, enforced limit) x fraction
    brakes: list[Episode] = field(default_factory=list)        # HW power brake / HW slowdown
    thermal: list[Episode] = field(default_factory=list)       # HW thermal slowdown
    sag_percent: float | None = None      # worst SM clock drop below the median steady load clock
    dropped_at: float | None = None       # first instant the GPU stopped answering
    drop_reason: str | None = None
    sample_hz: float | None = None
    brake_counter_ms: float | None = None # HW power brake time NVML counted over the step (None: no counter)

    @property
    def reached(self) -> bool | None:
        if self.load_power_w is None or self.goal_w is None:
            return None
        return self.load_power_w >= self.goal_w


@dataclass
class StepAnalysis:
    gpus: dict[int, GpuStep]
    in_phase_instants: list[float]         # node-wide brake instants
    in_phase_drop: bool                    # most GPUs dropped together
    duration_s: float
    needed_gpus: int                       # GPUs braking at once that make it node-wide

    @property
    def hidden_brakes(self) -> list[int]:
        """GPUs whose brake counter grew although no sample showed a brake (shorter than the interval)."""
        return [i for i, st in self.gpus.items() if not st.brakes and (st.brake_counter_ms or 0) > 0]

    @property
    def node_wide(self) -> bool:
        return bool(self.in_phase_instants) or self.in_phase_drop


def _episodes(samples: list[Sample], mask: int, gap_s: float) -> list[Episode]:
    out: list[Episode] = []
    for s in samples:
        if s.reasons is None or not s.reasons & mask:
            continue
        if out and s.t - out[-1].end <= gap_s:
            out[-1].end = s.t
        else:
            out.append(Episode(s.t, s.t))
    return out


def _steady_load(samples: list[Sample], ramp_s: float) -> list[Sample]:
    """Load samples at least `ramp_s` after the last idle->load edge."""
    out, edge, prev = [], None, "idle"
    for s in samples:
        if s.phase == "load" and prev != "load":
            edge = s.t
        prev = s.phase
        if s.phase == "load" and edge is not None and s.t - edge >= ramp_s and not s.error and s.power_w is not None:
            out.append(s)
    return out


def _percentile(vals: list[float], q: float) -> float:
    v = sorted(vals)
    k = (len(v) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def analyze_trace(trace: PowerTrace, p: StepParams, lost_at: dict[int, tuple[float, str]] | None = None) -> StepAnalysis:
    """`lost_at`: GPU index -> (trace time, why) from the kernel log (Xid 79/119 during the test)."""
    per_gpu = trace.by_gpu()
    t0 = min(s.t for s in trace.samples)
    t_end = max(s.t for s in trace.samples)
    duration = max(t_end - t0, 1e-9)
    result: dict[int, GpuStep] = {}
    for idx, samples in sorted(per_gpu.items()):
        samples.sort(key=lambda s: s.t)
        st = GpuStep(idx)
        good = [s for s in samples if not s.error and s.power_w is not None]
        span = samples[-1].t - samples[0].t if len(samples) > 1 else 0.0
        st.sample_hz = (len(samples) - 1) / span if span > 0 else 0.0
        gap = 2.5 / max(st.sample_hz, 1e-9)
        st.brakes = _episodes(good, BRAKE_MASK, gap)
        st.thermal = _episodes(good, HW_THERMAL, gap)
        steady = _steady_load(samples, p.ramp_exclude_s)
        if steady:
            st.load_power_w = round(_percentile([s.power_w for s in steady if s.power_w is not None], 0.9), 1)
            # Sag: a steady-load clock well below the median, at an instant the GPU was NOT at its power cap
            # (capped GPUs trade clock for power by design).
            clocks = [s.sm_clock_mhz for s in steady if s.sm_clock_mhz]
            uncapped = [s.sm_clock_mhz for s in steady if s.sm_clock_mhz and not (s.reasons or 0) & SW_POWER_CAP]
            if len(clocks) >= 5 and uncapped:
                med = statistics.median(clocks)
                st.sag_percent = round(max(0.0, 100.0 * (med - min(uncapped)) / med), 1) if med > 0 else None
        gpu_meta = trace.gpus.get(idx)
        if gpu_meta and "hw_power_brake" in gpu_meta.event_time_delta_ns:
            st.brake_counter_ms = round(gpu_meta.event_time_delta_ns["hw_power_brake"] / 1e6, 1)
        caps = [c for c in (p.target_w, gpu_meta.power_limit_w if gpu_meta else None) if c]
        st.goal_w = round(min(caps) * p.min_load_fraction, 1) if caps else None
        # A GPU stops answering: an error row, or its samples end well before the others'.
        err = next((s for s in samples if s.error), None)
        if err is not None:
            st.dropped_at, st.drop_reason = err.t, err.error
        elif samples and t_end - samples[-1].t > max(3 * gap, 1.0):
            st.dropped_at, st.drop_reason = samples[-1].t, "no samples after this instant"
        elif not samples:
            st.dropped_at, st.drop_reason = t0, "no samples"
        if lost_at and idx in lost_at:
            t, why = lost_at[idx]
            if st.dropped_at is None or t < st.dropped_at:
                st.dropped_at = t
            st.drop_reason = why
        result[idx] = st
    n = len(result)
    needed = max(2, math.ceil(p.in_phase_gpu_fraction * n))
    instants: list[float] = []
    if n >= 2:
        starts = sorted(e.start for st in result.values() for e in st.brakes)
        w = p.coincidence_window_s
        for t in starts:
            if instants and t - instants[-1] <= w:
                continue
            braking = sum(1 for st in result.values()
                          if any(e.start - w <= t <= e.end + w for e in st.brakes))
            if braking >= needed:
                instants.append(t)
    drops = sorted(st.dropped_at for st in result.values() if st.dropped_at is not None)
    in_phase_drop = n >= 2 and any(
        sum(1 for d in drops if t <= d <= t + max(1.0, p.coincidence_window_s)) >= needed for t in drops)
    return StepAnalysis(result, instants, in_phase_drop, duration, needed)
