"""Fabric manager's log, journal and `systemctl status`, written in their formats (FM log lines
'[Mon DD YYYY HH:MM:SS] [LEVEL] [tid N] msg', systemd's status header and journal lines)."""

import random

import pytest

from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.evidence.bundle import Bundle
from clusterkit.evidence.kinds import sniff
from clusterkit.parsers import ParseError
from clusterkit.parsers.fabricmanager_log import parse_fabricmanager_log
from clusterkit.sim.fabric_manager import render_fabricmanager_log
from clusterkit.sim.registry import SimNode
from clusterkit.suites import Suite

START = """Fabric Manager Log initializing at: 12/19/2024 22:08:53.808
[Dec 19 2024 22:08:53] [INFO] [tid 1570] Fabric Manager version 535.161.08 is running with the following configuration options
[Dec 19 2024 22:08:53] [INFO] [tid 1570] Logging level = 4
[Dec 19 2024 22:08:54] [INFO] [tid 1570] Connected to 1 node.
[Dec 19 2024 22:08:54] [INFO] [tid 1570] number of devices specified in topology file NVSwitches: 4, GPUs: 8
[Dec 19 2024 22:08:54] [INFO] [tid 1570] dumping all the detected NVSwitch information
  Index: 00  Physical Id: 0  PCI Bus ID: 00000000:83:00.0  Enabled Link Mask: ffffffff00000000  Arch Type: 3
[Dec 19 2024 22:08:54] [INFO] [tid 1570] Successfully configured all the available NVSwitches to route GPU NVLink traffic.
"""
NONFATAL = ("[Dec 20 2024 03:17:49] [ERROR] [tid 1374] detected NVSwitch non-fatal error 12028 on fid 0 on NVSwitch "
            "pci bus id 00000000:84:00.0 physical id 1 port {port}\n")
FATAL = ("[Dec 20 2024 04:00:01] [ERROR] [tid 1374] detected NVSwitch fatal error 20034 on fid 0 on NVSwitch pci bus id "
         "00000000:86:00.0 physical id 3 port 33\n")
STATUS_FAILED = """● nvidia-fabricmanager.service - NVIDIA fabric manager service
     Loaded: loaded (/lib/systemd/system/nvidia-fabricmanager.service; enabled; vendor preset: enabled)
     Active: failed (Result: exit-code) since Mon 2026-11-30 08:01:12 UTC; 2min ago
    Process: 2211 ExecStart=/usr/bin/nv-fabricmanager -c /usr/share/nvidia/nvswitch/fabricmanager.cfg (code=exited, status=1/FAILURE)

Nov 30 08:01:11 gpu07 systemd[1]: Starting NVIDIA fabric manager service...
Nov 30 08:01:12 gpu07 nv-fabricmanager[2211]: fabric manager NVIDIA GPU driver interface version 550.54.15 don't match with driver version 550.90.07. Please update with matching NVIDIA driver package.
Nov 30 08:01:12 gpu07 systemd[1]: nvidia-fabricmanager.service: Control process exited, code=exited, status=1/FAILURE
Nov 30 08:01:12 gpu07 systemd[1]: Failed to start NVIDIA fabric manager service.
"""
JOURNAL_NO_SWITCH = """Nov 30 08:01:11 ws1 systemd[1]: Starting NVIDIA fabric manager service...
Nov 30 08:01:11 ws1 nv-fabricmanager[4177]: request to query NVSwitch device information from NVSwitch driver failed with error:WARNING Nothing to do [NV_WARN_NOTHING_TO_DO]
Nov 30 08:01:11 ws1 systemd[1]: nvidia-fabricmanager.service: Control process exited, code=exited, status=1/FAILURE
"""


def _check(text: str, profile: str | None = None):
    b = Bundle.virtual("n1", {"gpu/fabricmanager-log.txt": text}, {"host": "n1", "declared": {"gpu_count": 8}})
    run = analyze_bundles([b], Suite("t", ["gpu.fabric_manager_log"]), profiles=ProfileResolver(profile))
    return run.nodes[0].checks[0]


def test_healthy_start_and_restart_after_non_fatal_errors():
    text = START + NONFATAL.format(port=35) * 2 + NONFATAL.format(port=42) + START.replace("Dec 19", "Dec 20")
    log = parse_fabricmanager_log(text)
    assert log.state == "active" and log.version == "535.161.08" and log.starts == 2
    assert [(e.fatal, e.code, e.switch, e.ports, e.count) for e in log.switch_errors] == [
        (False, 12028, "00000000:84:00.0", [35, 42], 3)]
    r = _check(text)
    assert r.status == "warn" and [f.code for f in r.findings] == ["NVSWITCH_SXID_NONFATAL"]
    assert r.findings[0].component == "NVSwitch 00000000:84:00.0 (physical id 1) ports 35, 42"
    assert _check(START).status == "pass"


