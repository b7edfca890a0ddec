"""rasdaemon's `ras-mc-ctl --errors` / `--summary`: recognized, parsed and judged by host.rasdaemon.

Fixtures follow the line formats of ras-mc-ctl (rasdaemon util/ras-mc-ctl.in, subs `errors` and `summary`):
memory-controller events "<id> <time> <count> <type> error(s): <msg> at <label> location: ...", AER events
"<id> <time> <dev> <type> error: <msg>", MCE events "<id> <time> error: <msg>, ..., status=0x..., bank=0x...",
and the sections' "No <X> errors." lines."""

import pytest

from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.evidence.bundle import Bundle
from clusterkit.evidence.kinds import sniff
from clusterkit.parsers import ParseError
from clusterkit.parsers.rasdaemon import parse_ras_mc_ctl

CLEAN = ("No Memory errors.\n\nNo PCIe AER errors.\n\nNo Extlog errors.\n\nNo devlink errors.\n\nNo disk errors.\n\n"
         "No Memory failure errors.\n\nNo MCE errors.\n\n")


def _mc(i: int, n: int, typ: str, dimm: str) -> str:
    return (f"{i} 2026-11-2{i % 9} 10:0{i % 10}:00 +0000 {n} {typ} error(s): memory read error at {dimm} location: "
            f"0:1:0:-1, addr 469810184128, grain 5, syndrome 0  err_code:0x0101:0x0091 socket:0 imc:1 rank:0\n")


def _mce(i: int, msg: str, status: str) -> str:
    return (f"{i} 2026-11-30 06:00:0{i} +0000 error: {msg}, CPU 2, bank Unified Memory Controller (bank=17), "
            f"mcg mcgstatus=0, mci CECC, memory_channel=0,csrow=1, mcgcap=0x0000011c, status=0x{status}, "
            "addr=0x319deb440, walltime=0x67639886, cpuid=0x00870f10, bank=0x00000011\n")


def _run(text: str):
    b = Bundle.virtual("n1", {"host/ras_mc_ctl.txt": text}, {"host": "n1"})
    run = analyze_bundles([b], _suite(), profiles=ProfileResolver())
    return run.nodes[0].checks[0]


def _suite():
    from clusterkit.suites import Suite
    return Suite("t", ["host.rasdaemon"])


def test_no_errors_in_any_section_passes():
    assert sniff(CLEAN).name == "ras-mc-ctl"
    rep = parse_ras_mc_ctl(CLEAN)
    assert rep.events == 0 and "MCE" in rep.sections_clean
    res = _run(CLEAN)
    assert res.status == "pass" and res.metrics["ras_events"] == 0


def test_corrected_memory_events_are_summed_per_dimm_and_fail_at_the_profile_limit():
    one = "Memory controller events:\n" + "".join(_mc(i, 1, "Corrected", "CPU_SrcID#1_MC#1_Chan#1_DIMM#0")
                                                  for i in range(1, 6))
    [f] = _run(one).findings
    assert (f.code, f.severity, f.component, f.observed) == ("HOST_EDAC_CORRECTED", "warn",
                                                            "DIMM CPU_SrcID#1_MC#1_Chan#1_DIMM#0", 5)
    # event lines alone (a thread quoting some) are recognized by their shape
    assert sniff("".join(_mc(i, 1, "Corrected", "DIMM_A1") for i in (72, 73))).name == "ras-mc-ctl"
    many = "Memory controller events:\n" + _mc(1, 60, "Corrected", "DIMM_A1") + _mc(2, 45, "Corrected", "DIMM_A1")
    [f] = _run(many).findings
    assert (f.severity, f.observed, f.limit) == ("fail", 105, 100)


def test_uncorrected_memory_and_aer_events_fail_corrected_aer_warns():
    text = ("Memory controller events:\n" + _mc(1, 1, "Uncorrected", "DIMM_B2") + "\n"
            "PCIe AER events:\n"
            "1 2026-11-30 06:00:00 +0000 0000:3b:00.0 Corrected error: Receiver Error\n"
            "2 2026-11-30 06:01:00 +0000 0000:3b:00.0 Corrected error: Bad TLP\n"
            "3 2026-11-30 06:02:00 +0000 0000:5e:00.0 Uncorrected (Fatal) error: Completion Timeout\n\n" + "No MCE errors.\n")
    got = {(f.code, f.severity, f.component, f.observed) for f in _run(text).findings}
    assert got == {("HOST_EDAC_UNCORRECTED", "fail", "DIMM DIMM_B2", 1),
                   ("HOST_PCIE_AER_CORRECTED", "warn", "PCIe 0000:3b:00.0", 2),
                   ("HOST_PCIE_AER_UNCORRECTED", "fail", "PCIe 0000:5e:00.0", 1)}


def test_machine_checks_are_judged_by_the_status_uc_bit():
    corrected = _mce(1, "Corrected error, no action required.", "9c2040000000011b") + \
        _mce(2, "Corrected error, no action required.", "dc2040000000011b")
    res = _run("MCE events:\n" + corrected)
    [f] = res.findings
    assert (f.code, f.severity, f.observed) == ("HOST_MCE_CORRECTED", "warn", 2)
    # UC (bit 61) set in the status: uncorrected, whatever the words; ".." where the time was not recorded
    uc = "MCE events:\n" + _mce(3, "Uncorrected, software containable", "bc00000000010090").replace(
        "2026-11-30 06:00:03 +0000", "..")
    assert [(f.code, f.severity) for f in _run(uc).findings] == [("HOST_MCE_HARDWARE_ERROR", "fail")]


def test_summary_counts():
    text = ("Memory controller events summary:\n\tCorrected on DIMM Label(s): 'DIMM_A1' location: 0:0:0:-1 errors: 7\n\n"
            "No PCIe AER errors.\n\nMCE records summary:\n\t1 Corrected error, no action required. errors\n")
    got = {(f.code, f.severity, f.observed) for f in _run(text).findings}
    assert got == {("HOST_EDAC_CORRECTED", "warn", 7), ("HOST_MCE_CORRECTED", "warn", 1)}


def test_text_without_a_section_or_event_is_a_parse_error_not_a_pass():
    with pytest.raises(ParseError):
        parse_ras_mc_ctl("ras-mc-ctl: drivers are loaded.\n")
    assert _run("ras-mc-ctl: drivers are loaded.\n").status == "error"
    assert (sniff("No MCE errors.\n") or None) is None or sniff("No MCE errors.\n").name != "ras-mc-ctl"
