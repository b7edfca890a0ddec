"""Kernel log: `dmesg` in any time format, journalctl, syslog, container logs -> LogLine records.

Every family scans the same parsed lines (Xid for GPUs, mlx5 link events for
the fabric, MCE/AER/hung tasks for the host); see checks/kernel_log_rules.py.
The wrappers (timestamps, hosts, facilities) are peeled off by
clusterkit.evidence.normalize, which keeps what they said on each line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
