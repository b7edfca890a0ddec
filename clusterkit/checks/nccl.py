"""NCCL collective bandwidth checks: single node, multi-node, fleet-relative, localization.

The gate value is the median bus bandwidth over sizes >= 1 GiB (never the printed
"Avg bus bandwidth", which averages every size from 8 B). Verdicts mean what they say:
- a test that ran and failed (NCCL WARN, Test NCCL/CUDA failure, a crash, an MPI abort)
  fails, naming the first failing line and its likely part (clusterkit/checks/_nccl_failures.py);
- an NCCL WARN the run survives warns; wrong data fails whatever the speed;
- a run that measured nothing (each process alone: busbw 0.00, nranks 1) is an invalid test
  (error), never "bandwidth low";
- the text's own ranks, hosts, largest size and collective decide which figure applies, if any.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from typing import Any, Callable

from clusterkit.checks._nccl_failures import (consequential, failing_hosts, failure_finding, stopped_finding,
                                              warning_findings)
from clusterkit.checks.registry import check
from clusterkit.evidence.bundle import EvidenceError
from clusterkit.parsers import ParseError
from clusterkit.parsers.nccl_tests import ALL_REDUCE, NCCL_LOCALIZE, NcclRun, parse
from clusterkit.profiles import Profile, profile_for_gpu_name
from clusterkit.results import CheckResult, Finding

PATH = ALL_REDUCE.path
# Inside the `_cluster/` bundle: the multi-node run (same kind) and the localization rounds.
CLUSTER_PATH, LOCALIZE_PATH = ALL_REDUCE.path, NCCL_LOCALIZE.path

_BASE_KEYS = {
    "nccl.gate_min_size_mib": float,
    "nccl.multi_node_link_efficiency_fraction": float,
    "nccl.multi_node_warn_fraction": float,
    "nccl.multi_node_fail_fraction": float,
    "nccl.multi_node_assumed_nic_rate_gbps": float,
    "nccl.comparable_collectives": list,
    "nccl.collapse_fraction": float,
    "nccl.floor_collectives": list,
    "nccl.floor_line_rate_fraction": float,
    "nccl.floor_min_peer_chunk_mib": float,
    "nccl.env": dict,
}
_SINGLE_KEYS = {
    "nccl.single_node_gpu_count": int,
    "nccl.single_node_expected_busbw_gbps": float,
    "nccl.single_node_warn_busbw_gbps": float,
    "nccl.single_node_min_busbw_gbps": float,
    "nccl.single_node_ring_expected_busbw_gbps": float,
    "nccl.single_node_ring_warn_busbw_gbps": float,
    "nccl.single_node_ring_min_busbw_gbps": float,
    "nccl.multi_node_nic_count": int,
    "nccl.multi_node_nic_rate_gbps": float,
}
_FLEET_KEYS = {
    "nccl.fleet_warn_below_median_percent": float,
    "nccl.fleet_fail_below_median_percent": float,
    "nccl.fleet_min_nodes": int,
}
_LOCALIZE_KEYS = {"nccl.localize_pass_fraction": float}

ACTION_SINGLE_LOW = (
    "Check the NVLink/NVSwitch path: `nvidia-smi nvlink -s` (every link up at full speed) and "
    "`nvidia-smi nvlink -e` (errors), `nvidia-smi topo -m` (all GPU pairs NV#), nvidia-fabricmanager "
    "running, and GPU clocks/throttle reasons (gpu.* checks); rerun. A GPU whose links are down or "
    "erroring: reseat it or RMA it/the baseboard.")
ACTION_NVLS = (" On H100, ~370 GB/s means NVLS is not in use: NCCL >= 2.17, NCCL_NVLS_ENABLE not 0, "
               "fabric manager running.")
ACTION_MULTI_LOW = (
    "Localize it (nccl.localize: group tests, then per-rail tests name the node or NIC). Meanwhile check "
    "every compute NIC is Active at its rated speed (fabric.* checks, ibstat), that NCCL_IB_HCA lists "
    "every rail, that GPUDirect RDMA is active (nvidia_peermem loaded, NCCL INFO shows GDRDMA) and PCIe "
    "ACS is off on the GPU-NIC switches.")
ACTION_VALIDATION = (
    "Wrong results are data corruption: drain the node(s) in this run. Look for Xid 48/63/64/74/79/94/95 in "
    "dmesg, NVLink errors (`nvidia-smi nvlink -e`) and ECC/row-remap state (gpu.* checks); run "
    "`dcgmi diag -r 3`. Rerun the test: if it repeats, RMA the GPU that the diag names.")
ACTION_NO_RESULTS = ("The run printed no result: keep the whole output (stdout and stderr) and rerun with "
                     "NCCL_DEBUG=INFO; check the launcher's timeout.")
ACTION_INVALID_MPI = (
    "nccl-tests was built without MPI, so every process that mpirun/srun started ran its own 1-rank test: "
    "rebuild it with `make clean && make MPI=1 MPI_HOME=<your MPI install>` and rerun under the same launcher "
    "(one rank per GPU). If the text holds several separate runs, analyze each on its own.")
ACTION_FLOOR = (
    "At this rate the traffic is not on the RDMA fabric: check the NCCL INFO NET lines (NET/Socket means TCP; "
    "NET/IB or the site's plugin, e.g. aws-ofi-nccl for Slingshot/EFA, means RDMA), that NCCL_NET/NCCL_NET_PLUGIN "
    "name a plugin that loads, NCCL_IB_HCA, and GPUDirect RDMA (GDRDMA in NCCL INFO); then every NIC Active at "
    "its rated speed (fabric.* checks).")
ACTION_INVALID_ONE_RANK = (
    "The run had one rank, so nothing crossed NVLink or the network: run with -g <GPUs per node> in one "
    "process, or one rank per GPU under mpirun/srun with an MPI=1 build of nccl-tests.")


@dataclass
class Expectation:
    expected: float
    warn: float
    fail: float
    basis: str          # where the figures come from, for the finding
    floor: bool = False  # a floor only (alltoall, sendrecv): no expected figure


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def has_nccl_values(profile: Profile) -> bool:
    return profile.get("nccl.single_node_expected_busbw_gbps") is not None or \
        profile.get("nccl.multi_node_nic_count") is not None


def judging_profile(profile: Profile, run: NcclRun) -> tuple[Profile, str]:
    """The node's profile when it has nccl figures, else the one the output's GPU names point to."""
    if has_nccl_values(profile):
        return profile, f"profile {profile.name}"
    for name in run.gpu_names:
        try:
            p = profile_for_gpu_name(name)
        except Exception:  # a broken profile file is reported by the profile loader elsewhere
            p = None
        if p is not None and has_nccl_values(p):
            return p, f"profile {p.name}, picked from the GPU name '{name}' in the output"
    return profile, f"profile {profile.name}"


def _nic_list(run: NcclRun) -> list[str]:
    if run.nics:
        return list(run.nics)
    hca = run.env.get("NCCL_IB_HCA", "")
    if hca and not hca.startswith("^"):
        return [h.split(":")[0] for h in hca.lstrip("=").split(",") if h.strip()]
    return []


def network_expectation(profile: Profile, declared: dict[str, Any], run: NcclRun) -> Expectation:
    """Expected multi-node busbw: NICs x rate x efficiency, NICs and rate from the inventory,
    else the profile's reference network, else the output's NIC list at the assumed minimum rate."""
    eff = float(profile.get("nccl.multi_node_link_efficiency_fraction", 0.94))
    nics: int | None = None
    rate: float | None = None
    if declared.get("ib_devices") and declared.get("ib_rate_gbps"):
        nics, rate = len(declared["ib_devices"]), float(declared["ib_rate_gbps"])
        basis = f"inventory: {nics} x {rate:g} Gb/s InfiniBand"
    elif declared.get("roce_interfaces") and declared.get("roce_rate_gbps"):
        nics, rate = len(declared["roce_interfaces"]), float(declared["roce_rate_gbps"])
        basis = f"inventory: {nics} x {rate:g} Gb/s RoCE"
    elif profile.get("nccl.multi_node_nic_count") and profile.get("nccl.multi_node_nic_rate_gbps"):
        nics, rate = int(profile.get("nccl.multi_node_nic_count")), float(profile.get("nccl.multi_node_nic_rate_gbps"))
        basis = f"profile {profile.name} reference network: {nics} x {rate:g} Gb/s"
    else:
        listed = _nic_list(run)
        nics = max(1, len(listed))
        rate = float(profile.get("nccl.multi_node_assumed_nic_rate_gbps", 100.0))
        basis = (f"{nics} NIC(s) seen in the output ({', '.join(listed) or 'none listed'}) at an assumed "
                 f"{rate:g} Gb/s each (declare ib_devices/ib_rate_gbps in the inventory for a sharper figure)")
    per_node = None
    if run.ranks and run.nodes:
        per_node = max(1, run.ranks // run.nodes)
        if per_node < nics:  # one GPU drives about one NIC
            basis += f", {per_node} GPU(s) per node drive {per_node} NIC(s)"
            nics = per_node
    expected = nics * rate / 8.0 * eff
    return Expectation(expected, expected * float(profile.get("nccl.multi_node_warn_fraction", 0.9)),
                       expected * float(profile.get("nccl.multi_node_fail_fraction", 0.75)),
                       basis + f", {eff:g} of line rate per NIC")


def single_expectation(profile: Profile, run: NcclRun, *, prefer_ring: bool = False) -> Expectation | None:
    ring = prefer_ring or (run.env.get("NCCL_ALGO") or "").strip().upper() == "RING"
    pre = "nccl.single_node_ring_" if ring and profile.get("nccl.single_node_ring_min_busbw_gbps") else "nccl.single_node_"
    exp, warn, fail = (profile.get(pre + k) for k in ("expected_busbw_gbps", "warn_busbw_gbps", "min_busbw_gbps"))
    if fail is None:
        return None
    exp = exp if exp is not None else fail
    warn = warn if warn is not None else fail
    label = "NCCL_ALGO=RING figures" if pre.endswith("ring_") else "single-node figures"
    return Expectation(float(exp), float(warn), float(fail), f"{label}")


def collective_expectation(profile: Profile, declared: dict[str, Any], run: NcclRun,
                           is_multi: bool) -> tuple[Expectation | None, str]:
    """The figures a run is judged by, for its collective; (None, why) when none apply.

    all_reduce: the profile's figures. Collectives the profile lists as comparable (all_gather,
    reduce_scatter, broadcast, reduce: their busbw reaches all_reduce's ceiling on NVLink and over
    the network): the all-reduce fail line only, from the ring figures where the profile has them
    (NVLS speeds up all_reduce), because at a given size their per-rank chunk is smaller and the
    curve ramps later. Others (alltoall, sendrecv, an unnamed table) have other ceilings: not judged."""
    coll = run.collective
    if coll == "all_reduce":
        return (network_expectation(profile, declared, run) if is_multi else single_expectation(profile, run)), ""
    if coll is not None and coll in (profile.get("nccl.comparable_collectives") or []):
        base = network_expectation(profile, declared, run) if is_multi else single_expectation(profile, run,
                                                                                               prefer_ring=True)
        if base is None:
            return None, ""
        return Expectation(base.expected, base.fail, base.fail,
                           base.basis + f"; {coll} is held to the all-reduce fail line only"), ""
    if coll is None:
        return None, ("the output does not name its collective and its table fits several (all_gather and "
                      "alltoall print the same columns; sendrecv has neither reduction nor root)")
    if is_multi and coll in (profile.get("nccl.floor_collectives") or []):
        return network_floor(profile, declared, run)
    return None, f"{coll} has no figure in the profile (its busbw ceiling differs from all_reduce's)"


def network_floor(profile: Profile, declared: dict[str, Any], run: NcclRun) -> tuple[Expectation | None, str]:
    """Multi-node alltoall/sendrecv: no expected figure (congestion and the per-peer message size set it),
    only a floor, a fraction of ONE NIC's line rate per GPU (each GPU's traffic leaves through about one
    NIC). The rate comes from the inventory, else the slowest current rate (never the profile's reference
    network, which the site may not have). alltoall's per-peer chunk is size / ranks: when that is small at
    the gate sizes the test is latency-bound (thousands of ranks), so no floor applies."""
    frac = float(profile.get("nccl.floor_line_rate_fraction", 0.1))
    if declared.get("ib_devices") and declared.get("ib_rate_gbps"):
        rate, basis = float(declared["ib_rate_gbps"]), "inventory: {:g} Gb/s InfiniBand NIC per GPU"
    elif declared.get("roce_interfaces") and declared.get("roce_rate_gbps"):
        rate, basis = float(declared["roce_rate_gbps"]), "inventory: {:g} Gb/s RoCE NIC per GPU"
    else:
        rate = float(profile.get("nccl.multi_node_assumed_nic_rate_gbps", 100.0))
        basis = ("an assumed {:g} Gb/s NIC per GPU, the slowest current rate (declare ib_devices/ib_rate_gbps "
                 "in the inventory for a sharper floor)")
    gate_bytes = int(float(profile.get("nccl.gate_min_size_mib", 1024.0)) * 2**20)
    gate_rows = run.gate_rows(gate_bytes)
    peers = (run.ranks or 1) if run.collective == "alltoall" else 1
    chunk = min((r.size_bytes for r in gate_rows), default=0) / peers
    min_chunk = float(profile.get("nccl.floor_min_peer_chunk_mib", 1.0)) * 2**20
    if chunk < min_chunk:
        return None, (f"{run.collective} sends each peer {chunk / 2**10:.0f} KiB at the gate sizes, below the "
                      f"{min_chunk / 2**20:g} MiB its network floor needs (latency-bound at this scale)")
    floor = frac * rate / 8.0
    return Expectation(floor, floor, floor, f"{frac:g} of " + basis.format(rate), floor=True), ""


def curve_dip(run: NcclRun, min_size_bytes: int = 1 << 20,
              fraction: float = 0.75) -> tuple[int, float, float, bool] | None:
    """The first size >= 1 MiB whose busbw falls below 3/4 of the best smaller size's (a bandwidth curve
    should rise, then plateau): (size, busbw, best before, whether a larger size recovers). A fall that
    does not recover is the start of a collapse, which `curve_collapse` judges."""
    rows = [r for r in run.rows if r.busbw_gbps is not None]
    best = 0.0
    for i, r in enumerate(rows):
        v = r.busbw_gbps or 0.0
        if r.size_bytes >= min_size_bytes and best and v < fraction * best:
            return r.size_bytes, v, best, any((x.busbw_gbps or 0.0) >= best for x in rows[i + 1:])
        best = max(best, v)
    return None


def curve_collapse(run: NcclRun, gate_bytes: int, fraction: float) -> tuple[float, int, float] | None:
    """(peak busbw, its size, gate) when the largest sizes run at under `fraction` of the busbw a smaller
    size reached and never recover: the large-message path is slow, whatever the hardware."""
    gate_rows = run.gate_rows(gate_bytes)
    gate = run.busbw_large_gbps(gate_bytes)
    if not gate_rows or gate is None:
        return None
    smallest_gate = min(r.size_bytes for r in gate_rows)
    before = [r for r in run.rows if r.size_bytes < smallest_gate and r.busbw_gbps is not None]
    if not before:
        return None
    peak = max(before, key=lambda r: r.busbw_gbps or 0.0)
    if gate < fraction * (peak.busbw_gbps or 0.0):
        return peak.busbw_gbps or 0.0, peak.size_bytes, gate
    return None


def _only_warns(run: NcclRun, small: bool) -> str:
    return f"; the sweep stops at {(run.max_size_bytes or 0) / 2**20:g} MiB, so it can only warn" if small else ""


def invalid_reason(run: NcclRun) -> tuple[str, str] | None:
    """(what shows it, the fix) when the run measured nothing: each process ran a 1-rank test."""
    moving = [r for r in run.rows if max(r.oop_algbw_gbps or 0.0, r.ip_algbw_gbps or 0.0) >= 0.1]
    # busbw = algbw x 2(n-1)/n (all_reduce), x (n-1)/n (gather family): 0 only for n = 1
    zero_bus = bool(moving) and run.collective not in ("broadcast", "reduce", "sendrecv") and \
        all((r.busbw_max_gbps or 0.0) == 0.0 for r in moving)
    alone = run.rank0_processes
    if not zero_bus and alone < 2:
        return None
    facts = []
    if zero_bus:
        top = max(max(r.oop_algbw_gbps or 0.0, r.ip_algbw_gbps or 0.0) for r in moving)
        facts.append(f"busbw is 0.00 in all {len(moving)} rows that moved data while algbw reaches {top:.0f} GB/s "
                     "(busbw is 0 only for a single rank)")
    if alone > 1:
        facts.append(f"{alone} processes each report themselves as rank 0")
    if 1 in run.comm_nranks:
        facts.append("NCCL's comm lines say 'nranks 1'")
    if run.sizes_repeated:
        facts.append(f"{run.sizes_repeated} rows repeat a size already printed")
    launched = alone > 1 or run.sizes_repeated > 0 or (run.nodes or 1) > 1
    return "; ".join(facts), ACTION_INVALID_MPI if launched else ACTION_INVALID_ONE_RANK


def judge_run(check_id: str, run: NcclRun, profile: Profile, declared: dict[str, Any],
              component: str, *, multi: bool | None = None, host: str = "node") -> CheckResult:
    """Findings for one nccl-tests run against the profile (single- or multi-node by its ranks and hosts)."""
    prof, label = judging_profile(profile, run)
    gate_bytes = int(float(prof.get("nccl.gate_min_size_mib", 1024.0)) * 2**20)
    metrics = run.metrics(gate_bytes)
    coll = run.collective
    name = (coll or "collective").replace("_", "-")
    test_label = run.label
    findings: list[Finding] = []
    if run.failures and not consequential(run):
        findings.append(failure_finding(run, host, component, test_label))
    findings += warning_findings(run, host)
    if not run.rows:
        if not run.failures and (run.has_header or run.params or run.devices or not run.warnings):
            findings.append(Finding("NCCL_NO_RESULTS", "error", component,
                                    f"{test_label} printed no result rows", action=ACTION_NO_RESULTS))
        summary = "no result rows" if run.failures or not run.warnings else \
            "no result table in this log; NCCL warned and carried on"
        return CheckResult.from_findings(check_id, findings, summary, metrics)
    wrong = run.wrong_total
    if wrong > 0 or run.oob_failed:
        delta = any(r.delta_format for r in run.rows)
        what = (f"{wrong:.0f} result(s) beyond nccl-tests' tolerance in the 'error' column" if delta else
                f"{wrong:.0f} wrong elements")
        findings.append(Finding("NCCL_VALIDATION_FAILED", "fail", component,
                                f"{test_label} returned wrong data ({what}, out-of-bounds "
                                f"{run.oob_values if run.oob_values is not None else 'n/a'})",
                                observed=wrong, limit=0, unit="results" if delta else "elements",
                                action=ACTION_VALIDATION + (" In a multi-node run, the single-node results "
                                                            "(nccl.single_node) show which node returns wrong data."
                                                            if (run.nodes or 1) > 1 or multi else "")))
    elif run.validation is False:
        findings.append(Finding("NCCL_VALIDATION_OFF", "info", component,
                                "validation was off (#wrong N/A): correctness was not checked; run with -c 1"))
    invalid = invalid_reason(run)
    if invalid:
        findings.append(Finding("NCCL_TEST_INVALID", "error", component,
                                f"invalid test, nothing was measured: {invalid[0]}", action=invalid[1],
                                evidence="\n".join(run.failures[:3])))
        metrics["judged_by"] = prof.name
        return CheckResult.from_findings(check_id, findings, "invalid test: each process ran alone", metrics)
    if not run.has_trailer and not run.failures and run.sweep_complete is False:
        findings.append(Finding("NCCL_RUN_INCOMPLETE", "warn", component,
                                f"output ends after {len(run.rows)} sizes (largest "
                                f"{(run.max_size_bytes or 0) / 2**20:g} MiB of maxBytes "
                                f"{run.params.get('maxBytes', 0) / 2**20:g} MiB) without the summary: truncated or "
                                "killed; judged on the sizes present",
                                action="Rerun and keep the whole output; check the launcher's timeout."))
    if run.unreadable_rows:
        findings.append(Finding("NCCL_ROWS_UNREADABLE", "info", component,
                                f"{len(run.unreadable_rows)} table line(s) could not be read (interleaved output?)",
                                evidence="\n".join(run.unreadable_rows[:5])))
    gate = run.busbw_large_gbps(gate_bytes)
    nodes = run.nodes
    want = prof.get("nccl.single_node_gpu_count")
    if multi is not None:
        is_multi = multi
    elif nodes:
        is_multi = nodes > 1
    else:  # no host names: more ranks than one node has GPUs is a multi-node run
        is_multi = bool(want and run.ranks and run.ranks > want)
    exp, not_judged = collective_expectation(prof, declared, run, is_multi)
    ranks_off = False
    if is_multi:
        scope_txt = f"{nodes}-node" if nodes and nodes > 1 else "multi-node"
    else:
        scope_txt = "single-node"
        if exp is not None and want and run.ranks and run.ranks != want:
            findings.append(Finding("NCCL_RANKS_UNEXPECTED", "warn", component,
                                    f"the run used {run.ranks} GPU(s); {label} expects {want} per node: "
                                    "bandwidth not judged", observed=run.ranks, limit=want, unit="GPUs",
                                    action=f"Rerun {test_label} with -g <GPUs per node> (or one rank per GPU)."))
            exp, ranks_off = None, True
    dip = curve_dip(run)
    if dip:
        at, v, best, recovers = dip
        findings.append(Finding(
            "NCCL_BUSBW_CURVE_DIP", "info", component,
            f"busbw {'dips mid-sweep' if recovers else 'falls as messages grow'}: {v:.1f} GB/s at {at / 2**20:g} MiB "
            f"after {best:.1f} at smaller sizes{'' if recovers else ', and no larger size recovers'}",
            observed=round(v, 2), limit=round(best, 2), unit="GB/s",
            action="A dip that recovers at larger sizes points at an algorithm/protocol switch or congestion: "
                   "compare runs with NCCL_ALGO=Ring/Tree, check adaptive routing and PFC/ECN on RoCE." if recovers else
                   "A curve that falls with size and stays down points at a path that degrades under sustained "
                   "traffic: congestion or pause storms (PFC/ECN on RoCE), a link with errors (fabric.* checks); "
                   "rerun, and test the same nodes with other partners."))
    small = (run.max_size_bytes or 0) < gate_bytes
    if small:
        findings.append(Finding("NCCL_GATE_SIZES_SMALL", "info", component,
                                f"largest size is {(run.max_size_bytes or 0) / 2**20:.0f} MiB: no >= "
                                f"{gate_bytes // 2**20} MiB figure exists, so the gate uses the largest sizes present "
                                "and can at most warn (a curve still ramping is not called low)",
                                action="Run with -e 8G (sizes up to at least 1 GiB) for a gate value."))
    ok_summary = f"{scope_txt} {name} busbw {_fmt(gate)} GB/s (median over large sizes; peak {_fmt(run.busbw_peak_gbps)})"
    low = False
    if exp is not None and gate is not None and exp.floor:
        metrics.update(min_busbw_gbps=round(exp.fail, 2))
        ok_summary += f" above the floor {exp.fail:.2f} ({exp.basis})"
        if gate < exp.fail:
            low = True
            findings.append(Finding(
                "NCCL_BUSBW_LOW", "warn" if small else "fail", component,
                f"{scope_txt} {name} busbw {gate:.2f} GB/s is below the floor {exp.fail:.2f} GB/s ({exp.basis})"
                f"{_only_warns(run, small)}",
                observed=round(gate, 2), limit=round(exp.fail, 2), unit="GB/s", action=ACTION_FLOOR))
    elif exp is not None and gate is not None:
        metrics.update(expected_busbw_gbps=round(exp.expected, 1), warn_busbw_gbps=round(exp.warn, 1),
                       min_busbw_gbps=round(exp.fail, 1), ratio_to_expected=round(gate / exp.expected, 3))
        ok_summary += f" vs expected ~{exp.expected:.0f} ({label}; {exp.basis})"
        sev = "fail" if gate < exp.fail else "warn" if gate < exp.warn else None
        if sev and small:
            # a sweep that never reached the gate sizes cannot fail a node, and is only low when it is
            # below the fail line (below the warn line it may simply still be ramping)
            sev = "warn" if gate < exp.fail else None
        if sev:
            low = True
            action = ACTION_MULTI_LOW if is_multi else ACTION_SINGLE_LOW
            if not is_multi and "h100" in prof.name and gate < 0.85 * float(prof.get("nccl.single_node_expected_busbw_gbps") or 0):
                action += ACTION_NVLS
            findings.append(Finding(
                "NCCL_BUSBW_LOW", sev, component,
                f"{scope_txt} {name} busbw {gate:.1f} GB/s is below the {'fail' if sev == 'fail' or small else 'warn'} "
                f"line {exp.fail if sev == 'fail' or small else exp.warn:.1f} (expected ~{exp.expected:.0f}; {label}; "
                f"{exp.basis}){_only_warns(run, small)}",
                observed=round(gate, 2), limit=round(exp.fail if sev == "fail" or small else exp.warn, 1), unit="GB/s",
                action=action))
    elif gate is not None and not ranks_off:
        why = not_judged or f"no {scope_txt} expectation in {label} for {', '.join(run.gpu_names) or 'this hardware'}"
        findings.append(Finding("NCCL_NO_EXPECTATION", "info", component,
                                f"{why}: busbw {gate:.1f} GB/s not judged", observed=round(gate, 2), unit="GB/s",
                                action="Use --profile or add [nccl] figures for this GPU model." if not not_judged
                                else "Keep the command line or '# Collective test starting' line with the output, "
                                     "or judge it against a run of the same collective on a known-good node."))
        ok_summary += f" (not judged: {why})"
    collapse = curve_collapse(run, gate_bytes, float(prof.get("nccl.collapse_fraction", 0.5))) if not low else None
    if collapse:
        peak, at, g = collapse
        # measured at the gate sizes it is the large-message figure itself, and fails like a low one; from a
        # sweep that stops below them it can only warn
        findings.append(Finding(
            "NCCL_BUSBW_LOW", "warn" if small else "fail", component,
            f"{name} busbw collapses at large sizes: {g:.1f} GB/s at the largest sizes after {peak:.1f} at "
            f"{at / 2**20:g} MiB, and never recovers (a bandwidth curve rises, then plateaus)",
            observed=round(g, 2), limit=round(peak * float(prof.get("nccl.collapse_fraction", 0.5)), 1), unit="GB/s",
            action="The large-message path is slow: compare NCCL_ALGO=Ring/Tree and NCCL_PROTO=Simple runs; check "
                   "GPUDirect RDMA (NCCL INFO shows GDRDMA), NIC speed (ibstat), PCIe links (`lspci -vv`) and, on "
                   "RoCE, PFC/ECN (pause storms at large messages)."))
    metrics["judged_by"] = prof.name
    return CheckResult.from_findings(check_id, findings, ok_summary, metrics)


def judge_log(check_id: str, run: NcclRun, profile: Profile, declared: dict[str, Any],
              component: Callable[[NcclRun], str], *, multi: bool | None = None, host: str = "node") -> CheckResult:
    """One result for an nccl-tests log. A log of several tests run back to back (`run.collectives`) is
    judged test by test, each by its own collective's rules, ranks and hosts; the result is the worst of
    them, and every finding names its test."""
    if not run.collectives:
        return judge_run(check_id, run, profile, declared, component(run), multi=multi, host=host)
    findings: list[Finding] = []
    results: list[tuple[NcclRun, CheckResult]] = []
    for i, part in enumerate(run.collectives):
        comp = component(part)
        stopped = stopped_finding(run.collectives, i, comp)
        if stopped is not None and not part.rows:
            res = CheckResult.from_findings(check_id, [stopped], "", part.metrics())
        else:
            res = judge_run(check_id, part, profile, declared, comp, multi=multi, host=host)
            if stopped is not None:  # the mid-sweep stop replaces the 'truncated paste' warning
                res = CheckResult.from_findings(check_id, [f for f in res.findings if f.code != "NCCL_RUN_INCOMPLETE"]
                                                + [stopped], res.summary, res.metrics)
        results.append((part, res))
        findings += [f if f.message.startswith(part.label) else
                     dataclasses.replace(f, message=f"{part.label}: {f.message}") for f in res.findings]
    primary = next((r for p, r in results if p.collective == "all_reduce"), results[0][1])
    metrics = dict(primary.metrics, collective_tests=len(results))
    for part, res in results:
        if "busbw_large_gbps" in res.metrics and part.collective:
            metrics[f"busbw_large_gbps_{part.collective}"] = res.metrics["busbw_large_gbps"]
    ok = f"{len(results)} collective tests, each judged on its own: " + "; ".join(
        f"{p.label} {r.status}" + (f" ({r.metrics['busbw_large_gbps']:.1f} GB/s)" if "busbw_large_gbps" in r.metrics
                                   else "") for p, r in results)
    return CheckResult.from_findings(check_id, findings, ok, metrics)


def _node_component(run: NcclRun, host: str) -> str:
    hosts = run.hosts or (run.info_hosts if len(run.info_hosts) > 1 else [])
    return f"{host} GPUs (NVLink)" if (run.nodes or 1) <= 1 else f"hosts {_host_list(hosts) or host}"


def _fabric_component(run: NcclRun) -> str:
    return f"fabric between {_host_list(run.hosts) or 'the nodes'}"


def _host_list(hosts: list[str]) -> str:
    return ", ".join(hosts[:8]) + (f" ... ({len(hosts)} hosts)" if len(hosts) > 8 else "")


def all_reduce_run(run: NcclRun | None) -> NcclRun | None:
    """The all-reduce test of a log (the log itself when it holds one test), for figures that are all-reduce's."""
    if run is None or not run.collectives:
        return run
    return next((p for p in run.collectives if p.collective == "all_reduce"), None)


