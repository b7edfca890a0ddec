"""Host probes: facts every Linux node has, so they are real in tests too."""

from __future__ import annotations

from clusterkit.probes.registry import PHASE_AFTER, simple_probe

simple_probe("host.uname", "host/uname.txt", ["uname", "-a"], timeout_s=10)
simple_probe("host.os_release", "host/os-release.txt", ["cat", "/etc/os-release"], timeout_s=10)
# The node's clock; bundle.json records the controller's clock around it.
simple_probe("host.clock", "host/clock.txt", ["date", "+%s.%N"], timeout_s=10)
simple_probe("host.uptime", "host/uptime.txt", ["cat", "/proc/uptime"], timeout_s=10)
simple_probe("host.df", "host/df.txt", ["df", "-P", "-k", "-x", "tmpfs", "-x", "devtmpfs", "-x", "overlay", "-x", "squashfs"], timeout_s=20)
simple_probe("host.meminfo", "host/meminfo.txt", ["cat", "/proc/meminfo"], timeout_s=10)
# Taken last, so it covers the load tests; root because of kernel.dmesg_restrict.
simple_probe("host.kernel_log", "host/dmesg.txt", ["dmesg"], timeout_s=30, root=True, phase=PHASE_AFTER)

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
simple_probe("host.tool_versions", "host/tool-versions.txt", ["sh", "-c", _TOOL_VERSIONS], timeout_s=30)
