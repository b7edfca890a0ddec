"""mcelog's decoded machine-check records: recognized, parsed and judged by host.mcelog.

Fixtures follow mcelog's record format (mcelog.c dump_mce, p4.c decode_mci); REAL_* are outputs
quoted in andikleen/mcelog issues (copied as the issue shows them, source on each)."""

import pytest

from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.evidence.bundle import Bundle
from clusterkit.evidence.kinds import sniff
from clusterkit.parsers import ParseError
from clusterkit.parsers.mcelog import parse_mcelog
from clusterkit.suites import Suite

# https://github.com/andikleen/mcelog/issues/35 (issue description by saurabh-hp, 2016-03-24)
REAL_UC_PCC_CACHE = """mcelog: mcelog read: No such device
mcelog: Family 6 Model 55 CPU: only decoding architectural errors
Hardware event. This is not a software error.
MCE 0
CPU 0 BANK 11 
MISC 229aa040900086 ADDR fffc4b00 
TIME 1458750006 Wed Mar 23 12:20:06 2016
MCG status:
MCi status:
Uncorrected error
MCi_MISC register valid
MCi_ADDR register valid
Processor context corrupt
MCA: corrected filtering (some unreported errors in same region)
Generic CACHE Level-2 Generic Error
STATUS ae2000000003110a MCGSTATUS 0
MCGCAP 6000c14 APICID 0 SOCKETID 0 
CPUID Vendor Intel Family 6 Model 85
"""
# https://github.com/andikleen/mcelog/issues/51 (issue description by paulmenzel, 2017-05-08): syslog lines that
# start inside record 14 (its status) and end inside record 15 (no status yet)
REAL_CORRECTED_SYSLOG = """2017-05-05T08:57:16+02:00 avaritia mcelog: MCG status:
2017-05-05T08:57:16+02:00 avaritia mcelog: MCi status:
2017-05-05T08:57:16+02:00 avaritia mcelog: Corrected error
2017-05-05T08:57:16+02:00 avaritia mcelog: Error enabled
2017-05-05T08:57:16+02:00 avaritia mcelog: MCA: MEMORY CONTROLLER GEN_CHANNELunspecified_ERR
2017-05-05T08:57:16+02:00 avaritia mcelog: Transaction: Generic undefined request
2017-05-05T08:57:16+02:00 avaritia mcelog: STATUS 900000400009008f MCGSTATUS 0
2017-05-05T08:57:16+02:00 avaritia mcelog: MCGCAP 1000c18 APICID 80 SOCKETID 2 
2017-05-05T08:57:16+02:00 avaritia mcelog: CPUID Vendor Intel Family 6 Model 47
2017-05-05T08:57:16+02:00 avaritia mcelog: Hardware event. This is not a software error.
2017-05-05T08:57:16+02:00 avaritia mcelog: MCE 15
2017-05-05T08:57:16+02:00 avaritia mcelog: CPU 2 BANK 9 
2017-05-05T08:57:16+02:00 avaritia mcelog: TIME 1493932594 Thu May  4 23:16:34 2017
"""


def _record(n: int, cpu: int, bank: int, status: str, words: str) -> str:
    return (f"Hardware event. This is not a software error.\nMCE {n}\nCPU {cpu} BANK {bank} \n"
            f"TIME 1764480000 Sun Nov 30 06:00:00 2026\nMCG status:\nMCi status:\n{words}"
            f"STATUS {status} MCGSTATUS 0\nMCGCAP 1000c18 APICID 0 SOCKETID {cpu // 16} \n"
            "CPUID Vendor Intel Family 6 Model 143\n")


def _run(text: str):
    b = Bundle.virtual("n1", {"host/mcelog.txt": text}, {"host": "n1"})
    run = analyze_bundles([b], Suite("t", ["host.mcelog"]), profiles=ProfileResolver())
    return run.nodes[0].checks[0]


def test_real_uncorrected_record_fails_the_node():
    assert sniff(REAL_UC_PCC_CACHE).name == "mcelog"
    [r] = parse_mcelog(REAL_UC_PCC_CACHE)
    assert (r.number, r.cpu, r.bank, r.socket, r.uncorrected, r.context_corrupt) == (0, 0, 11, 0, True, True)
    res = _run(REAL_UC_PCC_CACHE)
    [f] = res.findings
    assert (res.status, f.code, f.severity, f.component) == ("fail", "HOST_MCE_HARDWARE_ERROR", "fail", "CPU 0 bank 11 socket 0")
    assert "processor context corrupt" in f.message and "STATUS ae2000000003110a" in f.message


def test_real_corrected_record_in_syslog_warns_and_a_cut_record_is_not_judged():
    assert sniff(REAL_CORRECTED_SYSLOG).name == "mcelog"
    recs = parse_mcelog(REAL_CORRECTED_SYSLOG)
    assert [(r.number, r.cpu, r.uncorrected) for r in recs] == [(None, None, False), (15, 2, None)]
    res = _run(REAL_CORRECTED_SYSLOG)
    assert res.status == "warn" and [(f.code, f.severity) for f in res.findings] == [("HOST_MCE_CORRECTED", "warn")]
    assert res.metrics["mce_records"] == 2


def test_status_register_decides_and_the_words_stand_in_without_it():
    # UC bit set in STATUS though the words were lost, and the words when STATUS was cut off
    log = (_record(0, 3, 7, "bc00000000010090", "Error enabled\n")
           + _record(1, 17, 1, "9c00000000010090", "Corrected error\nError enabled\n")
           + "Hardware event. This is not a software error.\nMCE 2\nCPU 4 BANK 2\nMCi status:\nUncorrected error\n")
    recs = parse_mcelog(log)
    assert [(r.cpu, r.uncorrected, r.context_corrupt) for r in recs] == [(3, True, False), (17, False, False),
                                                                        (4, True, False)]
    got = {(f.code, f.component) for f in _run(log).findings}
    assert got == {("HOST_MCE_HARDWARE_ERROR", "CPU 3 bank 7 socket 0"), ("HOST_MCE_CORRECTED", "CPU 17 bank 1 socket 1"),
                   ("HOST_MCE_HARDWARE_ERROR", "CPU 4 bank 2")}


def test_corrected_records_of_one_bank_are_one_finding_with_a_count():
    log = "".join(_record(i, 5, 8, "8c00004000010091", "Corrected error\nError enabled\nMCA: MEMORY CONTROLLER RD_CHANNEL1_ERR\n")
                  for i in range(4))
    [f] = _run(log).findings
    assert (f.code, f.observed, f.component) == ("HOST_MCE_CORRECTED", 4, "CPU 5 bank 8 socket 0")
    assert "MCA: MEMORY CONTROLLER RD_CHANNEL1_ERR" in f.message


def test_text_without_a_record_is_a_parse_error_not_a_pass():
    with pytest.raises(ParseError):
        parse_mcelog("mcelog: mcelog read: No such device\nHardware event. This is not a software error.\nMCE 0\n")
    assert _run("mcelog: nothing here\n").status == "error"
    assert sniff("STATUS 1 MCGSTATUS 0\n") is None or sniff("STATUS 1 MCGSTATUS 0\n").name != "mcelog"
