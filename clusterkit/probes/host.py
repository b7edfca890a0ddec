"""Host probes: facts every Linux node has, so they are real in tests too."""

from __future__ import annotations

from clusterkit.parsers.host_facts import CLOCK, DF, MEMINFO, OS_RELEASE, TOOL_VERSIONS, UNAME, UPTIME
from clusterkit.parsers.kernel_log import KERNEL_LOG
from clusterkit.parsers.lspci import LSPCI
from clusterkit.probes.registry import PHASE_AFTER, simple_probe

simple_probe("host.uname", UNAME, timeout_s=10)
simple_probe("host.os_release", OS_RELEASE, timeout_s=10)
simple_probe("host.clock", CLOCK, timeout_s=10)
simple_probe("host.uptime", UPTIME, timeout_s=10)
simple_probe("host.df", DF, timeout_s=20)
simple_probe("host.meminfo", MEMINFO, timeout_s=10)
# Taken last, so it covers the load tests; root because of kernel.dmesg_restrict.
simple_probe("host.kernel_log", KERNEL_LOG, timeout_s=30, root=True, phase=PHASE_AFTER)
# NVIDIA (10de) and Mellanox (15b3) functions; root reads the extended capabilities (AER, link).
simple_probe("host.lspci", LSPCI, timeout_s=30, root=True)
simple_probe("host.tool_versions", TOOL_VERSIONS, timeout_s=30)
