"""The Prometheus series of each check metric, declared once.

Checks name their metrics for people and for the history (`busbw_large_gbps`, `clock_skew_ms`); the
exporter serves them under Prometheus's conventions: a `clusterkit_<family>_` prefix that says what is
measured, base units (seconds, bytes, watts, celsius, ratio) as the last word, no `_total` on a gauge,
and a label where one family holds several readings (`result="passed"`, `counter="symbol_error"`).
promtool's lint also refuses a type word in a name (`counter`) and bits (bytes are the base unit).
A metric declared nowhere is served as `clusterkit_check_metric{metric="<name>"}`: its meaning is in the
label, never in a bare name. docs/metrics.md's tables are generated from here, with the list of
series renamed from the earlier one-family-per-metric names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

GENERIC = "clusterkit_check_metric"
GIB = 2.0 ** 30


def _dbm_to_watts(dbm: float) -> float:
    return 10.0 ** (dbm / 10.0) / 1000.0


@dataclass(frozen=True)
class Series:
    family: str
    help: str
    scale: float | Callable[[float], float] = 1.0   # the check's unit -> the base unit
    labels: tuple[tuple[str, str], ...] = ()         # fixed labels that tell readings of one family apart
    unit: str = ""                                    # the check's unit, for the docs ("GB/s -> bytes/s")

    def convert(self, v: float) -> float:
        return self.scale(v) if callable(self.scale) else v * self.scale


def _s(family: str, help_text: str, scale: float | Callable[[float], float] = 1.0, unit: str = "",
       **labels: str) -> Series:
    return Series("clusterkit_" + family, help_text, scale, tuple(labels.items()), unit)


_BUSBW = "NCCL all-reduce bus bandwidth"
# check metric -> series; several metrics may share a family when a label tells them apart
EXACT: dict[str, Series] = {
    # host
    "clock_skew_ms": _s("host_clock_skew_seconds", "Clock offset from the fleet's agreeing majority.", 1e-3, "ms"),
    "clock_uncertainty_ms": _s("host_clock_uncertainty_seconds", "Uncertainty of the clock offset measurement.",
                               1e-3, "ms"),
    "disk_free_percent_min": _s("host_disk_free_min_ratio", "Free share of the fullest file system (0-1).", 0.01,
                                "percent"),
    "memory_available_gib": _s("host_memory_available_bytes", "MemAvailable.", GIB, "GiB"),
    "memory_total_gib": _s("host_memory_size_bytes", "MemTotal.", GIB, "GiB"),
    "kernel_log_lines": _s("host_kernel_log_lines", "Kernel log lines read."),
    "mce_records": _s("host_mce_records", "Machine-check records mcelog decoded."),
    "ras_events": _s("host_ras_events", "Events rasdaemon recorded (ras-mc-ctl lines: machine checks, memory, PCIe AER)."),
    "probe_seconds_total": _s("host_probe_commands_duration_seconds", "Time the node's probe commands took, "
                                                                     "summed.", unit="s"),
    "probes_total": _s("host_probe_commands", "Probe commands run on the node."),
    "probes_run": _s("host_probes", "Probes of the run by result.", result="run"),
    "probes_not_run": _s("host_probes", "Probes of the run by result.", result="not_run"),
    "probes_skipped": _s("host_probes", "Probes of the run by result.", result="skipped"),
    # gpu, bmc, power
    "gpu_count_detected": _s("gpus_detected", "GPUs the node's tools show."),
    "gpu_power_draw_total_w": _s("gpu_power_draw_watts", "Power draw of all the node's GPUs together.", unit="W"),
    "gpu_dcgm_tests_passed": _s("gpu_dcgm_diag_tests", "dcgmi diag tests by result.", result="passed"),
    "gpu_dcgm_tests_failed": _s("gpu_dcgm_diag_tests", "dcgmi diag tests by result.", result="failed"),
    "gpu_topology_nics": _s("gpu_topology_nics", "NICs in the GPU topology (nvidia-smi topo -m)."),
    "gpu_xid_events": _s("gpu_xid_events", "Xid events in the kernel log."),
    "fabric_manager_log_lines": _s("gpu_fabric_manager_log_lines", "Fabric manager log lines read."),
    "bmc_sel_events": _s("bmc_sel_events", "BMC event log records read."),
    "bmc_sensors": _s("bmc_sensors", "BMC sensors read."),
    "power_psus_failed": _s("power_psus_failed", "Power supplies that report a failure."),
    "power_step_brake_events": _s("power_step_brake_events", "HW power brake events during the power step."),
    "power_step_in_phase_events": _s("power_step_in_phase_brake_events", "Power step brake events several GPUs "
                                                                         "had at the same instant."),
    "power_step_gpus": _s("power_step_gpus", "GPUs loaded in the power step."),
    "power_step_min_load_w": _s("power_step_gpu_load_min_watts", "Lowest steady load power of one GPU in the "
                                                                 "power step.", unit="W"),
    "power_step_total_load_w": _s("power_step_load_watts", "Steady load power of all GPUs in the power step.",
                                  unit="W"),
    "power_step_sample_hz": _s("power_step_sample_rate_hertz", "Power samples per second achieved in the step.",
                               unit="Hz"),
    # nccl
    "busbw_large_gbps": _s("nccl_busbw_large_bytes_per_second", f"{_BUSBW}, median over sizes >= 1 GiB (the gate).",
                           1e9, "GB/s"),
    "busbw_avg_gbps": _s("nccl_busbw_average_bytes_per_second", f"{_BUSBW}, nccl-tests' average.", 1e9, "GB/s"),
    "busbw_peak_gbps": _s("nccl_busbw_peak_bytes_per_second", f"{_BUSBW}, the highest of any size.", 1e9, "GB/s"),
    "expected_busbw_gbps": _s("nccl_busbw_expected_bytes_per_second", f"{_BUSBW} the profile expects.", 1e9,
                              "GB/s"),
    "warn_busbw_gbps": _s("nccl_busbw_warn_below_bytes_per_second", f"{_BUSBW} below which the check warns.", 1e9,
                          "GB/s"),
    "min_busbw_gbps": _s("nccl_busbw_fail_below_bytes_per_second", f"{_BUSBW} below which the check fails.", 1e9,
                         "GB/s"),
    "ratio_to_expected": _s("nccl_busbw_expected_ratio", f"{_BUSBW} as a share of the expected figure."),
    "fleet_median_gbps": _s("nccl_fleet_busbw_median_bytes_per_second", f"Median single-node {_BUSBW} of the "
                                                                        "fleet.", 1e9, "GB/s"),
    "below_median_percent": _s("nccl_fleet_below_median_ratio", "How far the node's bus bandwidth is below the "
                                                                "fleet median (0-1).", 0.01, "percent"),
    "flagged": _s("nccl_fleet_nodes_flagged", "Nodes far below the fleet's median bus bandwidth."),
    "collective_tests": _s("nccl_collective_tests", "Collective tests in one nccl-tests log (each judged on its "
                                                    "own)."),
    "nodes": _s("nccl_test_nodes", "Nodes in the NCCL test."),
    "ranks": _s("nccl_test_ranks", "Ranks (GPUs) in the NCCL test."),
    "culprits": _s("nccl_localize_culprits", "Nodes or NICs localization found slow."),
    "rounds": _s("nccl_localize_rounds", "Rounds of tests localization ran."),
    "tests": _s("nccl_localize_tests", "NCCL tests localization ran."),
    "total_time_s": _s("nccl_localize_duration_seconds", "How long localization took.", unit="s"),
    # fabric
    "counters_saturated": _s("fabric_counters_saturated", "Error counters at their maximum value."),
    "window_s": _s("fabric_measurement_window_seconds", "Time between the before and after counter snapshots.",
                   unit="s"),
    "kernel_link_flaps_24h": _s("fabric_kernel_log_link_flaps", "Link flaps in the kernel log over the last 24 "
                                                                "hours."),
    "link_flaps_total": _s("fabric_link_flaps", "Link flaps seen (counters, kernel log)."),
    "links_bad": _s("fabric_links_bad", "Links with a verdict (fabric.links)."),
    "ports_total": _s("fabric_ports", "HCA ports."),
    "ports_active": _s("fabric_ports_active", "HCA ports Active/LinkUp."),
    "ports_down": _s("fabric_ports_down", "HCA ports down."),
    "ib_port_rate_min_gbps": _s("fabric_port_rate_min_bytes_per_second", "Slowest InfiniBand port rate.", 1e9 / 8,
                                "Gb/s"),
    "effective_ber_max": _s("fabric_effective_bit_error_ratio", "Highest post-FEC bit error ratio of the links."),
    "raw_ber_max": _s("fabric_raw_bit_error_ratio", "Highest pre-FEC bit error ratio of the links."),
    "module_temperature_c_max": _s("fabric_optic_temperature_max_celsius", "Hottest transceiver module.",
                                   unit="C"),
    "rx_power_dbm_min": _s("fabric_optic_rx_power_min_watts", "Weakest received optical power of any lane.",
                           _dbm_to_watts, "dBm"),
    "tx_power_dbm_min": _s("fabric_optic_tx_power_min_watts", "Weakest transmitted optical power of any lane.",
                           _dbm_to_watts, "dBm"),
    "modules_read": _s("fabric_optics_read", "Transceiver modules read."),
    "switch_temperature_c_max": _s("fabric_switch_temperature_max_celsius", "Hottest switch.", unit="C"),
    "switches_read": _s("fabric_switches_read", "Switches read (ibswinfo)."),
    "ibdiagnet_errors": _s("fabric_ibdiagnet_errors", "Errors in ibdiagnet's stage summary."),
    "ibdiagnet_warnings": _s("fabric_ibdiagnet_warnings", "Warnings in ibdiagnet's stage summary."),
}

# metrics named after something else: a counter's largest increase, a watched metric's regression
PATTERNS: tuple[tuple[re.Pattern[str], str, Callable[[re.Match[str]], Series]], ...] = (
    (re.compile(r"(?P<counter>[a-z0-9_]+)_delta_max"), "<counter>_delta_max",
     lambda m: _s("fabric_error_increase_max", "Largest increase of an error counter over the window, of any "
                                               "port; `counter` names it.", counter=m["counter"])),
    (re.compile(r"(?P<metric>[a-z0-9_]+)_regression_percent"), "<metric>_regression_percent",
     lambda m: _s("trend_regression_ratio", "How much worse a watched metric got over the trend window (0-1, "
                                            "positive is worse).", 0.01, "percent", metric=m["metric"])),
    # a log of several collective tests: each one's gate value (the log's all-reduce stays busbw_large_gbps)
    (re.compile(r"busbw_large_gbps_(?P<collective>[a-z][a-z_]*)"), "busbw_large_gbps_<collective>",
     lambda m: _s("nccl_collective_busbw_large_bytes_per_second", "NCCL bus bandwidth of one test of a log of "
                  "several, median over sizes >= 1 GiB; `collective` names it.", 1e9, "GB/s",
                  collective=m["collective"])),
)


def series(metric: str) -> Series:
    """The series a check metric is served as."""
    s = EXACT.get(metric)
    if s is not None:
        return s
    for pat, _, make in PATTERNS:
        m = pat.fullmatch(metric)
        if m:
            return make(m)
    return Series(GENERIC, "A check metric clusterkit declares no series for; `metric` names it.",
                  labels=(("metric", metric),))


def declared(metric: str) -> bool:
    return series(metric).family != GENERIC


def _pattern_series(shown: str, make: Callable[[re.Match[str]], Series], pat: re.Pattern[str]) -> Series:
    """A pattern's series with its label shown as `<counter>`."""
    m = pat.fullmatch(shown.replace("<", "").replace(">", ""))
    assert m is not None, shown
    s = make(m)
    return Series(s.family, s.help, s.scale, tuple((k, f"<{k}>" if v == m[k] else v) for k, v in s.labels), s.unit)


