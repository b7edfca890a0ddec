"""Import every module that registers checks, evidence kinds, probes and simulated faults."""

from __future__ import annotations

import importlib
import pkgutil

_PACKAGES = ("clusterkit.parsers", "clusterkit.checks", "clusterkit.probes", "clusterkit.sim")
_loaded = False


def load_all() -> None:
    global _loaded
    if _loaded:
        return
    for pkg_name in _PACKAGES:
        pkg = importlib.import_module(pkg_name)
        for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{pkg_name}.{mod.name}")
    _loaded = True
