"""Host checks: real on any Linux node, so real in every test."""

from __future__ import annotations

import bisect

import statistics
from collections import Counter

from clusterkit.analysis import ClusterContext, NodeContext
from clusterkit.checks.kernel_log_rules import MCE_ACTION, RuleHit, hit_findings, scan
from clusterkit.checks.registry import check
from clusterkit.parsers import ParseError
from clusterkit.parsers.host_facts import CLOCK, DF, MEMINFO, OS_RELEASE, UNAME
from clusterkit.parsers.kernel_log import KERNEL_LOG
from clusterkit.parsers.mcelog import MCELOG, MceRecord
from clusterkit.parsers.rasdaemon import RAS_MC_CTL, RasReport
from clusterkit.results import CheckResult, Finding

GIB_KIB = 1024 * 1024


@check("host.reachable", needs=(UNAME,))
def reachable(ctx: NodeContext) -> CheckResult:
    """The node answered over SSH and ran the probes (how each probe went: host.probes)."""
    cmds = [c for c in ctx.bundle.meta.get("commands", []) if c.get("status") not in ("skipped", "not_run")]
    total = sum(float(c.get("duration_s") or 0) for c in cmds)
    return CheckResult.from_findings("host.reachable", [], f"reachable; {len(cmds)} probes ran in {total:.1f} s",
                                     {"probes_total": len(cmds), "probe_seconds_total": round(total, 3)})


def _majority(values: dict[str, str]) -> str | None:
    if not values:
        return None
    (top, n), *rest = Counter(values.values()).most_common()
    return top if not rest or n > rest[0][1] else None


def _facts(ctx: NodeContext) -> tuple[str | None, str | None]:
    kernel = os_name = None
    try:
        u = ctx.parsed(UNAME)
        kernel = u.release if u else None
    except ParseError:
        pass
    try:
        o = ctx.parsed(OS_RELEASE)
        os_name = (o.get("PRETTY_NAME") or f"{o.get('ID', '')} {o.get('VERSION_ID', '')}".strip()) if o else None
    except ParseError:
        pass
    return kernel, os_name


@check("host.kernel", needs=(UNAME, OS_RELEASE), needs_any=True, scope="cluster")
def kernel(ctx: ClusterContext) -> list[CheckResult]:
    """Kernel and OS release per node, and drift from the rest of the fleet."""
    facts = {n.host: _facts(n) for n in ctx.nodes}
    kernels = {h: k for h, (k, _) in facts.items() if k}
    oses = {h: o for h, (_, o) in facts.items() if o}
    k_major, o_major = _majority(kernels), _majority(oses)
    out = []
    for n in ctx.nodes:
        k, o = facts[n.host]
        if k is None and o is None:
            out.append(CheckResult.error("host.kernel", "kernel/OS release unreadable (uname/os-release output not recognized)",
                                         evidence=UNAME.path))
            out[-1].host = n.host
            continue
        fs = []
        if k and k_major and k != k_major and len(kernels) > 1:
            fs.append(Finding("HOST_KERNEL_DRIFT", "warn", "kernel", f"kernel {k} differs from the fleet's {k_major}",
                              observed=k, limit=k_major, action="reinstall/pin the fleet's kernel (provisioning holds the "
                              "kernel package; an unattended upgrade may have changed it), then reboot",
                              evidence=UNAME.path))
        if o and o_major and o != o_major and len(oses) > 1:
            fs.append(Finding("HOST_OS_DRIFT", "warn", "OS", f"OS {o} differs from the fleet's {o_major}",
                              observed=o, limit=o_major, action="reprovision the node with the fleet's OS release",
                              evidence=OS_RELEASE.path))
        r = CheckResult.from_findings("host.kernel", fs, f"kernel {k or '?'}, {o or 'OS ?'}"
                                      + (" (same as fleet)" if len(kernels) > 1 and not fs else ""))
        r.host = n.host
        out.append(r)
    return out


def _reference_offset(offsets: list[float], window_s: float) -> float:
    """Median of the largest group of nodes that agree within the warning window.

    A plain median is dragged by one bad clock in a small fleet; the agreeing
    majority is what the odd node should be compared with."""
    # The nodes within the window of `o` are a run of the sorted offsets (x - o only grows with x),
    # so two binary searches count them: O(n log n) for 10,000 nodes instead of O(n^2).
    ordered = sorted(offsets)
    best: list[float] = []
    for o in sorted(offsets, key=abs):
        lo = bisect.bisect_left(ordered, -window_s, key=lambda x: x - o)
        hi = bisect.bisect_right(ordered, window_s, key=lambda x: x - o)
        if hi - lo > len(best):
            best = ordered[lo:hi]
    return statistics.median(best)


