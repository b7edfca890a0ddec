"""Host checks over bundles written by hand in the tools' formats."""

from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.evidence.bundle import Bundle
from clusterkit.parsers.kernel_log import parse_kernel_log
from clusterkit.suites import Suite

UNAME = "Linux {h} {k} #129-Ubuntu SMP Fri Aug 2 19:25:20 UTC 2024 x86_64 x86_64 x86_64 GNU/Linux\n"
OSREL = 'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\n'
DF = ("Filesystem     1024-blocks      Used Available Capacity Mounted on\n"
      "/dev/sda1        102400000  51200000  {avail}      50% /\n"
      "/dev/sda15          523248      6220    517028       2% /boot/efi\n")
MEM = "MemTotal:       65536000 kB\nMemFree:         1000000 kB\nMemAvailable:    {avail} kB\n"


def _bundle(host, kernel="5.15.0-119-generic", disk_avail=51200000, mem_avail=60000000, clock=None, t0=1.7e9,
            dmesg=None):
    files = {"host/uname.txt": UNAME.format(h=host, k=kernel), "host/os-release.txt": OSREL,
             "host/df.txt": DF.format(avail=disk_avail), "host/meminfo.txt": MEM.format(avail=mem_avail)}
    cmds = []
    if clock is not None:
        files["host/clock.txt"] = f"{clock:.6f}\n"
        cmds.append({"path": "host/clock.txt", "command": "date +%s.%N", "exit_code": 0, "status": "ok",
                     "duration_s": 0.01, "local_start_epoch": t0, "local_end_epoch": t0 + 0.01})
    if dmesg is not None:
        files["host/dmesg.txt"] = dmesg
    return Bundle.virtual(host, files, {"host": host, "commands": cmds})


def _analyze(bundles, checks):
    return analyze_bundles(bundles, Suite("t", checks), profiles=ProfileResolver())


def _check(run, host, cid):
    node = next(n for n in run.nodes if n.host == host)
    return next(c for c in node.checks if c.id == cid)


def test_kernel_drift_warns_only_the_odd_node():
    bs = [_bundle("n1"), _bundle("n2"), _bundle("n3", kernel="5.15.0-125-generic")]
    run = _analyze(bs, ["host.kernel"])
    assert [_check(run, h, "host.kernel").status for h in ("n1", "n2", "n3")] == ["pass", "pass", "warn"]
    f = _check(run, "n3", "host.kernel").findings[0]
    assert f.code == "HOST_KERNEL_DRIFT" and f.observed == "5.15.0-125-generic" and f.limit == "5.15.0-119-generic"


def test_clock_skew_against_fleet_median():
    t0 = 1.7e9
    bs = [_bundle("n1", clock=t0 + 0.005, t0=t0), _bundle("n2", clock=t0 + 0.006, t0=t0),
          _bundle("n3", clock=t0 + 2.5, t0=t0), _bundle("n4", clock=t0 + 0.3, t0=t0)]
    run = _analyze(bs, ["host.clock"])
    statuses = {h: _check(run, h, "host.clock").status for h in ("n1", "n2", "n3", "n4")}
    assert statuses == {"n1": "pass", "n2": "pass", "n3": "fail", "n4": "warn"}
    skew = _check(run, "n3", "host.clock").metrics["clock_skew_ms"]
    assert 2490 < skew < 2500  # against n1 and n2, which agree


def test_disk_and_memory_thresholds_from_profile():
    run = _analyze([_bundle("ok"), _bundle("full", disk_avail=2_000_000, mem_avail=1_000_000)],
                   ["host.disk", "host.memory"])
    assert _check(run, "ok", "host.disk").status == "pass"
    disk = _check(run, "full", "host.disk")
    assert disk.status == "fail" and disk.findings[0].component == "filesystem /"
    assert disk.findings[0].unit == "%" and disk.findings[0].observed < 5
    assert _check(run, "full", "host.memory").status == "warn"


def test_kernel_log_rules_count_storms_and_name_the_device():
    aer = "pcieport 0000:00:03.1: AER: Corrected error received: 0000:41:00.0\n"
    log = "".join(f"[{100 + i}.000000] {aer}" for i in range(500))
    log += "[900.123456] mce: [Hardware Error]: Machine check events logged\n"
    run = _analyze([_bundle("n1", dmesg=log)], ["host.kernel_log"])
    c = _check(run, "n1", "host.kernel_log")
    assert c.status == "fail"
    by_code = {f.code: f for f in c.findings}
    assert by_code["HOST_PCIE_AER_CORRECTED"].observed == 500
    assert by_code["HOST_PCIE_AER_CORRECTED"].component == "PCIe 0000:41:00.0"
    assert len(c.findings) == 2


def test_kernel_log_formats():
    text = ("[    5.123456] usb 1-1: new device\n"
            "[Mon Oct 29 12:07:39 2018] NVRM: Xid (PCI:0000:8a:00): 48, DBE\n"
            "kern  :err   : [  12.5] mlx5_core 0000:01:00.1 eth1: Link down\n"
            "Mar 27 15:37:34 cc1 kernel: mlx5_core 0000:01:00.1 eth1: Link up\n"
            "2024-01-08T10:11:12.123456+00:00 node7 kernel: [  77.000001] EXT4-fs error (device sda1)\n"
            "random pasted prompt $ dmesg\n")
    lines = parse_kernel_log(text)
    assert [l.seconds for l in lines] == [5.123456, None, 12.5, None, 77.000001, None]
    assert lines[1].wall == "Mon Oct 29 12:07:39 2018" and lines[3].source == "kernel"
    assert lines[4].message == "EXT4-fs error (device sda1)"
    assert lines[5].source == "unknown"  # kept, not dropped
