"""Which tool, and which driver or device behind it, a probe command needs.

When one command of a host hangs on a wedged GPU driver or a BMC that stopped
answering, every other command that goes through the same driver would hang
too and cost its own timeout. Collection asks `needs(cmd)` for each command and
skips the rest of a host's commands behind a driver that already hung.

The tool is read from the Command itself (its argv, and for `python3 -` the
node script on its stdin), so probe modules need not declare anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from clusterkit.probes.registry import Command


@dataclass(frozen=True)
class Driver:
    key: str            # recorded in bundle.json ("driver")
    label: str          # what hangs, for messages: "the NVIDIA driver"
    symptom: str        # "GPU or driver wedged"


NVIDIA = Driver("nvidia", "the NVIDIA driver", "GPU or driver wedged")
BMC = Driver("bmc", "the BMC (IPMI)", "BMC not answering")

# tool name (argv[0]'s basename, or the node script's name) -> the driver every call goes through
DRIVER_OF_TOOL: dict[str, Driver] = {
    "nvidia-smi": NVIDIA,
    "nvml": NVIDIA,              # clusterkit's NVML node script (gpu.nvml, power.step)
    "dcgmi": NVIDIA,
    "all_reduce_perf": NVIDIA,   # single-node NCCL (nccl-tests, or the torch fallback): CUDA on every GPU
    "ipmitool": BMC,
}
DRIVERS = {d.key: d for d in DRIVER_OF_TOOL.values()}


@lru_cache(maxsize=1)
def _node_scripts() -> dict[bytes, str]:
    """The stdin scripts that name a tool: what `python3 -` runs is the script, not python."""
    from clusterkit.fleet.nccl_runner import BENCH_SCRIPT
    from clusterkit.probes.gpu import node_script

    return {node_script(): "nvml", BENCH_SCRIPT.read_bytes(): "all_reduce_perf"}


def tool_of(cmd: Command) -> str:
    """`nvidia-smi` for `nvidia-smi -q`; `nvml` for the GPU node script on stdin;
    `env VAR=x tool ...` is `tool`."""
    if cmd.stdin:
        named = _node_scripts().get(cmd.stdin)
        if named:
            return named
    argv = list(cmd.argv)
    if argv and os.path.basename(argv[0]) == "env":
        argv = argv[1:]
        while argv and (argv[0].startswith("-") or "=" in argv[0]):
            argv = argv[1:]
    return os.path.basename(argv[0]) if argv else ""


def needs(cmd: Command) -> tuple[str, Driver | None]:
    """(tool, the driver it goes through or None)."""
    tool = tool_of(cmd)
    return tool, DRIVER_OF_TOOL.get(tool)
