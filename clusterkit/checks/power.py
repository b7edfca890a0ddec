"""power.* checks: power limits, PSU state from the BMC, and the power-step verdict.

The step verdict correlates: every GPU of a node braking (or dropping) in the
same instants points at the node's power delivery (PSUs, cabling, BIOS power
settings); one GPU alone points at that GPU or its board.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from clusterkit.checks._gpu_source import (
    GPU_SOURCES, gpu_profile, per_gpu_check, no_gpu_skip, not_collected, power_trace, read_inventory,
)
from clusterkit.checks._power_analysis import StepAnalysis, StepParams, analyze_trace
from clusterkit.checks.registry import check
from clusterkit.parsers import ParseError
from clusterkit.parsers.dmidecode_bios import DMIDECODE_BIOS as BIOS
from clusterkit.parsers.gpu_records import GpuInventory, norm_bus_id
from clusterkit.checks._bmc_source import (BMC_SOURCES, is_psu, is_redundancy, psu_event_states, read_bmc,
                                           redundancy_state, row, sensor_psu_problems, when)
from clusterkit.parsers.ipmi import IPMI_SDR_PSU as SDR, IPMI_SEL as SEL
from clusterkit.parsers.kernel_log import KERNEL_LOG
from clusterkit.parsers.nvml_json import NVML
from clusterkit.parsers.power_trace import POWER_TRACE as TRACE, PowerTrace
from clusterkit.results import CheckResult, Finding

if TYPE_CHECKING:
    from clusterkit.analysis import NodeContext

NODE_POWER = "node power delivery (PSUs, power cabling, BIOS power settings)"


@per_gpu_check("power.limits", needs=GPU_SOURCES, needs_any=True, params={"power.min_limit_w": float})
def power_limits(ctx: NodeContext, inv: GpuInventory) -> CheckResult:
    """Enforced power limit lower than the profile's (a configuration, not a fault)."""
    cid = "power.limits"
    p = gpu_profile(ctx, inv)
    want = p.get("power.min_limit_w")
    if want is None:
        return CheckResult.skip(cid, f"profile {p.name} sets no power.min_limit_w")
    findings = [Finding("POWER_LIMIT_LOW", "warn", g.label(),
                        f"{g.label()}: power limit {g.power_limit_w:.0f} W is below the profile's {want:.0f} W",
                        observed=g.power_limit_w, limit=want, unit="W",
                        action="restore the default limit (`nvidia-smi -pl` / remove the cap in provisioning) unless the cap is intended")
                for g in inv.gpus if g.power_limit_w is not None and g.power_limit_w < want]
    known = [g for g in inv.gpus if g.power_limit_w is not None]
    if not known:
        return CheckResult.skip(cid, "the GPU evidence has no power limits")
    return CheckResult.from_findings(cid, findings, f"power limits >= {want:.0f} W on {len(known)} GPUs")


# ---------------------------------------------------------------- PSUs

def _short(sensor: str) -> str:
    """'Power Supply PS2 Status' -> 'PS2': the label on the chassis."""
    m = re.search(r"\b(PSU?\s*\d+)\b", sensor, re.I)
    return m.group(1).replace(" ", "") if m else sensor


def psu_findings(ctx: NodeContext) -> list[Finding]:
    """PSU problems from every BMC source the node has: sensors (a state in the event text counts, not only
    the status column) and the event log (a PSU event still asserted fails; one asserted then cleared is history)."""
    bmc = read_bmc(ctx)
    out: list[Finding] = list(bmc.unusable)
    named: set[str] = set()
    for s in bmc.sensors:
        if is_redundancy(s):
            state = redundancy_state(s)
            if state and s.name not in named:
                named.add(s.name)
                out.append(Finding("POWER_PSU_REDUNDANCY_LOST", "fail", s.name, f"{s.name}: {state}", observed=state,
                                   limit="Fully Redundant", evidence=f"{s.name} | {s.status} | {s.reading}",
                                   action="restore the failed PSU: the node has no power headroom"))
        elif is_psu(s) and (problems := sensor_psu_problems(s)) and s.name not in named:
            named.add(s.name)
            status_note = f" although its status column says '{s.status}'" if s.status == "ok" else ""
            out.append(Finding("POWER_PSU_FAILED", "fail", s.name, f"{s.name}: {'; '.join(problems)}{status_note}",
                               observed="; ".join(problems), limit="Presence detected, no fault",
                               action=f"check {_short(s.name)}'s AC feed and cord, then reseat or replace it",
                               evidence=f"{s.name} | {s.status} | {', '.join(s.states) or s.reading}"))
    for sensor, st in psu_event_states(bmc.events).items():
        if any(n in sensor or sensor in n for n in named):
            continue
        action = f"check {_short(sensor)}'s AC feed and cord, then reseat or replace it"
        if st.opened is not None:
            e = st.opened
            out.append(Finding("POWER_PSU_EVENT", "fail", sensor,
                               f"BMC event log: {sensor}: {e.event} ({when(e)}), not cleared",
                               observed=e.event, action=action, evidence=row(e)))
        if st.history:
            a, d = st.history[-1]
            since = f"asserted {when(a)}, " if a is not None else ""
            out.append(Finding("POWER_PSU_EVENT_HISTORY", "warn", sensor,
                               f"BMC event log: {sensor}: {d.event} {since}cleared {when(d)}"
                               + (f" ({len(st.history)} times)" if len(st.history) > 1 else "") + ": history, not a current fault",
                               observed=len(st.history), unit="events", evidence=row(d),
                               action=f"{_short(sensor)} lost power or faulted and recovered: check its feed (PDU, "
                                      "circuit) and cord; replace the PSU if it happens again"))
    return out


