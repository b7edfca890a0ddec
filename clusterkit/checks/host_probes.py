"""host.probes: how collection went on the node, from what bundle.json recorded.

A probe that hung is a finding in itself: `nvidia-smi` not answering within its
timeout means a wedged GPU or driver even when nothing else could be read.
Collection records which driver a hung tool goes through and skips the node's
other probes behind it (clusterkit.fleet.hostrun); this check names the cause
once, with the skipped probes as its consequence.
"""

from __future__ import annotations

from typing import Any

from clusterkit.analysis import NodeContext
from clusterkit.checks.registry import check
from clusterkit.results import CheckResult, Finding

SHOW = 6   # probe paths named in one finding

# driver key recorded by collection -> (code, severity, component, symptom, action)
_HUNG: dict[str, tuple[str, str, str, str, str]] = {
    "nvidia": ("GPU_DRIVER_HUNG", "fail", "NVIDIA driver", "GPU or driver wedged",
               "drain the node; look for Xid/NVRM lines in dmesg (gpu.xid names the GPU), then reset the GPUs "
               "(`nvidia-smi -r`) or reboot; RMA the GPU if it wedges again"),
    "bmc": ("BMC_HUNG", "warn", "BMC", "BMC not answering",
            "check the BMC (`ipmitool mc info` from another host, its web UI); reset it (`ipmitool mc reset "
            "cold`) if it stays silent"),
}


def _names(paths: list[str]) -> str:
    return ", ".join(paths[:SHOW]) + (f" and {len(paths) - SHOW} more" if len(paths) > SHOW else "")


def _hung(c: dict[str, Any], skipped: list[dict[str, Any]]) -> Finding:
    code, sev, component, symptom, action = _HUNG[str(c["driver"])]
    behind = [s["path"] for s in skipped if s.get("driver") == c["driver"]]
    tool = c.get("tool") or str(c.get("command", "")).split(" ")[0]
    more = f"; {len(behind)} other probe(s) that need it were skipped: {_names(behind)}" if behind else ""
    return Finding(code, sev, component, f"{tool} hangs: {symptom} (`{c.get('command')}` killed after "
                                         f"{float(c.get('duration_s') or 0):.1f} s){more}",
                   observed=c.get("duration_s"), unit="s", action=action, evidence=c.get("path"))


@check("host.probes")
def probes(ctx: NodeContext) -> CheckResult:
    """Every probe ran to its end: none hung, failed, or was cut short."""
    meta = ctx.bundle.meta
    cmds: list[dict[str, Any]] = [c for c in meta.get("commands", []) if isinstance(c, dict)]
    skipped = [c for c in cmds if c.get("status") == "skipped"]
    not_run = [c for c in cmds if c.get("status") == "not_run"]
    findings: list[Finding] = []
    for c in cmds:
        status = c.get("status")
        if status == "timeout" and c.get("driver") in _HUNG and not c.get("cut_by_deadline"):
            findings.append(_hung(c, skipped))
        elif status == "timeout" and not c.get("cut_by_deadline"):
            findings.append(Finding("PROBE_TIMEOUT", "warn", "node", f"`{c.get('command')}` timed out after "
                                    f"{float(c.get('duration_s') or 0):.1f} s and was killed", observed=c.get("duration_s"),
                                    unit="s", action="run it by hand on the node: a tool that hangs points at the "
                                    "device it reads (check dmesg)", evidence=c.get("path")))
        elif status == "error":
            findings.append(Finding("PROBE_FAILED", "warn", "node", f"probe `{c.get('command')}` failed"
                                    + (f": {c['message']}" if c.get("message") else ""),
                                    action="look at the probe's stderr in bundle.json", evidence=c.get("path")))
    cut = not_run + [c for c in cmds if c.get("status") == "timeout" and c.get("cut_by_deadline")]
    if cut:
        why = str(meta.get("message") or meta.get("outcome") or "collection cut short").split("; not run:")[0]
        findings.append(Finding("COLLECTION_CUT_SHORT", "error", "node",
                                f"collection cut short ({why}): {len(cut)} probe(s) did not run to their end: "
                                f"{_names([str(c.get('path')) for c in cut])}", observed=len(cut), unit="probes",
                                action="rerun on this node (`--limit NODE`), with a longer --deadline if the "
                                       "deadline cut it"))
    for m in meta.get("missed_sync") or []:
        findings.append(Finding("LOAD_WINDOW_MISSED", "warn", "node", str(m),
                                action="its before/after counters do not bracket the other nodes' load: rerun "
                                       "when the node is healthy to judge its fabric counters"))
    ran = [c for c in cmds if c.get("status") not in ("skipped", "not_run")]
    total = sum(float(c.get("duration_s") or 0) for c in ran)
    summary = f"{len(ran)} probes ran in {total:.1f} s" + (f", {len(skipped)} skipped" if skipped else "")
    return CheckResult.from_findings("host.probes", findings, summary,
                                     {"probes_run": len(ran), "probes_skipped": len(skipped),
                                      "probes_not_run": len(not_run)})
