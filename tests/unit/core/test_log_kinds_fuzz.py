"""Hypothesis: the fabric manager log, BMC and NVIDIA driver-event parsers never raise anything but
ParseError, whatever mix of their own line shapes and noise they get."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterkit.checks.kernel_log_rules import scan
from clusterkit.parsers import ParseError
from clusterkit.parsers.fabricmanager_log import is_fabricmanager_log, parse_fabricmanager_log
from clusterkit.parsers.freeipmi import is_freeipmi_sel, is_freeipmi_sensors, parse_freeipmi_sel, parse_freeipmi_sensors
from clusterkit.parsers.ipmi_sensors import (is_ipmitool_sensor, is_sdr_csv, is_sdr_v, parse_ipmitool_sensor,
                                             parse_sdr_csv, parse_sdr_v)
from clusterkit.parsers.kernel_log import parse_kernel_log
from clusterkit.parsers.xid import group_xids, sxid_groups, xid_events
from clusterkit.plugins import load_all

load_all()   # every family's kernel-log rules
PARSERS = [parse_fabricmanager_log, parse_freeipmi_sel, parse_freeipmi_sensors, parse_ipmitool_sensor, parse_sdr_csv,
           parse_sdr_v]
RECOGNIZERS = [is_fabricmanager_log, is_freeipmi_sel, is_freeipmi_sensors, is_ipmitool_sensor, is_sdr_csv, is_sdr_v]
TEMPLATES = [
    "[Dec 19 2024 19:17:{n2}] [{level}] [tid {n}] detected NVSwitch {fatal} error {n} on fid 0 on NVSwitch pci bus id "
    "{bus} physical id {d} port {n}",
    "[Dec 19 2024 19:17:{n2}] [INFO] [tid {n}] Fabric Manager version {word} is running",
    "fabric manager NVIDIA GPU driver interface version {word} don't match with driver version {word}.",
    "{ind}Active: {word} ({word}) since {word}", "Job for nvidia-fabricmanager.service failed {word}",
    "Sensor ID              : {word} (0x{h2})", " Entity ID             : {d}.{d} ({word})",
    " Sensor Type (Discrete): {word} (0x{h2})", " States Asserted       : {word}", "                         [{word}]",
    " Status                : {word}",
    "{word} | {num} | {word} | {status} | {num} | {num} | na | {num} | {num} | {num}", "{word} | {num} | {status}",
    "{word},{h2}h,{status},{d}.{d},{word},{word}",
    "{n} | {mon}-{n2}-2024 | 10:00:{n2} | {word} | {word} | {state} | {word}",
    "ID | Date | Time | Name | Type | State | Event", "ID | Name | Type | State | Reading | Units | Event",
    "{n} | {word} | {word} | {state} | {num} | {word} | '{word}' '{word}'",
    "[{n}.{n}] nvidia-nvswitch{d}: SXid (PCI:{bus}): {n}, {fatal}, Link {n} {word}",
    "[{n}.{n}] NVRM: Xid (PCI:{bus}): {n}, pid={n}, name={word}, {word} caused by previous Xid {n}",
    "{ind}NVRM: {word} fallen off the bus {word}", "[{n}.{n}] EDAC MC{d}: {n} CE {word} on {word} ({word})",
    "[{n}.{n}] mce: [Hardware Error]: CPU {d}: Machine Check: {d} Bank {n}: {h16}",
]
words = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-/.:#[]() ", max_size=24)
nums = st.one_of(st.integers(-5, 10**6).map(str), st.sampled_from(["na", "N/A", "0x0100", "", "1e309", "-0.5"]))
line = st.builds(
    lambda t, **kw: t.format(**kw), st.sampled_from(TEMPLATES),
    word=words, num=nums, n=st.integers(0, 99999).map(str), n2=st.integers(0, 99).map(lambda v: f"{v:02d}"),
    d=st.integers(0, 9).map(str), h2=st.sampled_from(["00", "5A", "zz", "ff"]),
    h16=st.sampled_from(["b200000000070f0f", "8c00004f000800c2", "00000000087f0022", "zz"]),
    bus=st.sampled_from(["0000:04:00.0", "00000000:84:00.0", "...", "zz:zz"]), level=st.sampled_from(["INFO", "ERROR"]),
    fatal=st.sampled_from(["fatal", "non-fatal", "Fatal", "Non-fatal", "Severity 1", ""]),
    status=st.sampled_from(["ok", "cr", "nr", "nc", "ns", "Critical", "0x01", "??"]),
    state=st.sampled_from(["Nominal", "Warning", "Critical", "N/A", "x"]), mon=st.sampled_from(["Mar", "Oct", "xx"]),
    ind=st.sampled_from(["", "   ", "\t"]))
text = st.lists(st.one_of(line, st.text(max_size=60)), max_size=40).map("\n".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=text, which=st.sampled_from(PARSERS))
def test_new_parsers_give_a_result_or_a_parse_error(text, which):
    try:
        which(text)
    except ParseError as e:
        assert str(e)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=text)
def test_recognizers_and_driver_event_readers_never_raise(text):
    for r in RECOGNIZERS:
        assert r(text) in (True, False)
    lines = parse_kernel_log(text)
    group_xids(xid_events(lines))
    sxid_groups(lines)
    scan(lines)
