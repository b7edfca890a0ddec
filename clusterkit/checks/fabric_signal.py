"""fabric.ber and fabric.optics: bit error rates and optical power per lane."""

from __future__ import annotations

import math

from clusterkit.checks._fabric_common import (ETHTOOL_M, ETHTOOL_S, MLXCABLES, MLXLINK, NodeFabric, component,
                                              each_parsed, mlxlink_reports, node_fabric, parse_errors_finding)
from clusterkit.checks.fabric_counters import _ethtool
from clusterkit.checks.registry import check
from clusterkit.results import CheckResult, Finding

BER_PARAMS = {"fabric.max_effective_ber": float, "fabric.max_raw_ber": float, "fabric.warn_raw_ber": float}
OPTICS_PARAMS = {"fabric.rx_power_warn_dbm": float, "fabric.rx_power_alarm_dbm": float,
                 "fabric.tx_power_warn_dbm": float, "fabric.tx_power_alarm_dbm": float,
                 "fabric.module_temperature_warn_c": float, "fabric.module_temperature_alarm_c": float,
                 "fabric.rx_no_light_dbm": float}
BER_ACTION = ("clean the fiber end faces at both ends and reseat; if the BER stays high replace the cable, then the "
              "optic at the end whose receiver sees the errors")


def _mlxlink_reports(ctx, fabric: NodeFabric):
    return mlxlink_reports(ctx, fabric.errors)


def ber_findings(ctx, fabric: NodeFabric) -> tuple[list[tuple[str, Finding]], dict]:
    out: list[tuple[str, Finding]] = []
    eff_lim = ctx.profile.get("fabric.max_effective_ber", 1e-12)
    raw_lim = ctx.profile.get("fabric.max_raw_ber", 2.4e-4)
    raw_warn = ctx.profile.get("fabric.warn_raw_ber", 1e-5)
    eff_max = raw_max = None

    def judge(key: str, comp: str, eff: float | None, raw: float | None, src: str) -> None:
        nonlocal eff_max, raw_max
        if eff is not None:
            eff_max = eff if eff_max is None else max(eff_max, eff)
            if eff > eff_lim:
                out.append((key, Finding("FABRIC_EFFECTIVE_BER_HIGH", "fail", comp,
                                         f"effective (post-FEC) BER {eff:.2g} above {eff_lim:.0e}", observed=eff,
                                         limit=eff_lim, action=BER_ACTION, evidence=src)))
        if raw is not None:
            raw_max = raw if raw_max is None else max(raw_max, raw)
            if raw > raw_lim:
                out.append((key, Finding("FABRIC_RAW_BER_HIGH", "fail", comp,
                                         f"raw (pre-FEC) BER {raw:.2g} above the FEC limit {raw_lim:.1e}",
                                         observed=raw, limit=raw_lim, action=BER_ACTION, evidence=src)))
            elif raw > raw_warn:
                out.append((key, Finding("FABRIC_RAW_BER_HIGH", "warn", comp,
                                         f"raw (pre-FEC) BER {raw:.2g} is within FEC's reach but above {raw_warn:.0e}",
                                         observed=raw, limit=raw_warn,
                                         action="clean the fiber ends at the next maintenance window; watch the trend",
                                         evidence=src)))

    for name, rep in _mlxlink_reports(ctx, fabric):
        key = f"{name}/{rep.port or 1}"
        comp = component(fabric, name, rep.port or 1)
        judge(key, comp, rep.effective_ber, rep.raw_ber, f"mlxlink {name}")
        rec = (rep.recommendation or "").strip()
        if rec and not rec.lower().startswith("no issue"):
            out.append((key, Finding("FABRIC_MLXLINK_RECOMMENDATION", "warn", comp, f"mlxlink: {rec}",
                                     action=rec, evidence=f"mlxlink {name}")))
    for ifname, a, b in _ethtool(ctx, fabric):
        bits = a.counters.get("rx_bits_phy")
        if not bits:
            continue
        b_c = b.counters if b else {}
        dbits = bits - b_c.get("rx_bits_phy", 0)
        if dbits <= 0:
            continue
        corr = a.counters.get("rx_corrected_bits_phy")
        unc = a.counters.get("rx_pcs_symbol_err_phy")
        raw = (corr - b_c.get("rx_corrected_bits_phy", 0)) / dbits if corr is not None else None
        eff = (unc - b_c.get("rx_pcs_symbol_err_phy", 0)) / dbits if unc is not None else None
        dev = fabric.device_of_netdev(ifname) or ifname
        judge(f"{dev}/1", component(fabric, ifname), eff, raw,
              f"ethtool -S {ifname}: rx_bits_phy {dbits}, corrected {corr}, uncorrectable symbols {unc}")
    metrics = {}
    if eff_max is not None:
        metrics["effective_ber_max"] = eff_max
    if raw_max is not None:
        metrics["raw_ber_max"] = raw_max
    return out, metrics


