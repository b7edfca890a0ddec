"""Host and fabric kernel-log rules, on fixtures written from the kernel's and drivers' message formats."""

from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.checks.fabric_counters import BOOT_WINDOW_S
from clusterkit.evidence.bundle import Bundle
from clusterkit.parsers.kernel_log import parse_kernel_log
from clusterkit.suites import Suite


def _run(dmesg: str, checks=("host.kernel_log",), files=None, declared=None):
    b = Bundle.virtual("n1", {"host/dmesg.txt": dmesg, **(files or {})}, {"host": "n1", "declared": declared or {}})
    run = analyze_bundles([b], Suite("t", list(checks)), profiles=ProfileResolver())
    return {c.id: c for c in run.nodes[0].checks}


def _codes(res, cid="host.kernel_log"):
    return {(f.code, f.severity) for f in res[cid].findings}


# mce_log() record format (arch/x86/kernel/cpu/mce/core.c __print_mce): 'CPU n: Machine Check[ Exception]: <mcgstatus>
# Bank <n>: <status>'; bit 61 of the status is UC. Bank 128 is where therm_throt.c logs thermal events.
UC_RECORD = ("[ 811.101] mce: [Hardware Error]: CPU 3: Machine Check Exception: 5 Bank 4: b200000000070f0f\n"
             "[ 811.102] mce: [Hardware Error]: TSC 0 ADDR 1f2e3d000 MISC 8c\n"
             "[ 811.103] mce: [Hardware Error]: PROCESSOR 0:50657 TIME 1700000000 SOCKET 0 APIC 6 microcode 5003604\n")
THERMAL = ("[515033.638025] mce: [Hardware Error]: CPU 2: Machine Check: 0 Bank 128: 00000000087f0022\n"
           "[515052.731171] CPU1: Core temperature above threshold, cpu clock throttled (total events = 136516)\n"
           "[515100.697073] mce: [Hardware Error]: Machine check events logged\n")
# EDAC core (drivers/edac/edac_mc.c edac_mc_handle_error): '<n> CE <msg> on <label> (<location>)'.
EDAC_CE = ("[100.1] mce: [Hardware Error]: Machine check events logged\n"
           "[100.2] EDAC MC0: 1 CE memory read error on CPU_SrcID#0_MC#0_Chan#1_DIMM#0 (channel:1 slot:0 page:0x1234)\n"
           "[100.3] EDAC MC0: 3 CE memory read error on CPU_SrcID#0_MC#0_Chan#1_DIMM#0 (channel:1 slot:0 page:0x1235)\n")


def test_uncorrected_machine_check_fails_thermal_and_corrected_ones_warn():
    assert _codes(_run(UC_RECORD)) == {("HOST_MCE_HARDWARE_ERROR", "fail")}
    assert _codes(_run(THERMAL)) == {("HOST_CPU_THERMAL_THROTTLE", "warn")}
    res = _run(EDAC_CE)
    assert _codes(res) == {("HOST_EDAC_CORRECTED", "warn")}
    f = res["host.kernel_log"].findings[0]
    assert f.component == "DIMM CPU_SrcID#0_MC#0_Chan#1_DIMM#0" and f.observed == 4   # 1 + 3 errors, 2 lines
    ue = "[200.0] EDAC MC1: 1 UE memory read error on CPU_SrcID#1_MC#0_Chan#0_DIMM#0 (channel:0 slot:0)\n"
    assert _codes(_run(EDAC_CE + ue)) == {("HOST_EDAC_CORRECTED", "warn"), ("HOST_EDAC_UNCORRECTED", "fail")}
    assert _codes(_run("[1.0] EDAC skx: Uncorrected error on memory controller 0\n")) == {("HOST_EDAC_UNCORRECTED", "fail")}
    # the notification alone, with nothing that says what was logged, stays a failure
    assert _codes(_run("[9.0] mce: [Hardware Error]: Machine check events logged\n")) == {("HOST_MCE_HARDWARE_ERROR", "fail")}
    # a corrected record and an uncorrected one in the same log: the uncorrected one decides
    corrected = "[5.0] mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 7: 8c00004000010090\n"
    assert _codes(_run(corrected)) == {("HOST_MCE_CORRECTED", "warn")}
    assert ("HOST_MCE_HARDWARE_ERROR", "fail") in _codes(_run(corrected + UC_RECORD))


