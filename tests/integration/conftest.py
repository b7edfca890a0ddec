"""Fixtures that start real components for integration tests."""

from __future__ import annotations

import pytest

from tests.support.sshd import SshdCluster, have_sshd


@pytest.fixture(scope="session")
def sshd_available() -> None:
    why = have_sshd()
    if why:
        pytest.skip(why)


@pytest.fixture(scope="session")
def sshd_cluster(sshd_available, tmp_path_factory) -> SshdCluster:
    """Three real sshd nodes (node01..node03) on 127.0.0.1, shared by the session.

    Tests must not stop or reconfigure these nodes; start their own
    `SshdCluster` (or `sshd_cluster.start(...)` more nodes) for that."""
    cluster = SshdCluster(tmp_path_factory.mktemp("sshd"))
    cluster.start(3)
    yield cluster
    cluster.stop()