@check("power.psu", needs=BMC_SOURCES + (NVML,), needs_any=True)
def power_psu(ctx: NodeContext) -> CheckResult:
    """PSU presence, failure and redundancy from the BMC (sensor event text included, not only the status column)."""
    cid = "power.psu"
    skip = no_gpu_skip(ctx, cid)
    if skip is not None:
        return skip
    if not any(ctx.exists(k) for k in BMC_SOURCES):
        return CheckResult.skip(cid, f"not collected: {SDR.path}, {SEL.path}")
    findings = psu_findings(ctx)
    psus = [s for s in read_bmc(ctx).sensors if is_psu(s) and not is_redundancy(s)]
    return CheckResult.from_findings(cid, findings, f"{len(psus)} PSUs present, none failed" if psus else
                                     "no open PSU event in the BMC log",
                                     {"power_psus_failed": sum(1 for f in findings if f.code == "POWER_PSU_FAILED")})


# ---------------------------------------------------------------- power step

_STEP_KEYS = ("power.min_load_fraction", "power.in_phase_gpu_fraction", "power.coincidence_window_s",
              "power.ramp_exclude_s", "power.max_clock_sag_percent", "power.min_sample_hz")


def _params(ctx: NodeContext) -> StepParams | None:
    """The step thresholds from the profile (base.toml sets them all), None when one is missing."""
    vals = [ctx.profile.get(k) for k in _STEP_KEYS]
    if any(v is None for v in vals):
        return None
    target = ctx.profile.get("power.target_w")
    return StepParams(float(target) if target is not None else None, *(float(v) for v in vals))


def _kernel_losses(ctx: NodeContext, trace: PowerTrace) -> dict[int, tuple[float, str]]:
    """Xid 79 (fallen off the bus) / 119 (GSP timeout) logged during the test, by trace GPU index."""
    start, end = trace.fmeta("uptime_start_s"), trace.fmeta("uptime_end_s")
    if start is None or not ctx.exists(KERNEL_LOG):
        return {}
    from clusterkit.checks.gpu_xid import node_xid_events

    try:
        events = node_xid_events(ctx)
    except ParseError:
        return {}
    by_bus = {norm_bus_id(g.bus_id): i for i, g in trace.gpus.items() if g.bus_id}
    t0_uptime = trace.fmeta("uptime_t0_s")
    if t0_uptime is None:  # older traces: uptime was read just before sampling began
        t0_uptime = start - float(trace.t_s.min())
    out: dict[int, tuple[float, str]] = {}
    for e in events:
        if e.xid not in (79, 119) or e.seconds is None or e.bus_id not in by_bus:
            continue
        if start <= e.seconds <= (end if end is not None else start) + 30.0:
            idx = by_bus[e.bus_id]
            if idx not in out:
                out[idx] = (e.seconds - t0_uptime, f"Xid {e.xid} in the kernel log")
    return out


def _bios(ctx: NodeContext) -> str | None:
    if not ctx.exists(BIOS):
        return None
    try:
        return ctx.parsed(BIOS).version
    except ParseError:
        return None


@check("power.step", needs=(TRACE, NVML), needs_any=True,
       params={"power.target_w": float, "power.min_load_fraction": float, "power.in_phase_gpu_fraction": float,
               "power.coincidence_window_s": float, "power.ramp_exclude_s": float,
               "power.max_clock_sag_percent": float, "power.min_sample_hz": float})