@check("host.clock", needs=(CLOCK,), scope="cluster",
       params={"host.max_clock_skew_ms": float, "host.warn_clock_skew_ms": float})
def clock(ctx: ClusterContext) -> list[CheckResult]:
    """Clock offset of each node from the fleet median (NTP/PTP health)."""
    offsets: dict[str, float] = {}
    rtts: dict[str, float] = {}
    out: list[CheckResult] = []
    for n in ctx.nodes:
        cmd = n.bundle.command(CLOCK.path) or {}
        t0, t1 = cmd.get("local_start_epoch"), cmd.get("local_end_epoch")
        try:
            remote = n.parsed(CLOCK)
        except ParseError as e:
            r = CheckResult.error("host.clock", f"clock reading unusable: {e}", evidence=CLOCK.path)
            r.host = n.host
            out.append(r)
            continue
        if remote is None or t0 is None or t1 is None:
            continue
        offsets[n.host] = remote - (t0 + t1) / 2.0
        rtts[n.host] = t1 - t0
    if not offsets:
        return out
    median = _reference_offset(list(offsets.values()), ctx.profile.get("host.warn_clock_skew_ms", 100.0) / 1000.0)
    for n in ctx.nodes:
        if n.host not in offsets:
            continue
        skew_ms = (offsets[n.host] - median) * 1000.0
        # The measurement cannot be better than half the command's round trip.
        uncertainty_ms = rtts[n.host] * 500.0
        fail_ms = n.profile.get("host.max_clock_skew_ms", 500.0)
        warn_ms = n.profile.get("host.warn_clock_skew_ms", 100.0)
        fs = []
        effective = max(0.0, abs(skew_ms) - uncertainty_ms)
        if effective > fail_ms or effective > warn_ms:
            sev = "fail" if effective > fail_ms else "warn"
            fs.append(Finding("HOST_CLOCK_SKEW", sev, "clock", f"clock is {skew_ms:+.0f} ms off the fleet's agreeing majority",
                              observed=round(skew_ms, 1), limit=fail_ms if sev == "fail" else warn_ms, unit="ms",
                              action="check chronyd/ntpd (or PTP) on the node: `chronyc tracking`, `chronyc sources`",
                              evidence=CLOCK.path))
        r = CheckResult.from_findings("host.clock", fs, f"clock within {abs(skew_ms):.0f} ms of the fleet",
                                      {"clock_skew_ms": round(skew_ms, 2), "clock_uncertainty_ms": round(uncertainty_ms, 2)})
        r.host = n.host
        out.append(r)
    return out


@check("host.disk", needs=(DF,),
       params={"host.min_free_disk_gib": float, "host.min_free_disk_percent": float})
def disk(ctx: NodeContext) -> CheckResult:
    """Free space on the node's filesystems."""
    mounts = ctx.parsed(DF)
    min_gib = ctx.profile.get("host.min_free_disk_gib", 20.0)
    min_pct = ctx.profile.get("host.min_free_disk_percent", 5.0)
    fs, worst_pct = [], 100.0
    for m in mounts:
        if m.size_kib <= 0:
            continue
        free_gib = m.avail_kib / GIB_KIB
        pct = 100.0 * m.avail_kib / m.size_kib
        worst_pct = min(worst_pct, pct)
        # Small filesystems (/boot/efi) are judged by percentage only.
        small = m.size_kib / GIB_KIB < 2 * min_gib
        by_pct = pct < min_pct
        if by_pct or (not small and free_gib < min_gib):
            fs.append(Finding("HOST_DISK_LOW", "fail" if pct < min_pct / 2 else "warn", f"filesystem {m.mountpoint}",
                              f"{m.mountpoint} has {free_gib:.1f} GiB free ({pct:.1f}%)",
                              observed=round(pct, 2) if by_pct else round(free_gib, 2),
                              limit=min_pct if by_pct else min_gib, unit="%" if by_pct else "GiB",
                              action=f"free space on {m.mountpoint} (logs, containers, core dumps)",
                              evidence=DF.path))
    return CheckResult.from_findings("host.disk", fs, f"{len(mounts)} filesystems, lowest {worst_pct:.0f}% free",
                                     {"disk_free_percent_min": round(worst_pct, 2)})