def test_aer_wordings_old_and_new_kernels():
    # <= 5.x: 'AER: Corrected error received: <dev>'; >= 6.x: 'AER: Correctable error message received from <dev>'
    old = "[1.0] pcieport 0000:00:03.1: AER: Corrected error received: 0000:41:00.0\n"
    new = "[1.0] pcieport 0000:00:03.1: AER: Correctable error message received from 0000:41:00.0\n"
    unknown_source = "[1.0] pcieport 0000:00:03.1: AER: Correctable error message received from 0000:00:00.0\n"
    fatal = "[2.0] pcieport 0000:00:02.0: AER: Uncorrectable (Fatal) error message received from 0000:02:00.0\n"
    assert [f.component for f in _run(old)["host.kernel_log"].findings] == ["PCIe 0000:41:00.0"]
    assert [f.component for f in _run(new)["host.kernel_log"].findings] == ["PCIe 0000:41:00.0"]
    assert [f.component for f in _run(unknown_source)["host.kernel_log"].findings] == ["PCIe 0000:00:03.1"]
    assert _codes(_run(fatal)) == {("HOST_PCIE_AER_UNCORRECTED", "fail")}


def test_management_agent_psu_lines_in_the_system_log():
    # Dell OpenManage Server Administrator event texts (EventID 1354 / 1306), once the syslog prefix is gone
    log = ("[10.0] Instrumentation Service EventID: 1354  Power supply detected a failure  Sensor location: PS 2 Status"
           "   Chassis location: Main System Chassis  Power Supply state: Presence detected, Failure detected, AC lost\n"
           "[10.1] Instrumentation Service EventID: 1306  Redundancy lost  Redundancy unit: BMC PS Redundancy  Chassis "
           "location: Main System Chassis\n")
    res = _run(log)
    assert {(f.code, f.component) for f in res["host.kernel_log"].findings} == {
        ("POWER_PSU_FAILED", "PS 2 Status"), ("POWER_PSU_REDUNDANCY_LOST", "BMC PS Redundancy")}


def test_multi_line_message_is_joined_to_its_stamped_line():
    text = ("[ 1843.308145] NVRM: The NVIDIA GPU 0000:b3:00.0\n"
            "               NVRM: (PCI ID: 10de:26b5) installed in this system has\n"
            "               NVRM: fallen off the bus and is not responding to commands.\n"
            "[ 1843.439662] NVRM: The NVIDIA probe routine failed for 1 device(s).\n")
    lines = parse_kernel_log(text)
    assert [l.message for l in lines] == [
        "NVRM: The NVIDIA GPU 0000:b3:00.0 (PCI ID: 10de:26b5) installed in this system has fallen off the bus and is "
        "not responding to commands.", "NVRM: The NVIDIA probe routine failed for 1 device(s)."]
    assert lines[0].seconds == 1843.308145 and lines[0].lineno == 1
    # /dev/kmsg dictionary lines are not message text; unstamped logs are never joined
    kmsg = "6,339,5140900,-;mlx5_core 0000:01:00.1 eth1: Link up\n SUBSYSTEM=pci\n DEVICE=+pci:0000:01:00.1\n"
    assert "SUBSYSTEM" not in parse_kernel_log(kmsg)[0].message
    assert len(parse_kernel_log("NVRM: a\n    NVRM: b\n")) == 2


def test_nic_slot_power_and_a_port_left_down_with_its_cable_plugged():
    # mlx5_core (drivers/net/ethernet/mellanox/mlx5/core/events.c): module and PCIe slot power events
    log = ("[26.4] mlx5_core 0000:1a:00.0: Port module event: module 0, Cable plugged\n"
           "[26.5] mlx5_core 0000:1a:00.0: mlx5_pcie_event:299:(pid 9): Detected insufficient power on the PCIe slot (27W).\n"
           "[27.1] mlx5_core 0000:1b:00.1: Port module event: module 1, Cable unplugged\n"
           "[58.2] mlx5_core 0000:1a:00.0 enp26s0f0np0: renamed from eth2\n"
           "[89.2] mlx5_core 0000:1a:00.0 enp26s0f0np0: Link down\n"
           "[89.3] mlx5_core 0000:1b:00.1 enp27s0f1np1: Link down\n")
    res = _run(log, checks=("fabric.kernel_log",))
    got = {(f.code, f.severity, f.component) for f in res["fabric.kernel_log"].findings}
    assert got == {("NIC_PCIE_SLOT_POWER_INSUFFICIENT", "warn", "mlx5 0000:1a:00.0"),
                   ("FABRIC_PORT_DOWN", "warn", "enp26s0f0np0 (0000:1a:00.0)")}   # the unplugged port is not one
    declared = _run(log, checks=("fabric.kernel_log",), declared={"roce_interfaces": ["enp26s0f0np0"]})
    assert ("FABRIC_PORT_DOWN", "fail") in _codes(declared, "fabric.kernel_log")
    came_up = _run(log + "[95.0] mlx5_core 0000:1a:00.0 enp26s0f0np0: Link up\n", checks=("fabric.kernel_log",))
    assert "FABRIC_PORT_DOWN" not in {c for c, _ in _codes(came_up, "fabric.kernel_log")}


