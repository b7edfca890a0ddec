"""fabric.kernel_log: NIC driver messages in the kernel log that no port counter shows.

The fabric family's kernel-log rules (an adapter without enough slot power, a transceiver the driver refuses), and,
for a kernel log read without a live port snapshot, a port the log leaves down
although its cable is plugged (mlx5 'Port module event: ... Cable plugged').
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from clusterkit.checks._fabric_common import AFTER, DMESG, DUMP, IBSTAT, IBSTATUS, PERFQUERY
from clusterkit.checks.kernel_log_rules import hit_findings, kernel_log_rule, scan
from clusterkit.checks.registry import check
from clusterkit.parsers import ParseError
from clusterkit.parsers.kernel_log import LogLine
from clusterkit.parsers.link_events import link_event
from clusterkit.results import CheckResult, Finding

if TYPE_CHECKING:
    from clusterkit.analysis import NodeContext

_PCI = r"[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]"
_NIC = re.compile(r"(mlx\d_core|\w+) (" + _PCI + r")")
_MODULE = re.compile(r"mlx\d_core (" + _PCI + r"): Port module event(?:\[error\])?: module \d+, Cable (plugged|unplugged)")


def _nic_named(m: re.Match[str]) -> str:
    n = _NIC.search(m.string[:m.start()])
    return f"{n.group(1).split('_')[0]} {n.group(2)}" if n else "network adapter"


kernel_log_rule("NIC_PCIE_SLOT_POWER_INSUFFICIENT", r"Detected insufficient power on the PCIe slot", "warn",
                "the slot cannot power this adapter fully (optics may be shut down or throttled): move it to a slot "
                "rated for it, or check the riser and the BIOS slot-power setting against the server's manual",
                "insufficient PCIe slot power for the adapter", _nic_named, family="fabric")

# Intel i40e/ixgbe and mlx5 refuse a transceiver they do not support: the port carries nothing until it is replaced.
kernel_log_rule("NIC_MODULE_UNSUPPORTED",
                r"Rx/Tx is disabled on this device because an unsupported SFP module type was detected"
                r"|failed to load because an unsupported SFP\+? or QSFP module type was detected"
                r"|Port module event\[error\]: module \d+, Cable error, (?:Unsupported|Unknown) cable", "fail",
                "the port is disabled because the driver does not support its transceiver: replace the module with one "
                "the NIC supports (the vendor's compatibility list), or allow it where the driver offers that (i40e: "
                "`ethtool --set-priv-flags <if> allow-unsupported-sfp on`), then check the link comes up",
                "a network port disabled because its transceiver is not supported", _nic_named, family="fabric")


def _ports_left_down(lines: list[LogLine]) -> list[tuple[str, str, str]]:
    """(interface, PCI function, last line) for ports whose last link event is down while the
    driver last reported their cable plugged."""
    plugged: dict[str, bool] = {}
    last: dict[str, tuple[str, str | None, str]] = {}
    for ln in lines:
        msg = ln.message[:512]
        m = _MODULE.search(msg)
        if m:
            plugged[m.group(1).lower()] = m.group(2) == "plugged"
            continue
        ev = link_event(msg)
        if ev is not None:
            last[ev.interface] = (ev.event, (ev.pci or "").lower() or None, ln.message)
    return [(ifname, pci, msg) for ifname, (ev, pci, msg) in last.items()
            if ev == "down" and pci is not None and plugged.get(pci)]


@check("fabric.kernel_log", needs=(DMESG,))
def fabric_kernel_log(ctx: NodeContext) -> CheckResult:
    """NIC driver problems in the kernel log: slot power, ports left down with a cable plugged."""
    cid = "fabric.kernel_log"
    try:
        lines = ctx.parsed(DMESG)
    except ParseError as e:
        return CheckResult.error(cid, f"{DMESG.path}: {e}")
    findings = hit_findings(scan(lines, family="fabric"), DMESG.path)
    # A live port state (ibstat, sysfs snapshot) is judged by fabric.ports; the log only speaks without one.
    live = any(ctx.exists(k) for k in (AFTER, DUMP, PERFQUERY, IBSTAT, IBSTATUS))
    declared = set(ctx.declared.get("roce_interfaces") or [])
    for ifname, pci, msg in ([] if live else _ports_left_down(lines)):
        findings.append(Finding(
            "FABRIC_PORT_DOWN", "fail" if ifname in declared else "warn", f"{ifname} ({pci})",
            f"{ifname} ({pci}) went down with its cable plugged and the log shows no link up after it",
            observed="down", limit="up", evidence=msg[:200],
            action="check the far end (switch port enabled, right speed/FEC) and reseat or replace the cable; "
                   "ignore it if the port is not meant to be used"))
    return CheckResult.from_findings(cid, findings, f"{len(lines)} kernel log lines, no NIC driver problem")
