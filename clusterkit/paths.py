"""Where the data directories (profiles, suites, playbooks) are found."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """`checks` or `playbooks`: the copy inside a wheel, else the repository's."""
    packaged = _PKG / "_data" / name
    if packaged.is_dir():
        return packaged
    return _PKG.parent / name
