"""A task hung inside the NVIDIA driver, and a driver that got no GPU (nouveau owns them).

Fixtures follow the kernel's hung-task report (kernel/hung_task.c: the `INFO: task %s:%d blocked for more
than %ld seconds.` header, sched_show_task()'s `task:%-15.15s state:%c stack:...` line, the `Call Trace:`
frames `func+0xoff/0xsize [module]`, older kernels' `comm D <hex>` line and `[<addr>]` frames) and the
NVIDIA driver's probe messages (nv.c: `No NVIDIA graphics adapter probed!`, `The NVIDIA probe routine was
not called for %d device(s).`)."""

from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.evidence.bundle import Bundle
from clusterkit.parsers.kernel_log import hung_tasks, parse_kernel_log
from clusterkit.suites import Suite


def _run(dmesg: str, checks=("gpu.xid", "host.kernel_log")):
    b = Bundle.virtual("n1", {"host/dmesg.txt": dmesg}, {"host": "n1", "declared": {"gpu_count": 8}})
    run = analyze_bundles([b], Suite("t", list(checks)), profiles=ProfileResolver())
    return {c.id: c for c in run.nodes[0].checks}


def _codes(checks) -> dict[str, str]:
    return {f.code: f.severity for c in checks.values() for f in c.findings}


HEADER = ("[ 4834.101] INFO: task pt_main_thread:40211 blocked for more than 122 seconds.\n"
          "[ 4834.102]       Tainted: P           OE     6.5.0-35-generic #35~22.04.1-Ubuntu\n"
          "[ 4834.103] \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.\n")
TASK_LINE = "[ 4834.104] task:pt_main_thread  state:D stack:0     pid:40211 ppid:1     flags:0x00004002\n"


def _trace(*frames: str) -> str:
    lines = ["Call Trace:", " <TASK>", " __schedule+0x2cb/0x750", " schedule+0x63/0x110",
             " schedule_preempt_disabled+0x15/0x30", " __mutex_lock.constprop.0+0x42f/0x740", *frames,
             " ? do_syscall_64+0x67/0x120", " entry_SYSCALL_64_after_hwframe+0x73/0xdd", " </TASK>"]
    return "".join(f"[ 4834.{105 + i}] {ln}\n" for i, ln in enumerate(lines))


NV_FRAMES = (" uvm_va_space_mm_unregister+0x3c/0x90 [nvidia_uvm]", " uvm_release+0x95/0x1c0 [nvidia_uvm]",
             " nvidia_close+0x41/0x2a0 [nvidia]")


def test_classic_hung_task_in_the_nvidia_driver_fails_the_node():
    checks = _run(HEADER + TASK_LINE + _trace(*NV_FRAMES))
    f = next(f for f in checks["gpu.xid"].findings if f.code == "GPU_DRIVER_HUNG")
    assert checks["gpu.xid"].status == "fail" and f.component == "NVIDIA driver" and f.observed == 1
    assert "pt_main_thread (pid 40211) in uvm_va_space_mm_unregister [nvidia_uvm]" in f.message
    assert "reboot" in f.action
    assert _codes(checks)["HOST_HUNG_TASK"] == "warn"        # the host rule still names the hung task


def test_bare_task_line_without_its_header_is_read_too():
    """Newer kernels print `task:X state:D` under the header; pastes often start there."""
    checks = _run(TASK_LINE + _trace(*NV_FRAMES))
    assert _codes(checks) == {"GPU_DRIVER_HUNG": "fail"}
    # the same without timestamps or indentation (a paste of the trace alone)
    plain = "\n".join(ln.split("] ", 1)[1].strip() for ln in (TASK_LINE + _trace(*NV_FRAMES)).splitlines())
    assert _codes(_run(plain)) == {"GPU_DRIVER_HUNG": "fail"}


def test_old_kernel_report_with_address_frames():
    log = ("[  721.028170] INFO: task nvc:[driver]:5403 blocked for more than 120 seconds.\n"
           "[  721.028323] nvc:[driver]    D ffff883f2cc43bd8     0  5403   5396 0x00000084\n"
           "[  721.028331]  ffff883f2cc43bd8 ffffffff8170e16e ffff883f33d62c80 ffff883f2cc44000\n"
           "[  721.028346] Call Trace:\n"
           "[  721.028379]  [<ffffffff8170fca4>] __mutex_lock_slowpath+0xb4/0x130\n"
           "[  721.028422]  [<ffffffffa09c376e>] uvm_gpu_retain_by_uuid+0x1e/0x40 [nvidia_uvm]\n")
    tasks = hung_tasks(parse_kernel_log(log))
    assert [(t.task, t.pid, [(f.function, f.module, f.reliable) for f in t.frames]) for t in tasks] == [
        ("nvc:[driver]", 5403, [("uvm_gpu_retain_by_uuid", "nvidia_uvm", True)])]
    assert _codes(_run(log))["GPU_DRIVER_HUNG"] == "fail"


