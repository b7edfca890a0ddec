"""Fabric collection: HCA state, counter snapshots around the test window, ethtool, mlxlink.

The counter reader is `clusterkit/node_scripts/fabric_counters.py`, sent on
stdin to `python3 -` so nodes need nothing installed; tests import the same
module and point it at a fake sysfs root.
"""

from __future__ import annotations

import re
from pathlib import Path

from clusterkit.parsers.ethtool import ETHTOOL_M, ETHTOOL_S, ETHTOOL_S_BEFORE
from clusterkit.parsers.iblinkinfo import IBLINKINFO
from clusterkit.parsers.ibcounters import COUNTERS_AFTER, COUNTERS_BEFORE
from clusterkit.parsers.ibstat import IBSTAT, IBSTATUS
from clusterkit.parsers.mlxlink import MLXLINK
from clusterkit.probes.registry import PHASE_AFTER, PHASE_BEFORE, Command, ProbeEnv, probe, simple_probe

_READER = Path(__file__).resolve().parent.parent / "node_scripts" / "fabric_counters.py"

simple_probe("fabric.ibstat", IBSTAT, timeout_s=30)
simple_probe("fabric.ibstatus", IBSTATUS, timeout_s=30)
simple_probe("fabric.iblinkinfo", IBLINKINFO, timeout_s=120, root=True)


def reader_command(path: str, phase: int, label: str) -> Command:
    return Command(path, ["python3", "-", "--phase", label], timeout_s=30, stdin=_READER.read_bytes(),
                   phase=phase, optional=False)


@probe("fabric.counters", kinds=(COUNTERS_BEFORE, COUNTERS_AFTER))
def plan_counters(env: ProbeEnv) -> list[Command]:
    """sysfs counters and carrier counts, before and after the load phase."""
    return [reader_command(COUNTERS_BEFORE.path, PHASE_BEFORE, "before"),
            reader_command(COUNTERS_AFTER.path, PHASE_AFTER, "after")]


_IFNAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")   # Linux interface names (IFNAMSIZ 16 with NUL)


def _interfaces(env: ProbeEnv) -> list[str]:
    """Declared RoCE interfaces whose names can be interfaces (a name also becomes a bundle path)."""
    if env.spec is None:
        return []
    return [i for i in env.spec.roce_interfaces or [] if _IFNAME.match(i)]


@probe("fabric.ethtool", kinds=(ETHTOOL_S, ETHTOOL_S_BEFORE, ETHTOOL_M))
def plan_ethtool(env: ProbeEnv) -> list[Command]:
    """ethtool -S before and after the window, and ethtool -m, per declared RoCE interface."""
    cmds: list[Command] = []
    for ifname in _interfaces(env):
        for k, root, phase in ((ETHTOOL_S_BEFORE, False, PHASE_BEFORE), (ETHTOOL_S, False, PHASE_AFTER),
                               (ETHTOOL_M, True, PHASE_AFTER)):
            cmds.append(Command(k.at(ifname=ifname), k.argv(ifname=ifname), 20, root=root, phase=phase))
    return cmds


@probe("fabric.mlxlink", kinds=(MLXLINK,))
def plan_mlxlink(env: ProbeEnv) -> list[Command]:
    """mlxlink -m -c per declared HCA (optional: MFT is often not installed)."""
    devs = [d for d in env.spec.ib_devices or [] if _IFNAME.match(d)] if env.spec else []
    return [Command(MLXLINK.at(device=d), MLXLINK.argv(device=d), 60, root=True, phase=PHASE_AFTER) for d in devs]
