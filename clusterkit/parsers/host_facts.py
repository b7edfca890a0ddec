"""Small host facts: uname, os-release, df, meminfo, clock, uptime."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from clusterkit.evidence.kinds import declare
from clusterkit.parsers import ParseError

OS_RELEASE = declare("os-release", "host/os-release.txt", command=("cat", "/etc/os-release"), priority=30)
MEMINFO = declare("meminfo", "host/meminfo.txt", command=("cat", "/proc/meminfo"), priority=30)
DF = declare("df", "host/df.txt", priority=30,
             command=("df", "-P", "-k", "-x", "tmpfs", "-x", "devtmpfs", "-x", "overlay", "-x", "squashfs"))
UNAME = declare("uname", "host/uname.txt", command=("uname", "-a"), priority=20)


@dataclass(frozen=True)
class Uname:
    kernel_name: str
    hostname: str
    release: str
    machine: str


@UNAME.parser
def parse_uname(text: str) -> Uname:
    """`uname -a` (or `uname -srm`): the release is what drift is judged on."""
    parts = text.strip().split("\n")[-1].split()
    if len(parts) >= 3 and parts[0] == "Linux":
        return Uname(parts[0], parts[1], parts[2], parts[-2] if len(parts) > 4 else parts[-1])
    if len(parts) >= 1 and re.match(r"^\d+\.\d+", parts[0]):
        return Uname("Linux", "", parts[0], "")
    raise ParseError("not `uname -a` output (expected 'Linux <host> <release> ...')")


@OS_RELEASE.parser
def parse_os_release(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            try:
                if len(v) > 4096:   # no real value is this long; shlex would take seconds on it
                    raise ValueError(v)
                vals = shlex.split(v)
            except ValueError:
                vals = [v.strip('"')]
            out[k.strip()] = vals[0] if vals else ""
    if "ID" not in out and "NAME" not in out:
        raise ParseError("not /etc/os-release content (no ID= or NAME=)")
    return out


@dataclass(frozen=True)
class Mount:
    filesystem: str
    size_kib: int
    used_kib: int
    avail_kib: int
    mountpoint: str


@DF.parser
def parse_df(text: str) -> list[Mount]:
    """`df -P -k`: POSIX format, one line per filesystem."""
    out = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 6 and f[1].isdigit() and f[2].isdigit() and f[3].isdigit():
            out.append(Mount(f[0], int(f[1]), int(f[2]), int(f[3]), " ".join(f[5:])))
    if not out:
        raise ParseError("not `df -P -k` output (no filesystem lines)")
    return out


@MEMINFO.parser
def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo in KiB."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?\s*$", line.strip())
        if m:
            out[m.group(1)] = int(m.group(2))
    if "MemTotal" not in out:
        raise ParseError("not /proc/meminfo content (no MemTotal)")
    return out


# The node's clock; bundle.json records the controller's clock around it.
CLOCK = declare("clock", "host/clock.txt", command=("date", "+%s.%N"))
UPTIME = declare("uptime", "host/uptime.txt", command=("cat", "/proc/uptime"))
# One line per tool: "name: first line of its version output" or "name: not installed".
# A fixed script (no inventory value in it), so it is safe to hand to `sh -c`.
_TOOL_VERSIONS = r"""
v() { n=$1; shift; if command -v "$1" >/dev/null 2>&1; then printf '%s: %s\n' "$n" "$("$@" 2>&1 | grep -v '^\s*$' | head -n1)"; else printf '%s: not installed\n' "$n"; fi; }
v kernel uname -r
v nvidia-smi nvidia-smi --version
v nvidia-fabricmanager nv-fabricmanager --version
v dcgmi dcgmi --version
v ibstat ibstat -V
v ethtool ethtool --version
v mlxlink mlxlink --version
v all_reduce_perf all_reduce_perf --help
v mpirun mpirun --version
v python3 python3 --version
"""
TOOL_VERSIONS = declare("tool-versions", "host/tool-versions.txt", command=("sh", "-c", _TOOL_VERSIONS))


@CLOCK.parser
def parse_epoch(text: str) -> float:
    """`date +%s.%N` on the node."""
    s = text.strip().split("\n")[-1].strip() if text.strip() else ""
    try:
        v = float(s)
    except ValueError:
        raise ParseError(f"not an epoch time: {s[:40]!r}") from None
    if not 1e9 < v < 1e10:
        raise ParseError(f"epoch time out of range: {v}")
    return v


@OS_RELEASE.recognizer
def is_os_release(text: str) -> bool:
    """/etc/os-release"""
    keys = {l.split("=", 1)[0] for l in text.splitlines() if "=" in l}
    return {"ID", "NAME"} <= keys and "VERSION_ID" in keys | {"VERSION_ID"} and len(text) < 10000


@MEMINFO.recognizer
def is_meminfo(text: str) -> bool:
    """/proc/meminfo"""
    return text.lstrip().startswith("MemTotal:")


@DF.recognizer
def is_df(text: str) -> bool:
    """df -P -k"""
    first = text.lstrip().split("\n", 1)[0]
    return first.startswith("Filesystem") and "1024-blocks" in first


@UNAME.recognizer
def is_uname(text: str) -> bool:
    """uname -a"""
    t = text.strip()
    return "\n" not in t and t.startswith("Linux ") and len(t.split()) >= 3


@TOOL_VERSIONS.parser
def parse_tool_versions(text: str) -> dict[str, str]:
    """host/tool-versions.txt: `name: version line` per tool."""
    out = {}
    for line in text.splitlines():
        if ": " in line:
            k, v = line.split(": ", 1)
            if k and " " not in k.strip():
                out[k.strip()] = v.strip()
    return out