def power_step(ctx: NodeContext) -> CheckResult:
    """Synchronized square-wave load on all GPUs: power reached, brakes, clock sag, drop-outs, and the verdict."""
    cid = "power.step"
    action = "rerun the power step (suite full)"
    res = no_gpu_skip(ctx, cid) or not_collected(ctx, cid, TRACE)
    if res is not None:
        return res
    try:
        trace = power_trace(ctx)
    except ParseError as e:
        return CheckResult.error(cid, f"{TRACE.path}: {e}", action=action)
    if trace.meta.get("error"):
        return CheckResult.error(cid, f"power step did not run: {trace.meta['error']}", code="POWER_STEP_NOT_RUN",
                                 component="power step", action="install PyTorch (or a CUDA burn tool) on the node and rerun")
    inv, _ = read_inventory(ctx)
    prof = gpu_profile(ctx, inv if inv and inv.gpus else None, [g.name for g in trace.gpus.values()])
    if prof is not ctx.profile:
        ctx = _with_profile(ctx, prof)
    params = _params(ctx)
    if params is None:
        missing = [k for k in _STEP_KEYS if ctx.profile.get(k) is None]
        return CheckResult.error(cid, f"profile {ctx.profile.name} lacks {', '.join(missing)}", code="PROFILE_INCOMPLETE",
                                 component=f"profile {ctx.profile.name}", action="inherit from base or set the keys in [power]")
    a = analyze_trace(trace, params, _kernel_losses(ctx, trace))
    return _verdict(ctx, cid, trace, a)


def _with_profile(ctx: NodeContext, prof: Any) -> NodeContext:
    from dataclasses import replace

    return replace(ctx, profile=prof)


def _label(trace: PowerTrace, i: int) -> str:
    g = trace.gpus.get(i)
    return g.label() if g else f"GPU {i}"


