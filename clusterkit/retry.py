"""failed.txt: the hosts a run should be repeated on, for `--limit @failed.txt` (as Ansible's retry files).

A host is listed when its result failed or could not be judged (status fail or error), or it was not
reached, cut short or never collected (outcome other than ok). One name a line, nothing else, so
ansible-playbook's own `--limit @failed.txt` reads it too. Written only when something failed, like
Ansible's retry files; a run where nothing failed leaves an earlier file alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from clusterkit.results import RunResult

FILE_NAME = "failed.txt"


def failed_hosts(run: RunResult) -> list[str]:
    """Hosts to rerun, in the run's order."""
    return [n.host for n in run.nodes if n.outcome != "ok" or n.status in ("fail", "error")]


def failed_path(output: Path | None = None, directory: Path | None = None) -> Path:
    """Beside the report file, else in the run's directory (bundles, logs), else the current directory."""
    if output is not None:
        return output.parent / FILE_NAME
    return (directory if directory is not None else Path(".")) / FILE_NAME


def write_failed(hosts: Iterable[str], path: Path) -> Path | None:
    """Write the host names (None, and nothing written, when there are none)."""
    names = list(dict.fromkeys(hosts))
    if not names:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{h}\n" for h in names))
    tmp.replace(path)
    return path


def rerun_hint(path: Path, hosts: list[str]) -> str:
    shown = ", ".join(hosts[:8]) + (f" (+{len(hosts) - 8} more)" if len(hosts) > 8 else "")
    return (f"{len(hosts)} host{'s' if len(hosts) != 1 else ''} to rerun ({shown}) -> {path}; "
            f"rerun them with --limit @{path}")
