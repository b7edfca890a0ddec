"""BMC sensors and event logs in every form power.psu and bmc.health read, written from the tools'
documented output (ipmitool(1) `sdr -v`, `sensor`, `sdr`, `-c`; FreeIPMI ipmi-sel(8), ipmi-sensors(8))."""

import random

import pytest

from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.evidence.bundle import Bundle
from clusterkit.evidence.kinds import sniff
from clusterkit.parsers import ParseError
from clusterkit.parsers.freeipmi import parse_freeipmi_sel, parse_freeipmi_sensors
from clusterkit.parsers.ipmi_sensors import parse_ipmitool_sensor, parse_sdr_csv, parse_sdr_v
from clusterkit.sim.bmc import render_sdr_v
from clusterkit.sim.registry import SimNode
from clusterkit.suites import Suite

SDR_V = """Sensor ID              : PS2 Status (0x51)
 Entity ID             : 10.2 (Power Supply)
 Sensor Type (Discrete): Power Supply (0x08)
 Sensor Reading        : 0h
 Event Message Control : Per-threshold
 States Asserted       : Power Supply
                         [Presence detected]
                         [Failure detected]
 Assertions Enabled    : Power Supply
                         [Presence detected]
                         [Failure detected]
                         [Power Supply AC lost]

Sensor ID              : PS1 Status (0x50)
 Entity ID             : 10.1 (Power Supply)
 Sensor Type (Discrete): Power Supply (0x08)
 Sensor Reading        : 0h
 States Asserted       : Power Supply
                         [Presence detected]
 Assertions Enabled    : Power Supply
                         [Failure detected]
                         [Power Supply AC lost]

Sensor ID              : CPU1 Temp (0x1)
 Entity ID             : 3.1 (Processor)
 Sensor Type (Threshold)  : Temperature (0x01)
 Sensor Reading        : 97 (+/- 0) degrees C
 Status                : Upper Critical
 Upper critical        : 95.000
 Upper non-critical    : 85.000
 Assertion Events      : ucr+
 Assertions Enabled    : unc+ ucr+
"""
SENSOR = """CPU1 Temp        | 33.000     | degrees C  | ok    | 5.000     | 5.000     | 10.000    | 95.000    | 100.000   | 100.000
FAN3             | 300.000    | RPM        | cr    | 300.000   | 500.000   | 700.000   | 25300.000 | 25400.000 | 25500.000
PS1 Status       | 0x1        | discrete   | 0x0100| na        | na        | na        | na        | na        | na
"""
SDR_LIST = "CPU Temp         | 41 degrees C      | ok\nFAN1             | 0 RPM             | nr\nPS1 Status       | 0x01              | ok\n"
CSV = "PS Redundancy,77h,ok,7.1,Redundancy Lost\nStatus,85h,ok,10.1,Presence detected,Power Supply AC lost\n"
FREEIPMI_SEL = """ID  | Date        | Time     | Name             | Type          | State    | Event Direction   | Event
1   | Nov-20-2026 | 08:14:02 | PS1 Status       | Power Supply  | Critical | Assertion Event   | Power Supply AC lost
2   | Nov-20-2026 | 08:14:10 | PS1 Status       | Power Supply  | Nominal  | Deassertion Event | Power Supply AC lost
3   | Nov-22-2026 | 10:00:00 | Memory           | Memory        | Warning  | Assertion Event   | Correctable memory error logging limit reached
4   | Nov-23-2026 | 13:52:17 | Chassis Intru    | Physical Security | Critical | Assertion Event | General Chassis Intrusion
"""
FREEIPMI_SENSORS = """ID | Name         | Type              | State    | Reading    | Units | Event
4  | CPU Temp     | Temperature       | Nominal  | 37.00      | C     | 'OK'
12 | FAN 2        | Fan               | Critical | 0.00       | RPM   | 'At or Below (<=) Lower Critical Threshold'
79 | PS2 Status   | Power Supply      | Critical | N/A        | N/A   | 'Presence detected' 'Power Supply Failure detected'
"""


def _run(files: dict[str, str], checks=("power.psu", "bmc.health")):
    b = Bundle.virtual("n1", files, {"host": "n1", "declared": {"gpu_count": 8}})
    run = analyze_bundles([b], Suite("t", list(checks)), profiles=ProfileResolver())
    return {c.id: c for c in run.nodes[0].checks}


