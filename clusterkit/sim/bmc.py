"""Simulated `ipmitool sdr -v`: full sensor records as a BMC prints them.

The PSU picture is the one sim/gpu.py writes for `ipmitool sdr type "Power Supply"`
(the power.node_brake_psu_lost fault: PS2 'AC lost', redundancy degraded); the
discrete states sit under `States Asserted`, with the capability lists
(`Assertions Enabled`) that a reader must not take for states.
"""

from __future__ import annotations

from clusterkit.evidence.bundle import BundleWriter
from clusterkit.parsers.ipmi_sensors import IPMI_SDR_V
from clusterkit.sim.registry import SimNode, node_generator

_PSU_CAPS = ("Presence detected", "Failure detected", "Predictive failure", "Power Supply AC lost", "Config Error")
_REDUNDANCY_CAPS = ("Fully Redundant", "Redundancy Lost", "Redundancy Degraded",
                    "Non-Redundant: Sufficient from Redundant", "Non-Redundant: Insufficient Resources")


def _listing(label: str, kind: str, states: tuple[str, ...] | list[str]) -> str:
    pad = " " * 25
    return f" {label:<22}: {kind}\n" + "".join(f"{pad}[{s}]\n" for s in states)


def _discrete(name: str, sid: int, entity: str, kind: str, code: int, states: list[str], caps: tuple[str, ...]) -> str:
    return (f"Sensor ID              : {name} (0x{sid:x})\n Entity ID             : {entity}\n"
            f" Sensor Type (Discrete): {kind} (0x{code:02x})\n Sensor Reading        : 0h\n"
            " Event Message Control : Per-threshold\n"
            + _listing("States Asserted", kind, states) + _listing("Assertion Events", kind, states)
            + _listing("Assertions Enabled", kind, caps) + _listing("Deassertions Enabled", kind, caps)
            + " OEM                   : 0\n\n")


def _threshold(name: str, sid: int, entity: str, kind: str, code: int, reading: str, unc: float, ucr: float) -> str:
    return (f"Sensor ID              : {name} (0x{sid:x})\n Entity ID             : {entity}\n"
            f" Sensor Type (Threshold)  : {kind} (0x{code:02x})\n Sensor Reading        : {reading}\n"
            f" Status                : ok\n Upper critical        : {ucr:.3f}\n Upper non-critical    : {unc:.3f}\n"
            " Positive Hysteresis   : 2.000\n Negative Hysteresis   : 2.000\n Event Message Control : Per-threshold\n"
            " Readable Thresholds   : unc ucr \n Threshold Read Mask   : unc ucr \n Assertion Events      : \n"
            " Assertions Enabled    : unc+ ucr+ \n Deassertions Enabled  : unc+ ucr+ \n\n")


def render_sdr_v(node: SimNode) -> str:
    lost = "power.node_brake_psu_lost" in node.faults
    out = [_threshold(f"CPU{i} Temp", i, f"3.{i} (Processor)", "Temperature", 0x01,
                      f"{node.rng.randint(41, 55)} (+/- 0) degrees C", 85.0, 95.0) for i in (1, 2)]
    out.append(_threshold("Inlet Temp", 0x5, "64.1 (Air Inlet)", "Temperature", 0x01,
                          f"{node.rng.randint(21, 25)} (+/- 1) degrees C", 40.0, 45.0))
    out += [_threshold(f"FAN{i}", 0x40 + i, f"29.{i} (Fan Device)", "Fan", 0x04,
                       f"{node.rng.randrange(9000, 11000, 120)} (+/- 120) RPM", 25000.0, 26000.0) for i in range(1, 5)]
    for i in range(1, 5):
        states = ["Presence detected"] + (["Power Supply AC lost"] if lost and i == 2 else [])
        out.append(_discrete(f"PS{i} Status", 0x50 + i, f"10.{i} (Power Supply)", "Power Supply", 0x08, states, _PSU_CAPS))
    out.append(_discrete("PSU Redundancy", 0x60, "21.1 (Power Management)", "Power Unit", 0x09,
                         ["Redundancy Degraded" if lost else "Fully Redundant"], _REDUNDANCY_CAPS))
    return "".join(out)


@node_generator("bmc")
def generate_bmc(node: SimNode, w: BundleWriter) -> None:
    w.put(IPMI_SDR_V, render_sdr_v(node), duration_s=4.2)