@check("host.memory", needs=(MEMINFO,), params={"host.min_available_memory_gib": float})
def memory(ctx: NodeContext) -> CheckResult:
    """Available memory."""
    mi = ctx.parsed(MEMINFO)
    avail = mi.get("MemAvailable", mi.get("MemFree", 0)) / GIB_KIB
    total = mi["MemTotal"] / GIB_KIB
    need = ctx.profile.get("host.min_available_memory_gib", 4.0)
    fs = []
    if avail < need:
        fs.append(Finding("HOST_MEMORY_LOW", "warn", "memory", f"only {avail:.1f} GiB of {total:.0f} GiB available",
                          observed=round(avail, 2), limit=need, unit="GiB",
                          action="find the processes holding memory (`ps aux --sort=-rss | head`) before running jobs",
                          evidence=MEMINFO.path))
    return CheckResult.from_findings("host.memory", fs, f"{avail:.0f} of {total:.0f} GiB available",
                                     {"memory_total_gib": round(total, 2), "memory_available_gib": round(avail, 2)})


DIMM_REPLACE_ACTION = ("replace this DIMM at the next window (drain first): this many corrected errors mean failing "
                       "cells or a failing contact, and an uncorrected error is likely to follow; check `ras-mc-ctl "
                       "--error-count` and the BMC SEL for the same DIMM")


def judge_corrected_on_dimm(f: Finding, n: int, limit: float | None) -> Finding:
    """`n` corrected errors on one DIMM (EDAC lines, rasdaemon): from the profile's `limit` on, the DIMM fails
    and is to be replaced; below it the finding stays the warning it is."""
    f.observed, f.unit = n, "corrected errors"
    if limit is not None and n >= limit:
        f.severity, f.limit, f.action = "fail", limit, DIMM_REPLACE_ACTION
    return f


def _judge_corrected_memory(hits: list[RuleHit], fs: list[Finding], limit: float | None) -> None:
    """EDAC lines' corrected-error counts summed per DIMM (the rule's `amount`), judged against the limit."""
    for h, f in zip(hits, fs):
        if h.rule.code != "HOST_EDAC_CORRECTED" or not h.amount:
            continue
        f.message = f"{h.amount} corrected memory errors on {h.component}" + f.message[len(h.rule.description):]
        judge_corrected_on_dimm(f, h.amount, limit)


@check("host.kernel_log", needs=(KERNEL_LOG,),
       params={"host.kernel_log_ignore": list, "host.max_corrected_memory_errors_per_dimm": int})
def kernel_log(ctx: NodeContext) -> CheckResult:
    """Hardware and kernel errors in the kernel log (host rules; GPU and fabric add their own checks)."""
    cmd = ctx.bundle.command(KERNEL_LOG.path)
    lines = ctx.parsed(KERNEL_LOG)
    if cmd and cmd.get("exit_code") not in (0, None) and not lines:
        return CheckResult.skip("host.kernel_log", f"kernel log not readable on the node (`{cmd.get('command')}` exit "
                                f"{cmd.get('exit_code')}); give clusterkit become/sudo for it")
    hits = scan(lines, ctx.profile.get("host.kernel_log_ignore", []), family="host")
    fs = hit_findings(hits, KERNEL_LOG.path)
    _judge_corrected_memory(hits, fs, ctx.profile.get("host.max_corrected_memory_errors_per_dimm"))
    return CheckResult.from_findings("host.kernel_log", fs, f"{len(lines)} kernel log lines, no host errors",
                                     {"kernel_log_lines": len(lines)})


MCE_CORRECTED_ACTION = ("corrected by the hardware: watch the count (`ras-mc-ctl --errors`, /var/log/mcelog); replace the "
                        "DIMM or CPU the records name if it keeps rising or an uncorrected one follows")


def _mce_finding(rs: list[MceRecord], uncorrected: bool, path: str = MCELOG.path) -> Finding:
    r = rs[0]
    n = f" ({len(rs)} records)" if len(rs) > 1 else ""
    pcc = ", processor context corrupt" if any(x.context_corrupt for x in rs) else ""
    status = f", STATUS {r.status:x}" if r.status is not None else ""
    what = f": {r.what}" if r.what else ""
    return Finding("HOST_MCE_HARDWARE_ERROR" if uncorrected else "HOST_MCE_CORRECTED", "fail" if uncorrected else "warn",
                   r.where, f"{'uncorrected' if uncorrected else 'corrected'} machine check on {r.where}{n}{pcc}{what}"
                   f"{status}", observed=len(rs), unit="records", action=MCE_ACTION if uncorrected else MCE_CORRECTED_ACTION,
                   evidence=f"{path}: MCE {r.number if r.number is not None else '?'}{status}")