def _parse_or_error(check_id: str, text: str | None, path: str,
                    command: dict[str, Any] | None = None) -> NcclRun | CheckResult:
    if text is None:
        return CheckResult.skip(check_id, f"not collected: {path}")
    try:
        return parse(text)
    except ParseError as e:
        if command and command.get("exit_code") not in (0, None) or command and command.get("status") == "timeout":
            # The launcher (mpirun/srun) failed before any test ran: its own words say why.
            said = [l.strip() for l in text.splitlines() if l.strip() and not set(l.strip()) <= set("-=*")]
            why = " ".join(said[:3])[:300]
            how = f"exited {command.get('exit_code')}" if command.get("exit_code") is not None else command.get("status")
            return CheckResult.error(check_id, f"the multi-node launch ({command.get('argv', ['?'])[0]}) {how} before any "
                                     f"result: {why}", code="NCCL_TEST_FAILED", component="launcher",
                                     action="run the recorded command (bundle.json) on the launch node and fix what the "
                                            "launcher reports (hostfile, ssh between nodes, MPI install)",
                                     evidence=path)
        return CheckResult.error(check_id, f"{path}: {e}",
                                 action="Keep the whole all_reduce_perf output (stdout and stderr) as printed.")


@check("nccl.single_node", needs=(ALL_REDUCE,), params={**_BASE_KEYS, **_SINGLE_KEYS})
def single_node(ctx: Any) -> CheckResult:
    """All-reduce bus bandwidth of one node against its profile (or a pasted multi-node run)."""
    try:
        run = ctx.parsed(ALL_REDUCE)
    except ParseError as e:
        return CheckResult.error("nccl.single_node", f"{PATH}: {e}",
                                 action="Keep the whole all_reduce_perf output (stdout and stderr) as printed.")
    return judge_log("nccl.single_node", run, ctx.profile, ctx.declared, lambda r: _node_component(r, ctx.host),
                     host=ctx.host)