def test_fatal_nvswitch_error_drains():
    r = _check(START + FATAL)
    assert [(f.code, f.severity) for f in r.findings] == [("NVSWITCH_SXID_FATAL", "fail")]


def test_systemctl_status_says_the_state_now_and_why():
    log = parse_fabricmanager_log(STATUS_FAILED)
    assert log.state == "failed" and log.mismatch == ("550.54.15", "550.90.07")
    r = _check(STATUS_FAILED)
    assert {f.code for f in r.findings} == {"GPU_FABRIC_MANAGER_VERSION_MISMATCH", "GPU_FABRIC_MANAGER_NOT_RUNNING"}
    # 'Active:' outranks older journal lines: a running service whose journal shows an earlier failure passes
    running = STATUS_FAILED.replace("Active: failed (Result: exit-code)", "Active: active (running)")
    assert parse_fabricmanager_log(running).state == "active"


def test_no_nvswitch_visible_and_a_profile_without_nvswitch():
    r = _check(JOURNAL_NO_SWITCH)
    assert {(f.code, f.severity) for f in r.findings} == {("FM_NVSWITCH_NOT_FOUND", "fail"),
                                                          ("GPU_FABRIC_MANAGER_NOT_RUNNING", "fail")}
    # a PCIe-GPU profile has no NVSwitch: a fabric manager installed there is a leftover, not a broken fabric
    pcie = _check(JOURNAL_NO_SWITCH, "h100-pcie-80gb")
    assert {(f.code, f.severity) for f in pcie.findings} == {("FM_NVSWITCH_NOT_FOUND", "info"),
                                                             ("GPU_FABRIC_MANAGER_NOT_RUNNING", "warn")}


def test_training_failures_and_missing_gpus_are_named():
    text = START + ("[Dec 20 2024 05:00:00] [ERROR] [tid 12] NVLink training failed for GPU 00000000:19:00.0 link 3\n"
                    "[Dec 20 2024 05:00:01] [ERROR] [tid 12] failed to find all the GPUs specified in the topology\n")
    codes = {f.code for f in _check(text).findings}
    assert codes == {"FM_NVLINK_TRAINING_FAILED", "FM_GPU_NOT_FOUND"}
    # a multicast team handle FM cannot find is not a missing GPU
    handle = START + "[Sep 17 2024 06:01:46] [ERROR] [tid 1] failed to find the GPU handle 5410063385821516767 in the multicast team request setup 6130285411925746235.\n"
    assert "FM_GPU_NOT_FOUND" not in {f.code for f in _check(handle).findings}


def test_recognized_as_its_own_kind_not_as_the_short_probe():
    for text in (START, STATUS_FAILED, JOURNAL_NO_SWITCH, "nv-fabricmanager[3228]: fabric manager NVIDIA GPU driver "
                 "interface version 530.30.02 don't match with driver version 530.41.03. Please update."):
        assert sniff(text).name == "fabricmanager-log", text[:40]
    assert sniff("active\nFabric Manager version is : 535.129.03\n").name == "fabricmanager"
    assert sniff("[  1.0] nvidia-nvswitch3: SXid (PCI:0000:04:00.0): 22013, Non-fatal, Link 44 x\n").name == "kernel-log"
    with pytest.raises(ParseError):
        parse_fabricmanager_log("\n\n")


@pytest.mark.parametrize("faults", [[], ["gpu.nvswitch_nonfatal"], ["stack.fabric_manager_mismatch"]])
def test_simulated_log_reads_back(faults):
    import datetime as dt

    node = SimNode("sim-1", 0, {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8}, faults, random.Random(1))
    log = parse_fabricmanager_log(render_fabricmanager_log(node, dt.datetime(2026, 11, 27, 9, 0, 31)))
    if not faults:
        assert log.state == "active" and not log.switch_errors
    elif faults == ["gpu.nvswitch_nonfatal"]:
        assert [(e.fatal, e.code, e.ports) for e in log.switch_errors] == [(False, 12028, [33])]
    else:
        assert log.state == "failed" and log.mismatch is not None


def test_probe_command_tails_the_log_and_says_absent_with_127(tmp_path):
    import subprocess

    from clusterkit.parsers.fabricmanager_log import FABRICMANAGER_LOG, FM_LOG_PATH

    log = tmp_path / "fabricmanager.log"
    log.write_text(START * 3000)          # longer than the tail
    script = FABRICMANAGER_LOG.argv()[2].replace(FM_LOG_PATH, str(log))
    r = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 5000
    assert parse_fabricmanager_log(r.stdout).state == "active"
    gone = script.replace(str(log), str(tmp_path / "absent.log")).replace("nv-fabricmanager", "no-such-fabricmanager")
    assert subprocess.run(["sh", "-c", gone], capture_output=True, timeout=30).returncode == 127