def declared_series() -> list[tuple[str, Series]]:
    """(check metric, series) for every declaration, patterns with their label shown as `<name>`."""
    return list(EXACT.items()) + [(shown, _pattern_series(shown, make, pat)) for pat, shown, make in PATTERNS]


def renamed() -> list[tuple[str, str]]:
    """(the series before, the series now) per check metric: the earlier exporter served every metric as
    `clusterkit_<metric>`, in the check's own unit."""
    out = []
    for metric, s in declared_series():
        lab = ",".join(f'{k}="{v}"' for k, v in s.labels)
        out.append((f"clusterkit_{metric}", s.family + (f"{{{lab}}}" if lab else "")))
    return out


def _unit_note(s: Series) -> str:
    if not s.unit:
        return ""
    base = s.family.rsplit("_", 1)[-1] if not s.family.endswith("_per_second") else "bytes per second"
    if callable(s.scale):
        return f"{s.unit} -> {base}"
    factor = "2^30" if s.scale == GIB else f"{s.scale:g}"
    return s.unit if s.scale == 1.0 else f"{s.unit} x {factor} -> {base}"


def docs_series_table() -> str:
    """docs/metrics.md: each check metric's series."""
    rows = ["| check metric | series | unit | meaning |", "|---|---|---|---|"]
    for metric, s in declared_series():
        lab = ",".join(f'{k}="{v}"' for k, v in s.labels)
        rows.append(f"| `{metric}` | `{s.family}" + (f"{{{lab}}}" if lab else "") + f"` | {_unit_note(s)} | {s.help} |")
    return "\n".join(rows)


def docs_renamed_table() -> str:
    """docs/metrics.md: the series renamed from the earlier names."""
    rows = ["| before | now |", "|---|---|"]
    rows += [f"| `{old}` | `{new}` |" for old, new in renamed()]
    return "\n".join(rows)