@check("fabric.ber", needs=(MLXLINK, ETHTOOL_S), needs_any=True, params=BER_PARAMS)
def check_ber(ctx) -> CheckResult:
    """Effective (post-FEC) and raw (pre-FEC) bit error rate from mlxlink or ethtool PHY counters."""
    fabric = node_fabric(ctx)
    pairs, metrics = ber_findings(ctx, fabric)
    findings = parse_errors_finding(fabric.errors) + [f for _, f in pairs]
    if not metrics and not findings:
        return CheckResult.skip("fabric.ber", "no BER in the evidence (mlxlink absent, ethtool -S has no rx_bits_phy)")
    ok = f"BER within limits (effective max {metrics.get('effective_ber_max', float('nan')):.2g})"
    return CheckResult.from_findings("fabric.ber", findings, ok, metrics)


def _modules(ctx, fabric: NodeFabric):
    for name, mi in each_parsed(ctx, ETHTOOL_M, lambda mi: mi.interface, fabric.errors):
        yield name, mi, f"ethtool -m {name}"
    for _, cables in each_parsed(ctx, MLXCABLES, lambda _: None, fabric.errors):
        for mi in cables:
            yield mi.interface or "cable", mi, "mlxcables"
    for name, rep in _mlxlink_reports(ctx, fabric):
        if rep.module is not None:
            yield name, rep.module, f"mlxlink -m {name}"


