"""Fixtures of the core tests."""

from __future__ import annotations

from typing import Callable

import pytest

from clusterkit.cli.main import main


@pytest.fixture
def ck(capsys) -> Callable[..., tuple[int, str, str]]:
    """Run `clusterkit ARGS...` in this process: (exit code, stdout, stderr)."""
    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            main(list(args))
        out = capsys.readouterr()
        return int(e.value.code or 0), out.out, out.err
    return run
