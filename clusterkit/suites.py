"""Suites: which checks run, with which parameters (`checks/suites/*.toml`)."""

from __future__ import annotations

import dataclasses
import fnmatch
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from clusterkit.checks.registry import CHECKS
from clusterkit.errors import ConfigError
from clusterkit.paths import data_dir


@dataclass
class Suite:
    name: str
    check_ids: list[str]
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # check id or probe name -> params
    description: str = ""
    skip_probes: list[str] = field(default_factory=list)   # never run, even when a check could read them
    source: str = ""    # what load_suite was given (a name or a .toml path): what srun's nodes load again

    def params_for(self, name: str) -> dict[str, Any]:
        return dict(self.params.get(name, {}))

    def bundle_meta(self) -> dict[str, Any]:
        """What a bundle records of the suite it was collected with, so `analyze` applies the same checks."""
        return {"suite": self.name, "checks": list(self.check_ids)}


def suite_dir() -> Path:
    return data_dir("checks") / "suites"


def available_suites() -> list[str]:
    return sorted(p.stem for p in suite_dir().glob("*.toml"))


def load_suite(name_or_path: str) -> Suite:
    from clusterkit.plugins import load_all
    from clusterkit.probes.registry import PROBES

    load_all()
    p = Path(name_or_path)
    source = str(p.resolve())
    if not (p.suffix == ".toml" and p.is_file()):
        p, source = suite_dir() / f"{name_or_path}.toml", name_or_path
    if not p.is_file():
        raise ConfigError(f"unknown suite '{name_or_path}' (available: {', '.join(available_suites())})")
    try:
        doc = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML: {e}") from None
    unknown = set(doc) - {"description", "checks", "exclude", "params", "skip_probes"}
    if unknown:
        raise ConfigError(f"{p}: unknown key(s) {', '.join(sorted(unknown))}")
    selected: list[str] = []
    for pattern in doc.get("checks", []):
        hits = sorted(c for c in CHECKS if fnmatch.fnmatchcase(c, pattern))
        if not hits:
            raise ConfigError(f"{p}: '{pattern}' matches no check (known: {', '.join(sorted(CHECKS))})")
        selected += [h for h in hits if h not in selected]
    for pattern in doc.get("exclude", []):
        selected = [c for c in selected if not fnmatch.fnmatchcase(c, pattern)]
    params = doc.get("params", {})
    for key in params:
        if key not in CHECKS and key not in PROBES:
            raise ConfigError(f"{p}: [params.\"{key}\"] names no check or probe")
    skip = [str(n) for n in doc.get("skip_probes", [])]
    for name in skip:
        if name not in PROBES:
            raise ConfigError(f"{p}: skip_probes names no probe: '{name}' (known: {', '.join(sorted(PROBES))})")
    return Suite(p.stem, selected, params, str(doc.get("description", "")), skip, source)


def _globs(text: str | None) -> list[str]:
    return [g.strip() for g in (text or "").split(",") if g.strip()]


def select_checks(suite: Suite, checks: str | None = None, skip: str | None = None) -> Suite:
    """The suite with `--checks` and `--skip` applied (comma-separated globs on check ids).

    `--checks` picks from every check, not only the suite's: it replaces writing a suite file to run a
    few checks; the suite's parameters still apply. `--skip` leaves checks out. A glob that matches no
    check is a config error (a typo must not silently run nothing)."""
    from clusterkit.plugins import load_all

    load_all()
    picked = list(suite.check_ids)
    if _globs(checks):
        picked = []
        for g in _globs(checks):
            hits = sorted(c for c in CHECKS if fnmatch.fnmatchcase(c, g))
            if not hits:
                raise ConfigError(f"--checks '{g}' matches no check (`clusterkit checks list` lists them)")
            picked += [h for h in hits if h not in picked]
    for g in _globs(skip):
        if not any(fnmatch.fnmatchcase(c, g) for c in CHECKS):
            raise ConfigError(f"--skip '{g}' matches no check (`clusterkit checks list` lists them)")
        picked = [c for c in picked if not fnmatch.fnmatchcase(c, g)]
    if not picked:
        raise ConfigError("--checks/--skip leave no check to run")
    if picked == suite.check_ids:
        return suite
    return dataclasses.replace(suite, check_ids=picked)
