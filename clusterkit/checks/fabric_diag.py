"""fabric.ibdiagnet: what ibdiagnet's own stage summary says about the fabric."""

from __future__ import annotations

from clusterkit.checks.registry import check
from clusterkit.parsers import ParseError
from clusterkit.parsers.ibdiagnet import IBDIAGNET, DiagStage
from clusterkit.results import CheckResult, Finding

# What to do about each stage (ibdiagnet 1.x and 2.x names, lower case); others: read the stage's lines.
STAGE_ACTIONS = {
    "ipoib subnets check": "an IPoIB multicast group runs slower than its members: set the partition's IPoIB rate "
                           "(rate= in the subnet manager's partitions.conf) to the members' rate and restart the SM "
                           "so the group is re-created",
    "link state active check": "links not Active: check the named ports' cables and the subnet manager",
    "links check": "links not Active or inconsistent: check the named ports' cables and the subnet manager",
    "bad guids/lids check": "duplicate or invalid GUIDs/LIDs: find the named nodes and fix their GUIDs or the SM's LID assignment",
    "lids check": "duplicate or invalid LIDs: check the subnet manager's LID assignment for the named ports",
    "performance counters report": "error counters above ibdiagnet's thresholds: clean/reseat/replace the cables of the "
                                   "named ports (fabric.counters explains each counter)",
    "port counters": "error counters above ibdiagnet's thresholds: clean/reseat/replace the cables of the named ports "
                     "(fabric.counters explains each counter)",
    "specific link width check": "links below the width asked for: reseat or replace the named links' cables",
    "specific link speed check": "links below the speed asked for: reseat or replace the named links' cables",
    "speed / width checks": "links below their capable speed or width: reseat or replace the named links' cables",
    "subnet manager": "subnet manager problems (none, or several masters): check opensm/UFM on the named nodes",
    "nodes information": "firmware differs across the fabric: flash the named devices to the version the others run",
}


def _finding(st: DiagStage, log: str | None) -> Finding | None:
    if not st.errors and not st.warnings:
        return None
    code, sev = ("IBDIAGNET_ERRORS", "fail") if st.errors else ("IBDIAGNET_WARNINGS", "warn")
    counts = ", ".join(f"{n} {w}" for n, w in ((st.errors, "error(s)"), (st.warnings, "warning(s)")) if n)
    said = ": " + " | ".join(st.messages) if st.messages else ""
    where = f" in {log}" if log else " in ibdiagnet's log"
    action = STAGE_ACTIONS.get(st.name.lower(), f"read the '{st.name}' stage's -E-/-W- lines{where}")
    return Finding(code, sev, f"ibdiagnet stage '{st.name}'", f"{st.name}: {counts}{said}",
                   observed=st.errors or st.warnings, limit=0, unit="count",
                   action=action + (f" (details{where})" if st.name.lower() in STAGE_ACTIONS else ""),
                   evidence=st.comment or None)


@check("fabric.ibdiagnet", needs=(IBDIAGNET,))
def check_ibdiagnet(ctx) -> CheckResult:
    """ibdiagnet's stage summary: any stage with errors fails, warnings only warn."""
    try:
        rep = ctx.parsed(IBDIAGNET)
    except ParseError as e:
        return CheckResult.error("fabric.ibdiagnet", f"{IBDIAGNET.path}: {e}",
                                 component=IBDIAGNET.path, action="re-run ibdiagnet to its end and keep its whole output")
    findings = [f for st in rep.stages if (f := _finding(st, rep.log))]
    metrics = {"ibdiagnet_errors": sum(s.errors for s in rep.stages),
               "ibdiagnet_warnings": sum(s.warnings for s in rep.stages)}
    return CheckResult.from_findings("fabric.ibdiagnet", findings,
                                     f"ibdiagnet: {len(rep.stages)} stage(s), no error or warning", metrics)