@check("nccl.multi_node", scope="cluster", params={**_BASE_KEYS, **_SINGLE_KEYS})
def multi_node(ctx: Any) -> list[CheckResult]:
    """Multi-node all-reduce bus bandwidth (the `_cluster/` run) against the network expectation."""
    cb = ctx.cluster_bundle
    if cb is None:
        return [CheckResult.skip("nccl.multi_node", "no _cluster/ evidence (multi-node test not run)")]
    try:
        got = _parse_or_error("nccl.multi_node", cb.text(CLUSTER_PATH), f"_cluster/{CLUSTER_PATH}",
                              cb.command(CLUSTER_PATH))
    except EvidenceError as e:
        return [CheckResult.error("nccl.multi_node", str(e))]
    if isinstance(got, CheckResult):
        return [got]
    by_host = {n.host: n for n in ctx.nodes}
    declared: dict[str, Any] = {}
    for h in got.hosts or list(by_host):
        if h in by_host and (by_host[h].declared.get("ib_devices") or by_host[h].declared.get("roce_interfaces")):
            declared = by_host[h].declared
            break
    profile = ctx.profile
    if not has_nccl_values(profile):
        for n in ctx.nodes:
            if has_nccl_values(n.profile):
                profile = n.profile
                break
    result = judge_log("nccl.multi_node", got, profile, declared, _fabric_component, multi=True, host="launch node")
    out = [result]
    failed = next((f for f in result.findings if f.code == "NCCL_TEST_FAILED"), None)
    if failed is not None:
        # the run failed on named nodes: fail those nodes too, so whatever drains on `fail` sees them
        for h in failing_hosts(got):
            if h in by_host:
                r = CheckResult.from_findings("nccl.multi_node", [failed], f"the multi-node test failed on {h}", {})
                r.host = h
                out.append(r)
    return out