def test_link_bring_up_while_booting_is_not_a_flap():
    boot = ("[    0.000000] Linux version 5.15.0-119-generic\n"
            "[   21.400000] mlx5_core 0000:01:00.0 ens1np0: Link down\n"
            "[   24.900000] mlx5_core 0000:01:00.0 ens1np0: Link up\n"
            "[   25.100000] ib0: Link is Down\n[   26.000000] ib0: Link is Up\n")
    res = _run(boot, checks=("fabric.flaps",))
    assert res["fabric.flaps"].status == "pass" and res["fabric.flaps"].metrics["kernel_link_flaps_24h"] == 0
    later = f"[{BOOT_WINDOW_S + 4000:12.6f}] mlx5_core 0000:01:00.0 ens1np0: Link down\n" \
            f"[{BOOT_WINDOW_S + 4005:12.6f}] mlx5_core 0000:01:00.0 ens1np0: Link up\n"
    res = _run(boot + later, checks=("fabric.flaps",))
    assert [f.code for f in res["fabric.flaps"].findings] == ["FABRIC_LINK_FLAPS_KERNEL_LOG"]
    assert res["fabric.flaps"].findings[0].observed == 1
    # wall-clock logs: the boot is the 'Linux version' line's time
    walls = ("Mar 27 15:30:01 cc1 kernel: Linux version 5.15.0\n"
             "Mar 27 15:30:40 cc1 kernel: mlx5_core 0000:01:00.1 eth1: Link down\n"
             "Mar 27 15:30:44 cc1 kernel: mlx5_core 0000:01:00.1 eth1: Link up\n")
    assert _run(walls, checks=("fabric.flaps",))["fabric.flaps"].status == "pass"


def _ce(n: int, dimm: str, t: float) -> str:
    return f"[{t}] EDAC MC1: {n} CE memory read error on {dimm} (channel:1 slot:0 page:0x2031c14 offset:0x940)\n"


def test_a_dimm_with_many_corrected_errors_fails_and_names_the_replacement():
    """The counts EDAC reports are summed per DIMM; at host.max_corrected_memory_errors_per_dimm (100) it fails."""
    a, b = "CPU_SrcID#0_Ha#0_Chan#1_DIMM#0", "CPU_SrcID#1_Ha#0_Chan#0_DIMM#1"
    storm = _ce(262, a, 1.0) + "".join(_ce(1, b, 2.0 + i) for i in range(99))
    by = {f.component: f for f in _run(storm)["host.kernel_log"].findings}
    fa, fb = by[f"DIMM {a}"], by[f"DIMM {b}"]
    assert (fa.severity, fa.observed, fa.limit) == ("fail", 262, 100) and "replace this DIMM" in fa.action
    assert fa.message.startswith("262 corrected memory errors on DIMM")
    assert (fb.severity, fb.observed) == ("warn", 99)                 # 99 lines of one error: below the limit
    # reaching the limit from many reports fails too
    assert _codes(_run("".join(_ce(10, b, float(i)) for i in range(10)))) == {("HOST_EDAC_CORRECTED", "fail")}


def test_the_corrected_memory_limit_is_profile_data():
    profiles = ProfileResolver()
    assert profiles.get("base").get("host.max_corrected_memory_errors_per_dimm") == 100
    profiles.get("base").values["host.max_corrected_memory_errors_per_dimm"] = 1000   # a site's own limit
    b = Bundle.virtual("n1", {"host/dmesg.txt": _ce(262, "DIMM_A1", 1.0)}, {"host": "n1", "declared": {}})
    run = analyze_bundles([b], Suite("t", ["host.kernel_log"]), profiles=profiles)
    assert [(f.code, f.severity) for f in run.nodes[0].checks[0].findings] == [("HOST_EDAC_CORRECTED", "warn")]


def test_aer_non_fatal_wording_and_a_driver_that_cannot_recover_fail():
    # aer_print_error / aer_isr (drivers/pci/pcie/aer.c): severity 'Uncorrectable (Non-Fatal)' in current kernels;
    # pcie_do_recovery (drivers/pci/pcie/err.c) names a driver without error handlers and a failed recovery
    non_fatal = "[3.0] pcieport 0000:00:01.2: AER: Uncorrectable (Non-Fatal) error message received from 0000:63:00.0\n"
    assert [(f.code, f.component) for f in _run(non_fatal)["host.kernel_log"].findings] == [
        ("HOST_PCIE_AER_UNCORRECTED", "PCIe 0000:63:00.0")]
    no_callback = "[3.1] nvidia 0000:63:00.0: AER: can't recover (no error_detected callback)\n"
    failed = "[3.2] pcieport 0000:62:00.0: AER: device recovery failed\n"
    res = _run(no_callback + failed)["host.kernel_log"]
    assert {(f.code, f.severity) for f in res.findings} == {("HOST_PCIE_AER_UNCORRECTED", "fail")}
    assert {f.component for f in res.findings} == {"PCIe 0000:63:00.0", "PCIe 0000:62:00.0"}
    # a recovered device is not a failure: 'AER: device recovery successful' says so
    assert _run("[3.3] pcieport 0000:62:00.0: AER: device recovery successful\n")["host.kernel_log"].status == "pass"