def _codes(res) -> set[tuple[str, str, str]]:
    return {(f.code, f.severity, f.component) for c in res.values() for f in c.findings}


def test_sdr_v_reads_asserted_states_not_the_enabled_lists():
    s = {x.name: x for x in parse_sdr_v(SDR_V)}
    assert s["PS2 Status"].states == ["Presence detected", "Failure detected"]
    assert s["PS1 Status"].states == ["Presence detected"] and s["PS1 Status"].entity == "10.1"
    assert s["CPU1 Temp"].type == "Temperature" and s["CPU1 Temp"].status == "Upper Critical"
    assert sniff(SDR_V).name == "ipmitool-sdr-v"
    assert _codes(_run({"host/ipmitool-sdr-v.txt": SDR_V})) == {
        ("POWER_PSU_FAILED", "fail", "PS2 Status"), ("IPMI_SENSOR_CRITICAL", "fail", "CPU1 Temp")}


def test_ipmitool_sensor_and_sdr_list():
    assert sniff(SENSOR).name == "ipmitool-sensor" and sniff(SDR_LIST).name == "ipmitool-sensor"
    assert [(x.name, x.status) for x in parse_ipmitool_sensor(SENSOR)] == [
        ("CPU1 Temp", "ok"), ("FAN3", "cr"), ("PS1 Status", "0x0100")]
    assert _codes(_run({"host/ipmitool-sensor.txt": SENSOR})) == {("IPMI_SENSOR_CRITICAL", "fail", "FAN3")}
    assert _codes(_run({"host/ipmitool-sensor.txt": SDR_LIST})) == {("IPMI_SENSOR_CRITICAL", "fail", "FAN1")}


def test_csv_sdr_keeps_every_state_of_a_row():
    assert sniff(CSV).name == "ipmitool-sdr-csv"
    rows = parse_sdr_csv(CSV)
    assert rows[1].states == ["Presence detected", "Power Supply AC lost"]
    assert _codes(_run({"host/ipmitool-sdr-csv.txt": CSV})) == {
        ("POWER_PSU_REDUNDANCY_LOST", "fail", "PS Redundancy"), ("POWER_PSU_FAILED", "fail", "Status")}


def test_freeipmi_sel_history_apart_from_a_current_fault():
    assert sniff(FREEIPMI_SEL).name == "freeipmi-sel"
    ev = parse_freeipmi_sel(FREEIPMI_SEL)
    assert [(e.record, e.direction, e.state) for e in ev[:2]] == [("1", "Asserted", "Critical"), ("2", "Deasserted", "Nominal")]
    got = _codes(_run({"host/ipmi-sel.txt": FREEIPMI_SEL}))
    assert got == {("POWER_PSU_EVENT_HISTORY", "warn", "PS1 Status"), ("IPMI_SEL_CRITICAL_EVENT", "warn", "Chassis Intru"),
                   ("IPMI_MEMORY_CORRECTABLE_ECC_LIMIT", "warn", "Memory")}
    # without the state and direction columns (plain ipmi-sel, no header): the event text alone
    plain = "\n".join("|".join(c for i, c in enumerate(l.split("|")) if i not in (5, 6))
                      for l in FREEIPMI_SEL.splitlines()[1:])
    ev = parse_freeipmi_sel(plain)
    assert len(ev) == 4 and ev[0].event.strip() == "Power Supply AC lost" and ev[0].state == ""
    with pytest.raises(ParseError):
        parse_freeipmi_sel("ID | Date\nnothing here\n")


def test_freeipmi_sensors_with_and_without_state():
    s = parse_freeipmi_sensors(FREEIPMI_SENSORS)
    assert [(x.name, x.status, x.states) for x in s] == [
        ("CPU Temp", "Nominal", []), ("FAN 2", "Critical", ["At or Below (<=) Lower Critical Threshold"]),
        ("PS2 Status", "Critical", ["Presence detected", "Power Supply Failure detected"])]
    assert _codes(_run({"host/ipmi-sensors.txt": FREEIPMI_SENSORS})) == {
        ("IPMI_SENSOR_CRITICAL", "fail", "FAN 2"), ("POWER_PSU_FAILED", "fail", "PS2 Status")}
    no_state = "\n".join("|".join(c for i, c in enumerate(l.split("|")) if i != 3) for l in FREEIPMI_SENSORS.splitlines())
    assert [x.status for x in parse_freeipmi_sensors(no_state)] == ["", "", ""]


