"""Fixtures for the nccl family's tests."""

from __future__ import annotations

import pytest

from clusterkit.checks.registry import PROFILE_KEYS, declare_profile_keys
from clusterkit.plugins import load_all


@pytest.fixture(autouse=True, scope="session")
def _declared_base_keys():
    """base.toml carries [host] keys whose checks live on another branch until the merge;
    declare them here only when no check did, so profiles load on this branch alone."""
    load_all()
    host = {"host.min_free_disk_gib": float, "host.min_free_disk_percent": float,
            "host.min_available_memory_gib": float, "host.max_clock_skew_ms": float,
            "host.warn_clock_skew_ms": float, "host.kernel_log_ignore": list}
    declare_profile_keys({k: t for k, t in host.items() if k not in PROFILE_KEYS})
