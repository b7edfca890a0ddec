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


def _have_nvidia_gpu() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetCount() > 0
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` run only where NVML sees an NVIDIA GPU."""
    gpu_items = [i for i in items if i.get_closest_marker("gpu")]
    if gpu_items and not _have_nvidia_gpu():
        skip = pytest.mark.skip(reason="no NVIDIA GPU (NVML found none): gpu tests run on a GPU machine")
        for item in gpu_items:
            item.add_marker(skip)
