"""Kernel log: `dmesg` in any time format, journalctl, syslog, container logs -> LogLine records.

Every family scans the same parsed lines (Xid for GPUs, mlx5 link events for
the fabric, MCE/AER/hung tasks for the host); see checks/kernel_log_rules.py.
The wrappers (timestamps, hosts, facilities) are peeled off by
clusterkit.evidence.normalize, which keeps what they said on each line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import MAX_LINE_CHARS, normalize_lines

KERNEL_LOG = declare("kernel-log", "host/dmesg.txt", command=("dmesg",), priority=10,
                     description="kernel log: dmesg (any time format), journalctl -k, syslog, container logs")
PATH = KERNEL_LOG.path

# What kernel messages look like once their timestamp is gone: a driver and its PCI
# device, or a subsystem prefix the kernel prints.
_KERNEL_MSG = re.compile(
    r"^(?:NVRM: |nvidia(?:-nvswitch\d*|-modeset|-uvm|-peermem)?[: ]|\S+ [0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]:? |"
    r"mlx5_\w+|pcieport |pci |EDAC |mce: |Linux version |Command line: |ACPI|Call Trace:|RIP: |"
    r"Out of memory|INFO: task |watchdog: |BUG: |EXT4-fs|XFS |audit: |IPv6: |infiniband |ib\d+: |eth\d+: |"
    r"en[ops]\w*: |bond\d+: |\[drm\]|usb \d|nvme |ata\d|scsi |sd \d|kernel: |systemd\[1\]: |hrtimer: |perf: |"
    r"NMI |Hardware Error|\{\d+\}\[Hardware Error\]|GHES|ipmi|device-mapper|Memory:|DMI: |Oops|Kernel panic)")
_STRONG = re.compile(r"NVRM: |XidCriticalError: Xid=|mlx5_core |pcieport .*AER|mce: |EDAC |Call Trace:|Kernel panic|nvidia-nvswitch\d*: ")


@dataclass(frozen=True)
class LogLine:
    message: str
    raw: str
    seconds: float | None = None   # seconds since boot (dmesg), when printed
    wall: str | None = None        # wall-clock stamp as printed (dmesg -T, syslog, journal)
    source: str = "kernel"         # "kernel", the program for journal/syslog lines, "unknown" if no prefix said
    lineno: int = 0


# /dev/kmsg dictionary lines (' SUBSYSTEM=pci') follow a record but are no part of its text.
_KMSG_DICT = re.compile(r"^\s+[A-Z_]+=")
_NVRM = "NVRM: "


def _continues(prev: LogLine | None, prev_stamped: bool, raw: str, stamped: bool) -> bool:
    """An indented unstamped line after a stamped one is the rest of that message: dmesg and
    journalctl print a multi-line message (NVRM's 'fallen off the bus' banner) that way."""
    return (prev is not None and prev_stamped and not stamped and raw[:1] in (" ", "\t")
            and not _KMSG_DICT.match(raw[:64]))


@KERNEL_LOG.parser
def parse_kernel_log(text: str) -> list[LogLine]:
    """Lines in any of the usual formats; unknown lines are kept as messages (never dropped).

    Continuation lines of a multi-line message are joined to it (their repeated `NVRM: `
    dropped), so a rule sees the whole sentence."""
    out: list[LogLine] = []
    prev_stamped = False
    for ln in normalize_lines(text):
        msg = ln.text.strip()
        if not msg:
            continue
        prev = out[-1] if out else None
        if prev is not None and _continues(prev, prev_stamped, ln.raw, ln.stamped):
            if prev.message.startswith(_NVRM) and msg.startswith(_NVRM):
                msg = msg[len(_NVRM):]
            out[-1] = LogLine(f"{prev.message} {msg}", f"{prev.raw}\n{ln.raw}", prev.seconds, prev.wall, prev.source,
                              prev.lineno)
            continue
        source = ln.source or ("kernel" if ln.stamped or _KERNEL_MSG.match(msg[:MAX_LINE_CHARS]) else "unknown")
        out.append(LogLine(msg, ln.raw, ln.seconds, ln.wall, source, ln.lineno))
        prev_stamped = ln.stamped
    return out


@KERNEL_LOG.recognizer
def is_kernel_log(text: str) -> bool:
    """Kernel messages, recognized by what they say once normalization removed their prefixes
    (so a paste is recognized the same with or without its timestamps)."""
    lines = [l.strip()[:MAX_LINE_CHARS] for l in text.split("\n")[:2000] if l.strip()]
    if not lines:
        return False
    hits = sum(1 for l in lines if _KERNEL_MSG.match(l))
    return hits >= max(1, len(lines) * 0.3) or any(_STRONG.search(l) for l in lines)


# ---- hung-task reports: which driver a task blocked in D state sits in ---------------------------
# The classic header, and the bare task line newer kernels print under it (pastes often start there;
# sysrq-w prints the same line for each blocked task). The comm is at most 15 characters ('%-15.15s').
_HUNG_HEAD = re.compile(r"\btask (?P<task>\S+):(?P<pid>\d+) blocked for more than \d+ seconds")
_TASK_LINE = re.compile(r"^task:(?P<task>\S.{0,14}?) +state:(?P<state>[A-Za-z])\b(?:.{0,40}? pid: ?(?P<pid>\d+))?")
# What else a hung-task report prints before the next message: the taint and hint lines, the old
# 'comm D <hex>' line and raw stack words, the trace and its markers, frames, registers.
_REPORT_LINE = re.compile(
    r'^(?:Tainted:|Not tainted|"echo 0 > /proc/sys/kernel/hung_task_timeout_secs"|Call Trace:|</?(?:TASK|IRQ|NMI|EOI)>'
    r"|(?:\[<[0-9a-fA-F]+>\] )?(?:\? )?[\w.$]{1,200}\+0x[0-9a-fA-F]+/0x[0-9a-fA-F]+"
    r"|R[A-Z0-9]{1,3}: |Code: |CPU: \d+ PID: |Hardware name: |[0-9a-fA-F]{16}(?: [0-9a-fA-F]{16})*$"
    r"|\S.{0,15}? +D +[0-9a-fA-F]{16} )")
# A frame in a module: 'uvm_ioctl+0x13e0/0x16f0 [nvidia_uvm]' (anchored at '+0x', the name read backwards)
_MODULE_FRAME = re.compile(r"\+0x[0-9a-fA-F]+/0x[0-9a-fA-F]+ \[(?P<mod>\w+)\]")
_FUNC_BEFORE = re.compile(r"(\? )?([\w.$]{1,128})$")


@dataclass(frozen=True)
class StackFrame:
    function: str
    module: str
    reliable: bool          # False for a '? name' frame: a stale address the unwinder only guessed


@dataclass
class HungTask:
    """A task the kernel reports blocked in D state, with the module frames its stack shows."""

    task: str
    pid: int | None
    line: LogLine                        # the report's first line
    frames: list[StackFrame] = field(default_factory=list)
    bare: bool = False                   # began with 'task:X state:D' (no 'blocked for more than' header)


def _module_frames(msg: str) -> list[StackFrame]:
    out = []
    for m in _MODULE_FRAME.finditer(msg):
        f = _FUNC_BEFORE.search(msg, max(0, m.start() - 130), m.start())
        if f:
            out.append(StackFrame(f.group(2), m.group("mod"), f.group(1) is None))
    return out


def _under_header(m: re.Match[str], cur: HungTask | None) -> bool:
    """The bare task line a kernel prints under its own 'blocked for more than' header."""
    return m.re is _TASK_LINE and cur is not None and not cur.bare and m.group("task").strip() == cur.task[:15].strip()


def hung_tasks(lines: list[LogLine]) -> list[HungTask]:
    """Every hung-task report (`INFO: task X:PID blocked for more than N seconds`, or a bare
    `task:X state:D` line) with the module frames of the stack printed under it."""
    out: list[HungTask] = []
    cur: HungTask | None = None
    for line in lines:
        msg = line.message[:MAX_LINE_CHARS]
        head = _HUNG_HEAD.search(msg) or _TASK_LINE.match(msg)
        if head is not None and not _under_header(head, cur):
            cur = None   # a task in another state (a sysrq dump's sleepers) ends the report before it
            if head.re is _HUNG_HEAD or head.group("state") == "D":
                pid = head.group("pid")
                cur = HungTask(head.group("task").strip(), int(pid) if pid else None, line, bare=head.re is _TASK_LINE)
                out.append(cur)
        elif head is None and (cur is None or not _REPORT_LINE.match(msg)):
            cur = None
        if cur is not None:
            cur.frames += _module_frames(msg)
    return out