def optics_findings(ctx, fabric: NodeFabric) -> tuple[list[tuple[str, Finding]], dict]:
    out: list[tuple[str, Finding]] = []
    p = ctx.profile
    rx_warn, rx_alarm = p.get("fabric.rx_power_warn_dbm", -7.0), p.get("fabric.rx_power_alarm_dbm", -11.0)
    tx_warn, tx_alarm = p.get("fabric.tx_power_warn_dbm", -7.0), p.get("fabric.tx_power_alarm_dbm", -11.0)
    t_warn, t_alarm = p.get("fabric.module_temperature_warn_c", 70.0), p.get("fabric.module_temperature_alarm_c", 80.0)
    no_light = p.get("fabric.rx_no_light_dbm", -30.0)
    rx_min = tx_min = t_max = None
    modules = 0
    for name, mi, src in _modules(ctx, fabric):
        modules += 1
        dev = name if name.startswith("mlx") else (fabric.device_of_netdev(name) or name)
        key = f"{dev}/1"
        comp = component(fabric, name)
        part = " ".join(x for x in (mi.vendor, mi.part_number, f"SN {mi.serial}" if mi.serial else None) if x)
        if not mi.rx_power_dbm and not mi.tx_power_dbm and mi.temperature_c is None:
            if mi.is_optical and mi.ddm is not False:   # an optic whose readings are not in the text: cut?
                out.append((key, Finding("INPUT_UNUSABLE", "error", comp,
                                         f"{src}: an optical module ({mi.media}) but no light levels, bias or "
                                         "temperature in the output (cut, or the module reports no diagnostics)",
                                         action=f"re-collect the whole `{src}`; if the module has no DDM, judge the "
                                                "link by its error counters (fabric.counters)")))
            continue  # passive copper / no DDM: nothing optical to judge
        rx_lo_alarm = mi.rx_power_limits.low_alarm if mi.rx_power_limits.low_alarm is not None else rx_alarm
        rx_lo_warn = mi.rx_power_limits.low_warn if mi.rx_power_limits.low_warn is not None else max(rx_warn, rx_lo_alarm)
        tx_lo_alarm = mi.tx_power_limits.low_alarm if mi.tx_power_limits.low_alarm is not None else tx_alarm
        tx_lo_warn = mi.tx_power_limits.low_warn if mi.tx_power_limits.low_warn is not None else max(tx_warn, tx_lo_alarm)
        weak_rx = [(i + 1, v) for i, v in enumerate(mi.rx_power_dbm) if v < rx_lo_warn]
        weak_tx = [(i + 1, v) for i, v in enumerate(mi.tx_power_dbm) if v < tx_lo_warn]
        if mi.rx_power_dbm:
            rx_min = min(mi.rx_power_dbm + ([rx_min] if rx_min is not None else []))
        if mi.tx_power_dbm:
            tx_min = min(mi.tx_power_dbm + ([tx_min] if tx_min is not None else []))
        lanes = len(mi.rx_power_dbm)
        healthy_rx = [v for v in mi.rx_power_dbm if v >= rx_lo_warn]
        for lane, v in weak_rx:
            sev = "fail" if v < rx_lo_alarm else "warn"
            few = lanes > 1 and len(weak_rx) <= lanes // 2 and not weak_tx
            if few:
                code = "FABRIC_RX_LANE_WEAK_FIBER"
                action = (f"clean the fiber/MPO connector on lane {lane} at both ends and inspect it; re-terminate or "
                          f"replace the patch cable if it stays low. The optic is likely fine: its other lanes and "
                          f"its transmitter are healthy")
                msg = (f"{name} lane {lane} receives {v:.2f} dBm while the other lanes receive "
                       f"{min(healthy_rx):.2f}..{max(healthy_rx):.2f} dBm: dirty or badly cleaved fiber on that lane")
            else:
                code = "FABRIC_RX_POWER_LOW"
                action = ("all lanes weak: check the far end's optic transmit power, then replace the cable; "
                          "clean both ends first")
                msg = f"{name} lane {lane} receive power {v:.2f} dBm below the module's limit {rx_lo_warn:.2f}"
            out.append((key, Finding(code, sev, comp + (f" [{part}]" if part else ""), msg, observed=v,
                                     limit=rx_lo_alarm if sev == "fail" else rx_lo_warn, unit="dBm",
                                     action=action, evidence=f"{src}: rx " + ", ".join(f"{x:.2f}" for x in mi.rx_power_dbm))))
        for lane, v in weak_tx:
            sev = "fail" if v < tx_lo_alarm else "warn"
            out.append((key, Finding("FABRIC_TX_POWER_LOW", sev, comp + (f" [{part}]" if part else ""),
                                     f"{name} lane {lane} transmit power {v:.2f} dBm below {tx_lo_warn:.2f}",
                                     observed=v, limit=tx_lo_alarm if sev == "fail" else tx_lo_warn, unit="dBm",
                                     action="replace this optic (its laser is weak)", evidence=src)))
        hi = mi.rx_power_limits.high_alarm
        for i, v in enumerate(mi.rx_power_dbm):
            if hi is not None and v > hi:
                out.append((key, Finding("FABRIC_RX_POWER_HIGH", "warn", comp, f"{name} lane {i + 1} receive power "
                                         f"{v:.2f} dBm above the module's alarm {hi:.2f}", observed=v, limit=hi,
                                         unit="dBm", action="too much light: use the right reach optic or an attenuator")))
        if mi.temperature_c is not None:
            t_max = mi.temperature_c if t_max is None else max(t_max, mi.temperature_c)
            ta = mi.temperature_limits.high_alarm if mi.temperature_limits.high_alarm is not None else t_alarm
            tw = mi.temperature_limits.high_warn if mi.temperature_limits.high_warn is not None else min(t_warn, ta)
            if mi.temperature_c > tw:
                out.append((key, Finding("FABRIC_MODULE_HOT", "fail" if mi.temperature_c > ta else "warn", comp,
                                         f"{name} module at {mi.temperature_c:g} C", observed=mi.temperature_c,
                                         limit=ta if mi.temperature_c > ta else tw, unit="C",
                                         action="check airflow at the NIC/switch cage; replace the optic if it stays hot")))
        bl = mi.bias_limits
        for i, v in enumerate(mi.bias_ma):
            if (bl.low_alarm is not None and v < bl.low_alarm) or (bl.high_alarm is not None and v > bl.high_alarm):
                out.append((key, Finding("FABRIC_LASER_BIAS_OUT_OF_RANGE", "warn", comp,
                                         f"{name} lane {i + 1} laser bias {v:g} mA outside {bl.low_alarm}..{bl.high_alarm}",
                                         observed=v, unit="mA", action="the laser is ageing: replace this optic")))
        # No light at all (a reading at the receiver's floor, or the module's own LOS flag): the fiber is
        # unplugged or broken, or the far end does not transmit; not a dirty connector.
        dark = {i + 1: v for i, v in enumerate(mi.rx_power_dbm) if v <= no_light}
        for lane in sorted(set(mi.los_lanes) | set(dark)):
            if lane in dark:
                out.append((key, Finding("FABRIC_RX_LOS", "fail", comp, f"{name} lane {lane}: no light arriving "
                                         f"({dark[lane]:.2f} dBm, at or below {no_light:g} dBm)", observed=dark[lane],
                                         limit=no_light, unit="dBm",
                                         action="check the fiber is plugged in at both ends and not broken, then that the "
                                                "far end's optic is in and transmitting; clean and reseat")))
            elif not any(lane == l for l, _ in weak_rx):
                out.append((key, Finding("FABRIC_RX_LOS", "fail", comp, f"{name} lane {lane}: module reports Rx loss of signal",
                                         action="clean and reseat the fiber on that lane; check the far-end transmitter")))
    metrics: dict = {"modules_read": modules}
    for k, v in (("rx_power_dbm_min", rx_min), ("tx_power_dbm_min", tx_min), ("module_temperature_c_max", t_max)):
        if v is not None and not math.isinf(v):
            metrics[k] = v
    return out, metrics


@check("fabric.optics", needs=(ETHTOOL_M, MLXLINK, MLXCABLES), needs_any=True, params=OPTICS_PARAMS)
def check_optics(ctx) -> CheckResult:
    """Per-lane Rx/Tx power, bias and temperature against the module's own thresholds."""
    fabric = node_fabric(ctx)
    pairs, metrics = optics_findings(ctx, fabric)
    findings = parse_errors_finding(fabric.errors) + [f for _, f in pairs]
    ok = (f"{metrics['modules_read']} module(s): every lane within its thresholds" if "rx_power_dbm_min" in metrics
          else f"{metrics['modules_read']} module(s) without optical diagnostics (copper or no DDM): nothing to judge")
    return CheckResult.from_findings("fabric.optics", findings, ok, metrics)
