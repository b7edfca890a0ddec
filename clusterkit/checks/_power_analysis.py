"""Analysis of a power-step trace: per-GPU load power, brake episodes, clock sag, drop-outs,
and the correlation that decides between node power delivery and one GPU.

Pure: a parsed `PowerTrace` and thresholds in, a `StepAnalysis` out. The check
(clusterkit/checks/power.py) turns it into findings. Per-GPU work is on the trace's numpy
columns; percentiles and medians are taken exactly as the row-by-row version took them
(same formulas on the same floats), so verdicts did not move when the columns came in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from clusterkit.parsers.gpu_records import BRAKE_MASK, CLOCK_REASON_BITS
from clusterkit.parsers.power_trace import PowerTrace

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


def _episodes(t: np.ndarray, hit: np.ndarray, gap_s: float) -> list[Episode]:
    """Runs of samples (times `t`, in order) where `hit`, merged while consecutive hits are <= gap_s apart."""
    times = t[hit]
    if not times.size:
        return []
    breaks = np.flatnonzero(np.diff(times) > gap_s)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [times.size - 1]))
    return [Episode(float(times[a]), float(times[b])) for a, b in zip(starts, ends)]


def _steady_load(t: np.ndarray, load: np.ndarray, usable: np.ndarray, ramp_s: float) -> np.ndarray:
    """Which samples are load samples at least `ramp_s` after the last idle->load edge (and usable)."""
    edge = load & ~np.concatenate(([False], load[:-1]))      # the first sample counts as after idle
    last_edge = np.maximum.accumulate(np.where(edge, np.arange(t.size), -1)) if t.size else np.zeros(0, int)
    seen = last_edge >= 0
    since = np.where(seen, t - t[np.maximum(last_edge, 0)], -np.inf)
    return load & seen & (since >= ramp_s) & usable


def _percentile(vals: np.ndarray, q: float) -> float:
    v = np.sort(vals)
    k = (v.size - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    a, b = float(v[lo]), float(v[hi])
    return a + (b - a) * (k - lo)


def _median(vals: np.ndarray) -> float:
    """statistics.median, on floats."""
    v = np.sort(vals)
    n = v.size
    return float(v[n // 2]) if n % 2 else (float(v[n // 2 - 1]) + float(v[n // 2])) / 2


def analyze_trace(trace: PowerTrace, p: StepParams, lost_at: dict[int, tuple[float, str]] | None = None) -> StepAnalysis:
    """`lost_at`: GPU index -> (trace time, why) from the kernel log (Xid 79/119 during the test)."""
    t0 = float(trace.t_s.min())
    t_end = float(trace.t_s.max())
    duration = max(t_end - t0, 1e-9)
    order = np.lexsort((trace.t_s, trace.gpu))          # by GPU, then time; ties keep file order
    gpu = trace.gpu[order]
    bounds = np.flatnonzero(np.diff(gpu)) + 1
    rows = {int(trace.gpu[r[0]]): r for r in np.split(order, bounds) if r.size}
    erred = np.zeros(trace.n_samples, dtype=bool)
    erred[list(trace.errors)] = True
    result: dict[int, GpuStep] = {}
    for idx in sorted(set(trace.gpus) | set(rows)):
        r = rows.get(idx, order[:0])
        t, load, power, clock = trace.t_s[r], trace.load[r].astype(bool), trace.power_w[r], trace.sm_clock_mhz[r]
        reasons = np.where(trace.reasons[r] < 0, 0, trace.reasons[r])
        err = erred[r]
        st = GpuStep(idx)
        n = int(r.size)
        span = float(t[-1]) - float(t[0]) if n > 1 else 0.0
        st.sample_hz = (n - 1) / span if span > 0 else 0.0
        gap = 2.5 / max(st.sample_hz, 1e-9)
        good = ~err & ~np.isnan(power)
        st.brakes = _episodes(t, good & (reasons & BRAKE_MASK != 0), gap)
        st.thermal = _episodes(t, good & (reasons & HW_THERMAL != 0), gap)
        steady = _steady_load(t, load, good, p.ramp_exclude_s)
        if steady.any():
            st.load_power_w = round(_percentile(power[steady], 0.9), 1)
            # Sag: a steady-load clock well below the median, at an instant the GPU was NOT at its power cap
            # (capped GPUs trade clock for power by design).
            has_clock = steady & ~np.isnan(clock) & (clock != 0)
            clocks = clock[has_clock]
            uncapped = clock[has_clock & (reasons & SW_POWER_CAP == 0)]
            if clocks.size >= 5 and uncapped.size:
                med = _median(clocks)
                st.sag_percent = round(max(0.0, 100.0 * (med - float(uncapped.min())) / med), 1) if med > 0 else None
        gpu_meta = trace.gpus.get(idx)
        if gpu_meta and "hw_power_brake" in gpu_meta.event_time_delta_ns:
            st.brake_counter_ms = round(gpu_meta.event_time_delta_ns["hw_power_brake"] / 1e6, 1)
        caps = [c for c in (p.target_w, gpu_meta.power_limit_w if gpu_meta else None) if c]
        st.goal_w = round(min(caps) * p.min_load_fraction, 1) if caps else None
        # A GPU stops answering: an error row, or its samples end well before the others'.
        first_err = np.flatnonzero(err)
        if first_err.size:
            i = int(first_err[0])
            st.dropped_at, st.drop_reason = float(t[i]), trace.errors[int(r[i])]
        elif n and t_end - float(t[-1]) > max(3 * gap, 1.0):
            st.dropped_at, st.drop_reason = float(t[-1]), "no samples after this instant"
        elif not n:
            st.dropped_at, st.drop_reason = t0, "no samples"
        if lost_at and idx in lost_at:
            lt, why = lost_at[idx]
            if st.dropped_at is None or lt < st.dropped_at:
                st.dropped_at = lt
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
