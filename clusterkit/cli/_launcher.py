"""`--launcher srun` and its options, shared by verify, collect and burnin.

The command receives them as one `srun: SrunOptions | None` argument (None: SSH, the default).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from clusterkit.cli.common import option_group
from clusterkit.errors import ConfigError

if TYPE_CHECKING:
    from clusterkit.fleet.srun import SrunOptions

_OPTIONS: dict[str, tuple[Any, Any]] = {
    "launcher": (str, typer.Option("ssh", "--launcher", help="How nodes are reached: ssh (default), or srun: one "
                                                             "Slurm step runs `clusterkit check --local` on every "
                                                             "node, bundles on a shared file system.")),
    "nodelist": (Optional[str], typer.Option(None, "--nodelist", help="srun: these Slurm nodes (node[01-16]); with an "
                                                                      "inventory, its hosts among them.")),
    "partition": (Optional[str], typer.Option(None, "--partition", help="srun: run the step in this partition "
                                                                        "(its nodes, without --nodelist or -i).")),
    "reservation": (Optional[str], typer.Option(None, "--reservation", help="srun: run the step in this "
                                                "reservation (its nodes, without --nodelist or -i).")),
    "shared_dir": (Optional[Path], typer.Option(None, "--shared-dir", help="srun: a directory every node mounts, "
                                                "for the run's bundles (default: --keep-evidence or --out).")),
    "node_clusterkit": (str, typer.Option("clusterkit", "--node-clusterkit", help="srun: how the nodes start "
                                          "clusterkit, e.g. '/shared/venv/bin/clusterkit'.")),
}


def srun_options(launcher: str = "ssh", nodelist: Optional[str] = None, partition: Optional[str] = None,
                 reservation: Optional[str] = None, shared_dir: Optional[Path] = None,
                 node_clusterkit: str = "clusterkit") -> "SrunOptions | None":
    if launcher not in ("ssh", "srun"):
        raise ConfigError(f"unknown --launcher '{launcher}' (ssh, srun)")
    if launcher == "ssh":
        if nodelist or partition or reservation or shared_dir:
            raise ConfigError("--nodelist, --partition, --reservation and --shared-dir go with --launcher srun")
        return None
    from clusterkit.fleet.srun import SrunOptions

    return SrunOptions(shared_dir=shared_dir.resolve() if shared_dir else None, nodelist=nodelist,
                       partition=partition, reservation=reservation, clusterkit=node_clusterkit)


# Give a typer command the launcher options; it receives them as one `srun: SrunOptions | None` argument.
with_launcher_options = option_group("srun", _OPTIONS, srun_options)


def srun_ready(srun: "SrunOptions", fleet: Any, shared: Optional[Path]) -> "SrunOptions":
    """The options for one run: the run's --deadline, and a run directory the nodes can write to."""
    if shared is None and srun.shared_dir is None:
        raise ConfigError("--launcher srun: give --shared-dir (or --keep-evidence / --out) on a file system every "
                          "node mounts: the nodes write their bundles there")
    srun.deadline_s = fleet.deadline_s
    return srun
