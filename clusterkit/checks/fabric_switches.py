"""fabric.switches: switch PSUs, fans and temperature from ibswinfo (unmanaged switches)."""

from __future__ import annotations

from clusterkit.checks.registry import check
from clusterkit.parsers import ParseError
from clusterkit.parsers.ibswinfo import IBSWINFO
from clusterkit.results import CheckResult, Finding


@check("fabric.switches", needs=(IBSWINFO,), params={"fabric.switch_temperature_warn_c": float})
def check_switches(ctx) -> CheckResult:
    """Switch power supplies, fans and temperature as the switch itself reports them."""
    findings: list[Finding] = []
    temps: list[float] = []
    limit = ctx.profile.get("fabric.switch_temperature_warn_c", 70.0)
    paths = ctx.glob(IBSWINFO)
    for path in paths:
        try:
            sw = ctx.parsed(path)
        except ParseError as e:
            findings.append(Finding("INPUT_UNUSABLE", "error", path, f"{path}: {e}", action="re-collect"))
            continue
        name = sw.name if sw.name != "switch" else (IBSWINFO.field_of(path) or path)
        for p in sw.psus:
            bad = [what for what, v in (("status", p.status), ("DC power", p.dc_power), ("fan", p.fan_status))
                   if v is not None and v.upper() != "OK"]
            if bad:
                findings.append(Finding("SWITCH_PSU_FAULT", "fail", f"{name} {p.name} (P/N {p.part_number}, S/N {p.serial})",
                                        f"{p.name} reports {', '.join(f'{w} {v}' for w, v in zip(bad, [p.status, p.dc_power, p.fan_status]))}",
                                        observed=p.status, limit="OK",
                                        action=f"check the power feed to {p.name}; replace the PSU (S/N {p.serial}) if it stays faulty"))
        if sw.fan_status and sw.fan_status.upper() != "OK":
            rpm = sorted(sw.fans_rpm.values())
            spin = f"; all {len(rpm)} fans report {rpm[0]:g}-{rpm[-1]:g} rpm" if rpm and rpm[0] > 0 else ""
            stopped = [n for n, v in sw.fans_rpm.items() if v == 0]
            findings.append(Finding(
                "SWITCH_FAN_FAULT", "fail" if stopped else "warn", f"{name} fans",
                f"switch reports fan status {sw.fan_status}{spin}" + (f"; fan(s) {stopped} stopped" if stopped else ""),
                observed=sw.fan_status, limit="OK",
                action=("replace the stopped fan module(s)" if stopped else
                        "reseat the fan modules and check they all blow the same direction (C2P/P2C); replace the "
                        "module the switch flags if the error stays")))
        if sw.temperature_c is not None:
            temps.append(sw.temperature_c)
            if sw.temperature_c > limit:
                findings.append(Finding("SWITCH_HOT", "warn", name, f"switch at {sw.temperature_c:g} C",
                                        observed=sw.temperature_c, limit=limit, unit="C",
                                        action="check the rack's airflow and the switch fans"))
    metrics = {"switches_read": len(paths)}
    if temps:
        metrics["switch_temperature_c_max"] = max(temps)
    return CheckResult.from_findings("fabric.switches", findings, f"{len(paths)} switch(es): PSUs and fans OK", metrics)