def test_hung_task_outside_the_gpu_driver_stays_a_host_warning():
    ext4 = _trace(" jbd2_log_wait_commit+0xac/0x120 [jbd2]", " ext4_sync_file+0x1b5/0x3a0 [ext4]")
    checks = _run(HEADER + TASK_LINE + ext4)
    assert _codes(checks) == {"HOST_HUNG_TASK": "warn"}
    assert _codes(_run(TASK_LINE + ext4)) == {}            # a bare D-state stack elsewhere: as before, nothing


def test_only_a_guessed_frame_or_another_tasks_stack_does_not_count():
    guessed = _trace(" ? nv_kthread_q_run_self_test+0x10/0x20 [nvidia]", " nfs_wait_bit_killable+0x20/0x80 [nfs]")
    assert "GPU_DRIVER_HUNG" not in _codes(_run(HEADER + TASK_LINE + guessed))
    # a sysrq-t dump: a D task in nfs, then a sleeping (S) task whose stack is in the driver (normal)
    sleeper = ("[ 4835.0] task:nvidia-persiste state:S stack:0     pid:2211  ppid:1     flags:0x00000002\n"
               + _trace(*NV_FRAMES).replace("[ 4834.", "[ 4835."))
    nfs = TASK_LINE + _trace(" nfs_wait_bit_killable+0x20/0x80 [nfs]")
    assert "GPU_DRIVER_HUNG" not in _codes(_run(nfs + sleeper))
    # a frame of the driver in an unrelated message after the report ended
    after = HEADER + _trace(" ext4_sync_file+0x1b5/0x3a0 [ext4]") + "[ 4840.0] usb 1-1: new high-speed USB device\n" \
        + "[ 4840.1]  uvm_ioctl+0x13e0/0x16f0 [nvidia_uvm]\n"
    assert "GPU_DRIVER_HUNG" not in _codes(_run(after))


def test_several_tasks_in_the_driver_are_one_finding():
    two = (TASK_LINE + _trace(*NV_FRAMES)
           + TASK_LINE.replace("pt_main_thread ", "nvidia-smi     ").replace("40211", "40377")
           + _trace(" nv_ioctl+0x92/0x1e0 [nvidia]"))
    f = [f for f in _run(two)["gpu.xid"].findings if f.code == "GPU_DRIVER_HUNG"]
    assert len(f) == 1 and f[0].observed == 2 and "nvidia-smi (pid 40377) in nv_ioctl [nvidia]" in f[0].message


NOUVEAU = ("[  12.595099] NVRM: No NVIDIA graphics adapter probed!\n"
           "[  14.976351] NVRM: The NVIDIA probe routine was not called for 2 device(s).\n"
           "[  14.977053] NVRM: This can occur when a driver such as: \n"
           "NVRM: nouveau, rivafb, nvidiafb or rivatv \n"
           "NVRM: was loaded and obtained ownership of the NVIDIA device(s).\n")


def test_driver_without_its_gpus_fails_and_names_nouveau_blacklisting():
    checks = _run(NOUVEAU)
    by = {f.code: f for f in checks["gpu.xid"].findings}
    assert checks["gpu.xid"].status == "fail" and set(by) == {"GPU_INIT_FAILED", "GPU_NOT_FOUND"}
    assert by["GPU_INIT_FAILED"].component == "2 NVIDIA device(s)"
    assert "blacklist nouveau" in by["GPU_INIT_FAILED"].action and "initramfs" in by["GPU_INIT_FAILED"].action
    # either line alone, in a journal, is enough
    assert _codes(_run("Mar 02 10:01:02 gpu7 kernel: NVRM: No NVIDIA graphics adapter probed!\n")) == {
        "GPU_NOT_FOUND": "fail"}
    assert _codes(_run(NOUVEAU.splitlines(keepends=True)[1])) == {"GPU_INIT_FAILED": "fail"}
