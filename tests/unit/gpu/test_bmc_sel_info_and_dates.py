"""How full the BMC's event log is, in ipmitool's and FreeIPMI's words, and SEL rows as newer ipmitool prints
them (strftime `%x` dates, `%X %Z` times). Fixtures written from ipmitool(1) `sel info` / `sel elist` and
FreeIPMI ipmi-sel(8) `--info` (field names as ipmi-sel.c prints them)."""

import pytest

from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.evidence.bundle import Bundle
from clusterkit.evidence.kinds import sniff
from clusterkit.parsers import ParseError
from clusterkit.parsers.ipmi import parse_sel, parse_sel_info
from clusterkit.suites import Suite

FREEIPMI_INFO = """\
SEL version                            : 1.5
Number of log entries                  : {n}
Free space remaining                   : {free} bytes
Recent addition timestamp              : 11/29/2026 - 06:13:47
Recent erase timestamp                 : 10/01/2026 - 05:38:08
Get SEL Allocation Information Command : supported
Reserve SEL Command                    : supported
Partial Add SEL Entry Command          : supported
Delete SEL Command                     : supported
Events dropped due to lack of space    : {dropped}
Number of possible allocation units    : 3639
Allocation unit size                   : 18 bytes
Number of free allocation units        : {units}
Largest free block                     : {units} allocation units
Maximum record size                    : 1 allocation units
"""


def _bmc(files: dict[str, str]):
    b = Bundle.virtual("n1", files, {"host": "n1"})
    run = analyze_bundles([b], Suite("t", ["bmc.health"]), profiles=ProfileResolver())
    (res,) = run.nodes[0].checks
    return res.status, {(f.code, f.severity, f.component): f for f in res.findings}


def test_freeipmi_sel_info_is_the_same_record_as_ipmitools():
    full = FREEIPMI_INFO.format(n=3639, free=0, dropped="No", units=0)
    assert sniff(full).name == "ipmitool-sel-info"
    info = parse_sel_info(full)
    assert (info.entries, info.free_bytes, info.percent_used, info.overflow) == (3639, 0, 100.0, False)
    assert info.full
    status, found = _bmc({"host/ipmitool-sel-info.txt": full})
    assert status == "warn" and "3639 entries, 100% used" in found[("IPMI_SEL_FULL", "warn", "BMC event log")].message

    healthy = FREEIPMI_INFO.format(n=120, free=63342, dropped="No", units=3519)
    info = parse_sel_info(healthy)
    assert (info.entries, info.free_bytes, info.percent_used, info.full) == (120, 63342, 3.3, False)
    assert _bmc({"host/ipmitool-sel-info.txt": healthy}) == ("pass", {})


def test_freeipmi_events_dropped_is_an_overflow_and_a_grep_keeps_it_readable():
    dropped = FREEIPMI_INFO.format(n=3639, free=0, dropped="Yes", units=0)
    assert parse_sel_info(dropped).overflow is True
    # `ipmi-sel --info | grep -E 'entries|Free space'`: two of its key lines are enough
    fragment = "Number of log entries                  : 512\nFree space remaining                   : 0 bytes\n"
    assert sniff(fragment).name == "ipmitool-sel-info"
    info = parse_sel_info(fragment)
    assert (info.entries, info.free_bytes, info.percent_used, info.full) == (512, 0, None, True)
    assert _bmc({"host/ipmitool-sel-info.txt": fragment})[0] == "warn"
    # one such line is not enough to call a paste SEL info
    lone = sniff("Number of log entries : 512\n")
    assert lone is None or lone.name != "ipmitool-sel-info"


def test_ipmitool_sel_info_still_reads_and_garbage_is_a_parse_error():
    info = parse_sel_info("SEL Information\nVersion          : 1.5 (v1.5, v2 compliant)\nEntries          : 490\n"
                          "Free Space       : 8544 bytes\nPercent Used     : 12%\nOverflow         : false\n"
                          "# of Alloc Units : 909\n# Free Units     : 464\n")
    assert (info.entries, info.free_bytes, info.percent_used, info.overflow, info.full) == (490, 8544, 12.0, False, False)
    with pytest.raises(ParseError):
        parse_sel_info("SEL version : 1.5\nReserve SEL Command : supported\n")


@pytest.mark.parametrize("date,time", [("12/14/22", "23:09:44 CET"), ("12/14/2022", "23:09:44"),
                                       ("14.12.2022", "23:09:44 MEZ"), ("2022-12-14", "11:09:44 PM UTC")])
def test_one_sel_row_with_a_locale_date_or_a_time_zone_is_read(date, time):
    row = f"  3a | {date} | {time} | Memory #0x88 | Correctable ECC (CPU0_G1) | Asserted\n"
    assert sniff(row).name == "ipmitool-sel"
    (e,) = parse_sel(row)
    assert (e.record, e.date, e.time, e.sensor, e.direction) == ("3a", date, time, "Memory #0x88", "Asserted")


def test_a_corrected_memory_error_in_the_sel_warns_below_the_logging_limit():
    sel = "  3a | 12/14/22 | 23:09:44 CET | Memory #0x88 | Correctable ECC (CPU0_G1) | Asserted\n"
    status, found = _bmc({"host/ipmitool-sel.txt": sel})
    f = found[("HOST_EDAC_CORRECTED", "warn", "Memory #0x88")]
    assert status == "warn" and "12/14/22 23:09:44 CET" in f.message and "CPU0_G1" in f.message
    # the logging limit and an uncorrectable error keep their own codes, one finding per record
    sel += ("  3b | 12/15/22 | 01:00:00 CET | Memory #0x88 | Correctable ECC logging limit reached (CPU0_G1) | Asserted\n"
            "  3c | 12/15/22 | 02:00:00 CET | Memory #0x89 | Uncorrectable ECC (CPU1_A1) | Asserted\n")
    status, found = _bmc({"host/ipmitool-sel.txt": sel})
    assert status == "fail" and set(found) == {
        ("HOST_EDAC_CORRECTED", "warn", "Memory #0x88"), ("IPMI_MEMORY_CORRECTABLE_ECC_LIMIT", "warn", "Memory #0x88"),
        ("HOST_EDAC_UNCORRECTED", "fail", "Memory #0x89")}