def test_ipmitool_sel_memory_and_an_unreachable_bmc():
    sel = ("   1 | 11/03/2026 | 15:01:48 | Memory #0x2b | Correctable ECC logging limit reached | Asserted\n"
           "   2 | 11/04/2026 | 15:01:48 | Memory #0x08 | Uncorrectable ECC | Asserted\n"
           "   3 | 11/05/2026 | 09:00:00 | Fan PSU1 Slow FAN1 | Transition to Non-recoverable | Asserted\n"
           "   4 | 11/05/2026 | 09:00:02 | Fan PSU1 Slow FAN1 | Transition to Non-recoverable | Deasserted\n"
           "Error: Unable to establish IPMI v2 / RMCP+ session\n")
    got = _codes(_run({"host/ipmitool-sel.txt": sel}))
    assert got == {("IPMI_MEMORY_CORRECTABLE_ECC_LIMIT", "warn", "Memory #0x2b"),
                   ("HOST_EDAC_UNCORRECTED", "fail", "Memory #0x08"),
                   ("POWER_PSU_EVENT_HISTORY", "warn", "Fan PSU1 Slow FAN1"), ("IPMI_BMC_UNREACHABLE", "warn", "BMC")}


@pytest.mark.parametrize("faults", [[], ["power.node_brake_psu_lost"]])
def test_simulated_sdr_v_reads_back(faults):
    node = SimNode("sim-1", 0, {}, faults, random.Random(3))
    res = _run({"host/ipmitool-sdr-v.txt": render_sdr_v(node)})
    if faults:
        assert {c for c, _, _ in _codes(res)} == {"POWER_PSU_FAILED", "POWER_PSU_REDUNDANCY_LOST"}
    else:
        assert _codes(res) == set() and res["power.psu"].summary == "4 PSUs present, none failed"


def test_processor_machine_checks_in_the_sel_are_cpu_errors_not_memory():
    """Processor sensor offsets (IPMI sensor type 07h) in ipmitool's and FreeIPMI's wordings: an IERR or an
    uncorrectable machine check is HOST_MCE_HARDWARE_ERROR, a correctable one HOST_MCE_CORRECTED; memory's
    Uncorrectable ECC stays HOST_EDAC_UNCORRECTED."""
    sel = ("   1 | 05/14/2026 | 20:40:26 | Processor #0x40 | Uncorrectable machine check exception | Asserted\n"
           "   2 | 05/14/2026 | 20:42:44 | Processor #0x40 | Uncorrectable machine check exception | Asserted\n"
           "   3 | 05/15/2026 | 01:00:00 | CPU1 Status | IERR | Asserted\n"
           "   4 | 05/16/2026 | 02:00:00 | CPU2 Status | Correctable machine check error | Asserted\n"
           "   5 | 05/16/2026 | 03:00:00 | Memory #0x08 | Uncorrectable ECC | Asserted\n")
    res = _run({"host/ipmitool-sel.txt": sel})
    assert _codes(res) == {("HOST_MCE_HARDWARE_ERROR", "fail", "Processor #0x40"),
                           ("HOST_MCE_HARDWARE_ERROR", "fail", "CPU1 Status"),
                           ("HOST_MCE_CORRECTED", "warn", "CPU2 Status"),
                           ("HOST_EDAC_UNCORRECTED", "fail", "Memory #0x08")}
    mce = next(f for f in res["bmc.health"].findings if f.component == "Processor #0x40")
    assert "2 times" in mce.message and "CPU" in mce.action and "DIMM" not in mce.action
    freeipmi = ("ID  | Date        | Time     | Name          | Type      | State    | Event Direction | Event\n"
                "7   | Nov-20-2026 | 08:14:02 | CPU0 Status   | Processor | Critical | Assertion Event | "
                "Machine Check Exception (Uncorrectable)\n"
                "8   | Nov-20-2026 | 08:15:02 | CPU1 Status   | Processor | Critical | Assertion Event | "
                "Processor Internal Error (IERR)\n")
    # a critical record that is a machine check is said once, by its own code
    assert _codes(_run({"host/ipmi-sel.txt": freeipmi})) == {("HOST_MCE_HARDWARE_ERROR", "fail", "CPU0 Status"),
                                                            ("HOST_MCE_HARDWARE_ERROR", "fail", "CPU1 Status")}