@check("nccl.fleet", scope="cluster", params={**_BASE_KEYS, **_FLEET_KEYS})
def fleet(ctx: Any) -> list[CheckResult]:
    """Each node's single-node busbw against the fleet median (catches the slow node above the floor)."""
    values: dict[str, float] = {}
    for n in ctx.nodes:
        try:
            run = all_reduce_run(n.parsed(ALL_REDUCE))
        except (ParseError, EvidenceError):
            continue
        # multi-node, wrong, failed or invalid runs are reported by nccl.single_node; no fleet figure
        if run is None or (run.nodes or 1) > 1 or run.wrong_total > 0 or run.failures or invalid_reason(run):
            continue
        gate = run.busbw_large_gbps(int(float(n.profile.get("nccl.gate_min_size_mib", 1024.0)) * 2**20))
        if gate is not None:
            values[n.host] = gate
    p = ctx.profile
    min_nodes = int(p.get("nccl.fleet_min_nodes", 4) or 4)
    if len(values) < min_nodes:
        return [CheckResult.skip("nccl.fleet", f"{len(values)} node(s) with a single-node result; "
                                               f"the fleet view needs {min_nodes}")]
    med = statistics.median(values.values())
    mad = statistics.median(abs(v - med) for v in values.values()) * 1.4826
    warn_pct = float(p.get("nccl.fleet_warn_below_median_percent", 5.0))
    fail_pct = float(p.get("nccl.fleet_fail_below_median_percent", 12.0))
    out: list[CheckResult] = []
    flagged = 0
    for host, v in sorted(values.items()):
        below = (med - v) / med * 100.0 if med > 0 else 0.0
        metrics = {"busbw_large_gbps": round(v, 2), "fleet_median_gbps": round(med, 2),
                   "below_median_percent": round(below, 1)}
        findings: list[Finding] = []
        # Far below the median AND outside the fleet's own spread, so a noisy fleet does not flag.
        if below >= warn_pct and (med - v) > 3 * mad:
            sev = "fail" if below >= fail_pct else "warn"
            flagged += 1
            findings.append(Finding(
                "NCCL_BUSBW_BELOW_FLEET", sev, f"{host} GPUs (NVLink)",
                f"single-node busbw {v:.1f} GB/s is {below:.1f}% below the fleet median {med:.1f} "
                f"({len(values)} nodes)", observed=round(v, 2),
                limit=round(med * (1 - (fail_pct if sev == 'fail' else warn_pct) / 100), 1), unit="GB/s",
                action="Compare with its peers: " + ACTION_SINGLE_LOW))
        r = CheckResult.from_findings("nccl.fleet", findings,
                                      f"busbw {v:.1f} GB/s, {below:+.1f}% vs fleet median {med:.1f}", metrics)
        r.host = host
        out.append(r)
    summary = CheckResult.from_findings(
        "nccl.fleet", [], f"fleet median single-node busbw {med:.1f} GB/s over {len(values)} nodes; "
                          f"{flagged} node(s) far below it",
        {"fleet_median_gbps": round(med, 2), "nodes": len(values), "flagged": flagged})
    return out + [summary]


