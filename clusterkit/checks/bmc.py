"""bmc.health: what the BMC says about the node besides its PSUs (those are power.psu's).

Sensors at a critical or non-critical level (fans, temperatures, voltages), memory the
BMC reports as uncorrectable or at its correctable-ECC logging limit, processor machine checks, critical SEL
records (chassis health, intrusion, OS critical stop), and a BMC that did not answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clusterkit.checks._bmc_source import (BMC_SOURCES, correctable, ecc_limit, is_psu, is_redundancy, machine_check,
                                           read_bmc, row, sel_critical, sensor_level, uncorrectable, when)
from clusterkit.checks.registry import check
from clusterkit.parsers.ipmi import IPMI_SEL_INFO, SelEvent
from clusterkit.results import CheckResult, Finding

if TYPE_CHECKING:
    from clusterkit.analysis import NodeContext

ECC_ACTION = ("the BMC stopped logging corrected errors of this memory: find the DIMM (`ras-mc-ctl --error-count`, "
              "`edac-util -v`, the vendor's event log) and replace it at the next window; clear the SEL afterwards")
CE_ACTION = ("the BMC logged a corrected memory error: note the DIMM it names and watch it (`ras-mc-ctl --error-count`, "
             "`edac-util -v`, the SEL); replace it if corrected errors recur or an uncorrectable one follows")
UE_ACTION = "an uncorrectable memory error: drain the node and replace the DIMM the BMC/EDAC names"


MCE_ACTION = ("a machine check on the CPU: drain the node; read its bank and socket (mcelog, `ras-mc-ctl --errors`, the "
              "vendor's event log) and service the CPU or board it names")
MCE_CORRECTED_ACTION = ("corrected by the CPU: watch the count (`ras-mc-ctl --errors`); service the CPU or board if it keeps "
                        "rising or an uncorrected one follows")


def _hardware_error_findings(name: str, texts: list[str], where: str, evidence: str) -> list[Finding]:
    """A processor machine check (uncorrected or corrected), or a memory error, the BMC reports."""
    out = []
    if (mce := machine_check(texts)) is not None:
        text, uncorrected = mce
        out.append(Finding("HOST_MCE_HARDWARE_ERROR" if uncorrected else "HOST_MCE_CORRECTED",
                           "fail" if uncorrected else "warn", name, f"{where}: {name}: {text}", observed=text,
                           action=MCE_ACTION if uncorrected else MCE_CORRECTED_ACTION, evidence=evidence))
    elif (ue := uncorrectable(texts)) is not None:
        out.append(Finding("HOST_EDAC_UNCORRECTED", "fail", name, f"{where}: {name}: {ue}", observed=ue,
                           action=UE_ACTION, evidence=evidence))
    elif (lim := ecc_limit(texts)) is not None:
        out.append(Finding("IPMI_MEMORY_CORRECTABLE_ECC_LIMIT", "warn", name, f"{where}: {name}: {lim}", observed=lim,
                           action=ECC_ACTION, evidence=evidence))
    elif (ce := correctable(texts)) is not None:
        out.append(Finding("HOST_EDAC_CORRECTED", "warn", name, f"{where}: {name}: {ce}", observed=ce,
                           action=CE_ACTION, evidence=evidence))
    return out


@check("bmc.health", needs=BMC_SOURCES + (IPMI_SEL_INFO,), needs_any=True)
def bmc_health(ctx: NodeContext) -> CheckResult:
    """BMC sensors and event log: critical sensors, memory and CPU errors, critical events, an unreachable BMC."""
    cid = "bmc.health"
    bmc = read_bmc(ctx)
    findings: list[Finding] = []
    seen: set[tuple[str, str]] = set()

    def add(fs: list[Finding]) -> None:
        for f in fs:
            if (f.code, f.component) not in seen:
                seen.add((f.code, f.component))
                findings.append(f)

    for s in bmc.sensors:
        if is_psu(s) or is_redundancy(s):
            continue                                   # power.psu judges them
        add(_hardware_error_findings(s.name, s.states + [s.reading], "BMC sensor", f"{s.name} | {s.status} | {s.reading}"))
        level = sensor_level(s)
        if level is not None:
            code = "IPMI_SENSOR_CRITICAL" if level == "fail" else "IPMI_SENSOR_WARNING"
            add([Finding(code, level, s.name, f"BMC sensor {s.name} is {s.status}" + (f" ({s.reading})" if s.reading else ""),
                         observed=s.reading or s.status, evidence=f"{s.name} | {s.status} | {s.reading}",
                         action="check what the sensor measures (fan spinning, airflow, inlet temperature, the voltage "
                                "regulator) and the BMC's thresholds (`ipmitool sensor get`)")])
    groups: dict[tuple[str, str], list[SelEvent]] = {}     # same sensor, same event: one finding with a count
    for e in bmc.events:
        if not e.is_psu:
            groups.setdefault((e.sensor, e.event), []).append(e)
    for es in groups.values():
        e, n = es[-1], len(es)
        times = f", {n} times since {when(es[0])}" if n > 1 else ""
        add(_hardware_error_findings(e.sensor, [e.event], f"BMC event log ({when(e)}{times})", row(e)))
        if sel_critical(e) and not uncorrectable([e.event]) and not machine_check([e.event]):
            add([Finding("IPMI_SEL_CRITICAL_EVENT", "warn", e.sensor,
                         f"BMC event log: {e.sensor}: {e.event} ({when(e)}{times})",
                         observed=n, unit="events", evidence=row(e),
                         action="look the event up in the vendor's event log (iLO IML, iDRAC LC log, XCC): it names the "
                                "part; fix it, then clear the SEL (`ipmitool sel clear`) so the next one stands out")])
    for path, line in bmc.unreachable[:1]:
        add([Finding("IPMI_BMC_UNREACHABLE", "warn", "BMC", f"the BMC did not answer: {line}", evidence=f"{path}: {line}",
                     action="check the BMC's network, address and credentials (or the ipmi_si/ipmi_devintf modules "
                            "for local access); `ipmitool mc reset cold` if it hangs: PSU and sensor state is unknown")])
    if ctx.exists(IPMI_SEL_INFO):
        info = ctx.parsed(IPMI_SEL_INFO)
        if info.full:
            add([Finding("IPMI_SEL_FULL", "warn", "BMC event log",
                         f"the BMC's event log is full ({info.entries} entries, {info.percent_used:g}% used"
                         + (", overflow" if info.overflow else "") + "): new hardware events are being dropped"
                         if info.percent_used is not None else "the BMC's event log is full: new events are dropped",
                         observed=info.percent_used, limit=95, unit="%",
                         action="save it (`ipmitool sel save <file>` or the vendor's log export), read it for hardware "
                                "events, then clear it (`ipmitool sel clear`) so new faults are recorded")])
    n_sensors, n_events = len(bmc.sensors), len(bmc.events)
    return CheckResult.from_findings(cid, findings, f"BMC: {n_sensors} sensors, {n_events} events, nothing critical",
                                     {"bmc_sensors": n_sensors, "bmc_sel_events": n_events})