def _mce_findings(records: list[MceRecord], path: str) -> list[Finding]:
    """One finding per (uncorrected?, CPU/bank) with its record count; uncorrected ones first."""
    groups: dict[tuple[bool, str], list[MceRecord]] = {}
    for r in records:
        if r.uncorrected is not None:
            groups.setdefault((r.uncorrected, r.where), []).append(r)
    return [_mce_finding(rs, unc, path) for (unc, _), rs in sorted(groups.items(), key=lambda kv: not kv[0][0])]


@check("host.mcelog", needs=(MCELOG,))
def mcelog(ctx: NodeContext) -> CheckResult:
    """Machine checks mcelog decoded: uncorrected ones fail the node, corrected ones are watched (per CPU and bank)."""
    records: list[MceRecord] = ctx.parsed(MCELOG)
    fs = _mce_findings(records, MCELOG.path)
    unjudged = sum(r.uncorrected is None for r in records)
    return CheckResult.from_findings("host.mcelog", fs, f"{len(records)} mcelog records, none an error"
                                     + (f" ({unjudged} cut before their status)" if unjudged else ""),
                                     {"mce_records": len(records)})


def _memory_findings(rep: RasReport, limit: float | None) -> list[Finding]:
    """rasdaemon's memory-controller events summed per DIMM: uncorrected ones fail, corrected ones warn (fail
    from the profile's per-DIMM limit, as for EDAC lines in the kernel log)."""
    sums: Counter[tuple[bool, str]] = Counter()
    for e in rep.memory:
        if e.kind != "Info":
            sums[(e.kind != "Corrected", e.dimm)] += e.count
    out = []
    for (uncorrected, dimm), n in sorted(sums.items(), key=lambda kv: (not kv[0][0], kv[0][1])):
        if uncorrected:
            out.append(Finding("HOST_EDAC_UNCORRECTED", "fail", f"DIMM {dimm}",
                               f"{n} uncorrected memory errors on DIMM {dimm} (rasdaemon)", observed=n, unit="errors",
                               action="replace the DIMM named in the record", evidence=RAS_MC_CTL.path))
            continue
        out.append(judge_corrected_on_dimm(Finding("HOST_EDAC_CORRECTED", "warn", f"DIMM {dimm}",
                                                   f"{n} corrected memory errors on DIMM {dimm} (rasdaemon)",
                                                   action=MCE_CORRECTED_ACTION, evidence=RAS_MC_CTL.path), n, limit))
    return out


def _aer_findings(rep: RasReport) -> list[Finding]:
    sums: Counter[tuple[bool, str]] = Counter()
    for e in rep.aer:
        sums[(e.uncorrected, e.device)] += e.count
    return [Finding("HOST_PCIE_AER_UNCORRECTED" if unc else "HOST_PCIE_AER_CORRECTED", "fail" if unc else "warn",
                    f"PCIe {dev}", f"{n} PCIe {'uncorrectable' if unc else 'corrected'} errors on {dev} (rasdaemon)",
                    observed=n, unit="errors", evidence=RAS_MC_CTL.path,
                    action="reseat the device or riser at that PCI address; if it repeats, replace it" if unc else
                    "watch the count; many corrected errors on one device mean a marginal link (reseat)")
            for (unc, dev), n in sorted(sums.items(), key=lambda kv: not kv[0][0])]


def _mce_summary_findings(rep: RasReport) -> list[Finding]:
    """The --summary's MCE counts ('1 Corrected error, no action required. errors'), judged by their words."""
    out = []
    for n, msg in rep.mce_counts:
        unc = not msg.lower().startswith("corrected")
        out.append(Finding("HOST_MCE_HARDWARE_ERROR" if unc else "HOST_MCE_CORRECTED", "fail" if unc else "warn",
                           "CPU (rasdaemon summary)", f"{n} machine checks: {msg}", observed=n, unit="records",
                           action=MCE_ACTION if unc else MCE_CORRECTED_ACTION, evidence=RAS_MC_CTL.path))
    return out


@check("host.rasdaemon", needs=(RAS_MC_CTL,), params={"host.max_corrected_memory_errors_per_dimm": int})
def rasdaemon(ctx: NodeContext) -> CheckResult:
    """rasdaemon's recorded errors (ras-mc-ctl): machine checks as for mcelog, memory errors per DIMM, PCIe AER."""
    rep: RasReport = ctx.parsed(RAS_MC_CTL)
    fs = (_mce_findings(rep.mce, RAS_MC_CTL.path) + _mce_summary_findings(rep)
          + _memory_findings(rep, ctx.profile.get("host.max_corrected_memory_errors_per_dimm")) + _aer_findings(rep))
    clean = ", ".join(rep.sections_clean)
    return CheckResult.from_findings("host.rasdaemon", fs, f"rasdaemon recorded no errors ({clean or 'no events'})",
                                     {"ras_events": rep.events})