@check("nccl.localize", scope="cluster", params={**_LOCALIZE_KEYS})
def localize(ctx: Any) -> list[CheckResult]:
    """The verdict of bad-node/NIC localization (`_cluster/nccl/localize.json`)."""
    cb = ctx.cluster_bundle
    if cb is None:
        return [CheckResult.skip("nccl.localize", "no _cluster/ evidence")]
    try:
        doc = cb.json(LOCALIZE_PATH)
    except EvidenceError as e:
        return [CheckResult.error("nccl.localize", str(e))]
    if doc is None:
        return [CheckResult.skip("nccl.localize", "no localization run (the multi-node result was not low)")]
    if not isinstance(doc, dict) or not isinstance(doc.get("culprits"), list):
        return [CheckResult.error("nccl.localize", f"_cluster/{LOCALIZE_PATH}: not a localization report")]
    rounds = doc.get("rounds") if isinstance(doc.get("rounds"), list) else []
    out: list[CheckResult] = []
    for c in doc["culprits"]:
        if not isinstance(c, dict) or not c.get("host"):
            continue
        host = str(c["host"])
        ev_rounds = [r for r in c.get("evidence_rounds") or [] if isinstance(r, int)]
        evidence = "\n".join(_round_lines(rounds, ev_rounds, host))
        obs, ref = c.get("observed_gbps"), c.get("reference_gbps")
        if c.get("part") == "nic":
            nics = ", ".join(str(n) for n in c.get("nics") or []) or f"rail(s) {c.get('rails')}"
            f = Finding("NCCL_NIC_SLOW", "fail", f"{host} {nics}",
                        f"{nics} on {host} is slow in rail-isolated tests with two different partners "
                        f"({_fmt(obs)} vs ~{_fmt(ref)} GB/s): {c.get('reason', '')}",
                        observed=obs, limit=ref, unit="GB/s",
                        action=f"Check {nics} on {host}: `ibstat`/`mlxlink` for its rate and errors (fabric.* "
                               "checks), then clean/reseat the cable and optic; swap the cable, then the optic, "
                               "then move to another switch port to tell NIC from cable from switch.",
                        evidence=evidence)
        else:
            f = Finding("NCCL_NODE_SLOW", "fail", host,
                        f"{host} slows every group it is in, confirmed with a second partner "
                        f"({_fmt(obs)} vs ~{_fmt(ref)} GB/s): {c.get('reason', '')}",
                        observed=obs, limit=ref, unit="GB/s",
                        action="Drain it; check PCIe link width/speed of its GPUs and NICs (`lspci -vv`, "
                               "`nvidia-smi -q` PCIe section), ACS/IOMMU settings, GPU clocks and NVLink; then rerun "
                               "its single-node and pair tests.", evidence=evidence)
        r = CheckResult.from_findings("nccl.localize", [f], "", {"rounds": len(rounds)})
        r.host = host
        out.append(r)
    status = doc.get("status")
    findings: list[Finding] = []
    if status != "culprits":
        unresolved = doc.get("unresolved") or []
        findings.append(Finding(
            "NCCL_LOCALIZE_INCONCLUSIVE", "warn", "fabric",
            "no node or NIC reproduces the slowdown alone" if not unresolved else
            f"suspects left untested (no healthy partner free): {', '.join(map(str, unresolved))}",
            action="The multi-node result is low but no single part is: suspect the switch fabric (spine links, "
                   "routing/adaptive routing, congestion control); check the switches' port counters."))
    summary = CheckResult.from_findings(
        "nccl.localize", findings,
        f"localization: {len(out)} culprit(s) in {len(rounds)} rounds, {doc.get('tests', '?')} tests, "
        f"~{doc.get('total_time_s', '?')} s of testing",
        {"rounds": len(rounds), "tests": doc.get("tests"), "culprits": len(out),
         "total_time_s": doc.get("total_time_s")})
    return out + [summary]


def _round_lines(rounds: list[Any], wanted: list[int], host: str) -> list[str]:
    lines = []
    for rd in rounds:
        if not isinstance(rd, dict) or rd.get("round") not in wanted:
            continue
        for t in rd.get("tests") or []:
            if isinstance(t, dict) and host in (t.get("nodes") or []):
                rail = f" rail {t.get('nic') or t.get('rail')}" if t.get("rail") is not None else ""
                lines.append(f"round {rd['round']} ({rd.get('stage')}): {'+'.join(map(str, t.get('nodes')))}{rail}: "
                             f"{t.get('busbw_gbps')} GB/s vs ref {t.get('reference_gbps')} -> "
                             f"{'pass' if t.get('pass') else 'LOW'}")
    return lines
