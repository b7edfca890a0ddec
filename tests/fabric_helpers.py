"""Helpers for the fabric tests: the real profile values, bundles in memory, one analysis call."""

from __future__ import annotations

import tomllib
from pathlib import Path

from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.errors import ConfigError
from clusterkit.evidence.bundle import Bundle
from clusterkit.plugins import load_all
from clusterkit.profiles import Profile, load_profile
from clusterkit.suites import Suite

REPO = Path(__file__).resolve().parent.parent


def fabric_profile(name: str = "h100-sxm5-80gb") -> Profile:
    """The profile as shipped; while other families' keys are not declared in this
    branch, its [fabric] section alone (the values the checks read)."""
    load_all()
    try:
        return load_profile(name)
    except ConfigError:
        doc = tomllib.loads((REPO / "checks" / "profiles" / "base.toml").read_text())
        return Profile(name, {f"fabric.{k}": v for k, v in doc["fabric"].items()}, [name, "base"])


class FixedProfiles(ProfileResolver):
    def __init__(self, profile: Profile):
        super().__init__(profile.name)
        self._cache[profile.name] = profile


def suite(*ids: str) -> Suite:
    load_all()
    from clusterkit.checks.registry import CHECKS

    return Suite("test", list(ids) or sorted(c for c in CHECKS if c.startswith("fabric.")))


def analyze(bundles: list[Bundle], *ids: str, loose: bool = False, profile: Profile | None = None):
    return analyze_bundles(bundles, suite(*ids), profiles=FixedProfiles(profile or fabric_profile()), loose=loose)


def node_check(run, host: str, check_id: str):
    node = next(n for n in run.nodes if n.host == host)
    return next(c for c in node.checks if c.id == check_id)