def _verdict(ctx: NodeContext, cid: str, trace: PowerTrace, a: StepAnalysis) -> CheckResult:
    p = ctx.profile
    findings: list[Finding] = []
    n = len(a.gpus)
    psu = [f for f in psu_findings(ctx) if f.severity == "fail"]
    bios = _bios(ctx)
    node_wide = a.node_wide
    # Consequences of a node-wide problem are shown, but not as GPU faults.
    gpu_sev = "info" if node_wide else "fail"
    if node_wide:
        what = []
        if a.in_phase_instants:
            braking = sorted({i for i, st in a.gpus.items() if st.brakes})
            what.append(f"{len(braking)} of {n} GPUs hit HW power brake/slowdown in the same "
                        f"{len(a.in_phase_instants)} instant(s) under the step load")
        if a.in_phase_drop:
            what.append(f"{sum(1 for s in a.gpus.values() if s.dropped_at is not None)} of {n} GPUs dropped out together")
        psu_txt = "; ".join(f.message for f in psu)
        action = ("node power delivery, not the GPUs: check the PSUs"
                  + (f" ({psu_txt})" if psu_txt else "") + ", their AC feeds and power cabling, and the BIOS power settings"
                  + (f"; compare BIOS {bios} with the fleet (gpu.version_drift) and update it" if bios else
                     "; compare the BIOS version with the fleet") + ". Do not RMA GPUs for this.")
        findings.append(Finding(
            "POWER_NODE_DELIVERY", "fail", NODE_POWER, "; ".join(what) + ": the node's power delivery is failing under load",
            observed=len(a.in_phase_instants), unit="in-phase events", action=action,
            evidence=("in-phase instants (s): " + ", ".join(f"{t:.2f}" for t in a.in_phase_instants[:10])
                      + (f"; PSU: {psu_txt}" if psu_txt else "") + (f"; BIOS {bios}" if bios else ""))))
    for i, st in sorted(a.gpus.items()):
        lab = _label(trace, i)
        if st.dropped_at is not None:
            findings.append(Finding("POWER_GPU_DROPPED", gpu_sev if node_wide else "fail", lab,
                                    f"{lab} stopped answering {st.dropped_at:.1f} s into the power step ({st.drop_reason})",
                                    observed=st.drop_reason,
                                    action="this GPU alone: check its board power connectors and reseat it; RMA if it recurs "
                                           "(Xid 79 = fallen off the bus)"))
        if st.brakes and not node_wide:
            findings.append(Finding("POWER_BRAKE_UNDER_LOAD", "fail", lab,
                                    f"{lab} alone hit HW power brake/slowdown {len(st.brakes)} time(s) under the step load",
                                    observed=len(st.brakes), limit=0, unit="events",
                                    action="this GPU or its board: reseat it and check its power connectors/baseboard slot; "
                                           "RMA if it repeats on a healthy node",
                                    evidence="episodes (s): " + ", ".join(f"{e.start:.2f}-{e.end:.2f}" for e in st.brakes[:8])))
        if st.thermal:
            findings.append(Finding("POWER_HW_THERMAL_UNDER_LOAD", "fail", lab,
                                    f"{lab} hit HW thermal slowdown {len(st.thermal)} time(s) under load",
                                    observed=len(st.thermal), unit="events", action="check fans, airflow and the heatsink"))
        if st.reached is False:
            findings.append(Finding("POWER_LOAD_BELOW_TARGET", gpu_sev, lab,
                                    f"{lab} reached {st.load_power_w:.0f} W under load, below {st.goal_w:.0f} W "
                                    f"({p.get('power.min_load_fraction')} x target)",
                                    observed=st.load_power_w, limit=st.goal_w, unit="W",
                                    action="check power.limits and clock events; a GPU that cannot draw its target under GEMM load is degraded"))
        max_sag = p.get("power.max_clock_sag_percent")
        if st.sag_percent is not None and max_sag is not None and st.sag_percent > max_sag:
            findings.append(Finding("POWER_CLOCK_SAG", "info" if node_wide else "warn", lab,
                                    f"{lab}: SM clock sagged {st.sag_percent:.0f}% below its steady load clock",
                                    observed=st.sag_percent, limit=max_sag, unit="%",
                                    action="look at the brake/thermal findings for the same GPU"))
    # A GPU that dropped out stops sampling: its rate says nothing about the sampler.
    rates = [st.sample_hz or 0.0 for st in a.gpus.values() if st.dropped_at is None] or \
        [st.sample_hz or 0.0 for st in a.gpus.values()]
    hz = min(rates) if rates else 0.0
    hidden = a.hidden_brakes
    if hidden and not node_wide:
        ms = ", ".join(f"GPU {i}: {a.gpus[i].brake_counter_ms:g} ms" for i in hidden[:8])
        if len(hidden) >= a.needed_gpus:
            findings.append(Finding(
                "POWER_BRAKE_BETWEEN_SAMPLES", "warn", NODE_POWER,
                f"{len(hidden)} of {n} GPUs accumulated HW power brake time during the step that no "
                f"{hz:.0f} Hz sample caught: likely short in-phase brakes of the node's power delivery",
                observed=len(hidden), unit="GPUs",
                action="rerun the step at a higher sample rate (power.sample_hz) to time them; meanwhile check the "
                       "PSUs, their feeds and the BIOS power settings", evidence=ms))
        else:
            for i in hidden:
                findings.append(Finding(
                    "POWER_BRAKE_BETWEEN_SAMPLES", "warn", _label(trace, i),
                    f"{_label(trace, i)} accumulated {a.gpus[i].brake_counter_ms:g} ms of HW power brake that no sample caught",
                    observed=a.gpus[i].brake_counter_ms, unit="ms",
                    action="rerun at a higher sample rate; if it stays alone, reseat the GPU and check its power connectors"))
    min_hz = p.get("power.min_sample_hz")
    if min_hz is not None and hz < min_hz:
        findings.append(Finding("POWER_TRACE_SLOW", "warn", "power step sampler",
                                f"sampled at {hz:.1f} Hz, below {min_hz:.0f} Hz: short brakes may fall between samples",
                                observed=round(hz, 1), limit=min_hz, unit="Hz", action="rerun with a higher sample rate"))
    if trace.power_source != "instant":
        findings.append(Finding("POWER_TRACE_AVERAGED", "info", "power step sampler",
                                f"power read as '{trace.power_source}' (NVML_FI_DEV_POWER_INSTANT unavailable): "
                                "dips shorter than about a second may be hidden"))
    if p.get("power.target_w") is None:
        findings.append(Finding("POWER_TARGET_UNKNOWN", "info", "profile",
                                f"profile {p.name} sets no power.target_w: load power not judged"))
    loads = [st.load_power_w for st in a.gpus.values() if st.load_power_w is not None]
    metrics: dict[str, Any] = {
        "power_step_gpus": n,
        "power_step_sample_hz": round(hz, 1),
        "power_step_in_phase_events": len(a.in_phase_instants),
        "power_step_brake_events": sum(len(st.brakes) for st in a.gpus.values()),
    }
    if loads:
        metrics["power_step_min_load_w"] = min(loads)
        metrics["power_step_total_load_w"] = round(sum(loads), 1)
    ok = (f"{n} GPUs stepped {a.duration_s:.0f} s at {hz:.0f} Hz ({trace.power_source} power): "
          f"all reached >= {p.get('power.min_load_fraction')} x target, no brake, no drop-out")
    return CheckResult.from_findings(cid, findings, ok, metrics)

