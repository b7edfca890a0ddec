"""Profiles: expected values per GPU model, as data with an `inherits` chain.

`checks/profiles/<name>.toml` holds sections named after check families
(`[host]`, `[gpu]`, `[power]`, `[nccl]`, `[fabric]`, ...). Key names carry their
unit (`min_busbw_gbps`, `max_symbol_error_delta`). Every key must be declared
by a check (`@check(params=...)`), so a typo is a config error, not a silently
ignored threshold.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from clusterkit.checks.registry import PROFILE_KEYS
from clusterkit.errors import ConfigError
from clusterkit.paths import data_dir

_TOP_KEYS = {"description", "inherits", "match_names"}
# A profile name is a file stem in a profile directory, never a path: names come from
# inventories and from bundles that others send.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MISSING = object()


@dataclass
class Profile:
    name: str
    values: dict[str, Any] = field(default_factory=dict)   # "section.key" -> value
    chain: list[str] = field(default_factory=list)         # this profile, then its ancestors
    description: str = ""
    match_names: list[str] = field(default_factory=list)   # GPU product names it is for
    origin: dict[str, str] = field(default_factory=dict)   # "section.key" -> profile of the chain that set it

    def get(self, key: str, default: Any = None) -> Any:
        if key not in PROFILE_KEYS:
            raise KeyError(f"profile key {key!r} is not declared by any check")
        return self.values.get(key, default)

    def section(self, name: str) -> dict[str, Any]:
        pre = name + "."
        return {k[len(pre):]: v for k, v in self.values.items() if k.startswith(pre)}


def profile_dirs(extra: list[Path] | None = None) -> list[Path]:
    return list(extra or []) + [data_dir("checks") / "profiles"]


def available_profiles(extra: list[Path] | None = None) -> list[str]:
    names: set[str] = set()
    for d in profile_dirs(extra):
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.toml"))
    return sorted(names)


def profile_name_problem(name: str) -> str | None:
    """Why `name` cannot name a profile, or None."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return (f"'{str(name)[:80]}' is not a profile name (letters, digits, '.', '_', '-'; "
                f"a name, never a path)")
    return None


def _find(name: str, extra: list[Path] | None) -> Path:
    why = profile_name_problem(name)
    if why:
        raise ConfigError(why)
    for d in profile_dirs(extra):
        p = d / f"{name}.toml"
        if p.is_file():
            return p
    raise ConfigError(f"unknown profile '{name}' (available: {', '.join(available_profiles(extra))})")


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None


def _type_ok(value: Any, want: type) -> bool:
    if want is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, want)


def _flatten(path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section, body in doc.items():
        if section in _TOP_KEYS:
            continue
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: unknown top-level key '{section}' (sections are check families such as [gpu])")
        for key, value in body.items():
            full = f"{section}.{key}"
            want = PROFILE_KEYS.get(full)
            if want is None:
                known = sorted(k.split(".", 1)[1] for k in PROFILE_KEYS if k.startswith(section + "."))
                hint = f" (known in [{section}]: {', '.join(known)})" if known else f" (no check reads a [{section}] section)"
                raise ConfigError(f"{path}: unknown key '{full}'{hint}")
            if not _type_ok(value, want):
                raise ConfigError(f"{path}: key '{full}' must be {want.__name__}, got {value!r}")
            out[full] = value
    return out


def load_profile(name: str, extra_dirs: list[Path] | None = None) -> Profile:
    from clusterkit.plugins import load_all

    load_all()  # the declared keys come from the check modules
    chain: list[str] = []
    layers: list[tuple[Path, dict[str, Any]]] = []
    current: str | None = name
    while current:
        if current in chain:
            raise ConfigError(f"profile '{name}': inherits loop {' -> '.join(chain + [current])}")
        path = _find(current, extra_dirs)
        doc = _read(path)
        layers.append((path, doc))
        chain.append(current)
        parent = doc.get("inherits")
        if parent is not None and not isinstance(parent, str):
            raise ConfigError(f"{path}: 'inherits' must be a profile name")
        current = parent
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for (path, doc), layer in zip(reversed(layers), reversed(chain)):  # ancestors first, the profile last
        own = _flatten(path, doc)
        values.update(own)
        origin.update(dict.fromkeys(own, layer))
    top = layers[0][1]
    match = top.get("match_names", [])
    return Profile(name, values, chain, str(top.get("description", "")), [str(m) for m in match], origin)


def profile_for_gpu_name(gpu_name: str, extra_dirs: list[Path] | None = None) -> Profile | None:
    """The profile whose `match_names` names this GPU product (e.g. 'NVIDIA A100-SXM4-80GB')."""
    g = gpu_name.lower()
    best: tuple[int, str] | None = None
    for n in available_profiles(extra_dirs):
        doc = _read(_find(n, extra_dirs))
        for m in doc.get("match_names", []):
            if str(m).lower() in g and (best is None or len(m) > best[0]):
                best = (len(m), n)
    return load_profile(best[1], extra_dirs) if best else None
