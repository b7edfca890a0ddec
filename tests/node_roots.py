"""Per-node environments for tests of `clusterkit check --local`: node N's probes find the tools in
ROOT/N/bin first on PATH (a fake `dmesg` printing an Xid 79, an `nvidia-smi` that lost a GPU), and
the system's own tools after them. Slurm's slurmd sets SLURMD_NODENAME for a health check, a prolog
and each srun task, so one wrapper script serves every fake node of a single-host Slurm."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HEALTHY_DMESG = "[    5.123456] NVRM: loading NVIDIA UNIX x86_64 Kernel Module  550.90.07  Tue Jun  4 2024\n"
XID79_DMESG = HEALTHY_DMESG + ("[ 1234.567890] NVRM: Xid (PCI:0000:1b:00): 79, pid=2871, name=python3, "
                               "GPU has fallen off the bus.\n")
# what nvidia-smi prints for a GPU it can no longer reach (exit 15)
GPU_LOST_SMI = "Unable to determine the device handle for GPU 0000:3B:00.0: Unknown Error\n"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


class NodeRoots:
    def __init__(self, root: Path, nodes: list[str]):
        self.root = root
        self.nodes = nodes
        for n in nodes:
            (root / n / "bin").mkdir(parents=True, exist_ok=True)
            self.tool(n, "dmesg", HEALTHY_DMESG)   # the test machine's own kernel log is not a node's

    def tool(self, node: str, name: str, stdout: str, exit_code: int = 0) -> None:
        """A fake `name` on node's PATH that prints `stdout` and exits `exit_code`."""
        data = self.root / node / f"{name}.out"
        data.write_text(stdout)
        p = self.root / node / "bin" / name
        p.write_text(f"#!/bin/sh\ncat {shlex.quote(str(data))}\nexit {int(exit_code)}\n")
        p.chmod(0o755)

    def without_clusterkit(self, node: str) -> None:
        """The node has no clusterkit installed: its wrapper exits 127 as a shell would."""
        (self.root / node / "no-clusterkit").touch()

    def env(self, node: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment the node's check sees when started by hand (as slurmd would start it)."""
        return dict(os.environ, SLURMD_NODENAME=node, **(extra or {}))

    def script(self, name: str, args: list[str], *, env: dict[str, str] | None = None, log: bool = False) -> Path:
        """A script that runs `python -m clusterkit ARGS` as the node in $SLURMD_NODENAME, with that node's
        tools first on PATH and this checkout's clusterkit (slurmd gives health checks and prologs a bare
        environment, so everything they need is written in). `log`: append its output to ROOT/<node>/NAME.log."""
        q = shlex.quote
        exports = {"PYTHONPATH": str(ROOT), "LC_ALL": "C", **(env or {})}
        lines = ["#!/bin/sh", 'node="${SLURMD_NODENAME:?not started by slurmd}"',
                 f'export PATH={q(str(self.root))}/"$node"/bin:{SYSTEM_PATH}',
                 *[f"export {k}={q(v)}" for k, v in exports.items()],
                 f'if [ -e {q(str(self.root))}/"$node"/no-clusterkit ]; then '
                 'echo "clusterkit: command not found" >&2; exit 127; fi']
        run = f"{q(sys.executable)} -m clusterkit {' '.join(q(a) for a in args)}" + (' "$@"' if not log else "")
        if log:
            run += f' >> {q(str(self.root))}/"$node"/{q(name)}.log 2>&1'
            lines += [run]
        else:
            lines += ["exec " + run]
        p = self.root / name
        p.write_text("\n".join(lines) + "\n")
        p.chmod(0o755)
        return p

    def log(self, node: str, name: str) -> str:
        p = self.root / node / f"{name}.log"
        return p.read_text() if p.exists() else ""
