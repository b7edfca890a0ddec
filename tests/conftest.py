"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REAL_OUTPUTS = Path(os.environ.get("CLUSTERKIT_REAL_OUTPUTS", REPO.parent / "shared" / "real-outputs"))


def real_output(name: str) -> str:
    """A file of ../shared/real-outputs without its `# source:`/`# what:` header; skip if absent."""
    from clusterkit.evidence.text import strip_source_header

    p = REAL_OUTPUTS / name
    if not p.is_file():
        pytest.skip(f"real output {name} not available ({REAL_OUTPUTS})")
    return strip_source_header(p.read_text(errors="replace"))


@pytest.fixture
def real():
    return real_output
