"""The one registration point for checks.

A check module decorates its functions with `@check(...)`; `clusterkit.plugins`
imports every module of the package, so adding a check is adding a function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Sequence

from clusterkit.evidence.kinds import Kind

Scope = Literal["node", "cluster"]


@dataclass(frozen=True)
class CheckSpec:
    id: str
    func: Callable
    scope: Scope
    needs: tuple[str, ...]            # bundle paths (globs) the check reads
    params: dict[str, type]           # profile keys it reads, "family.key_unit" -> type
    description: str
    needs_any: bool = False           # True: one of `needs` is enough
    after_others: bool = False        # node check called as func(ctx, results of the node's other checks)

    @property
    def family(self) -> str:
        return self.id.split(".", 1)[0]


CHECKS: dict[str, CheckSpec] = {}
# Profile keys declared by checks (and by probes' parameters) with their types.
PROFILE_KEYS: dict[str, type] = {}


def declare_profile_keys(keys: dict[str, type]) -> None:
    for k, t in keys.items():
        if "." not in k:
            raise ValueError(f"profile key {k!r} must be 'section.name_unit'")
        PROFILE_KEYS[k] = t


def _summary(doc: str | None) -> str:
    """A check's description: the first paragraph of its docstring, on one line."""
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def check(
    check_id: str,
    *,
    needs: Sequence[Kind | str] = (),
    params: dict[str, type] | None = None,
    scope: Scope = "node",
    needs_any: bool = False,
    after_others: bool = False,
) -> Callable[[Callable], Callable]:
    """Register a check.

    Node scope: `func(ctx: NodeContext) -> CheckResult`.
    Cluster scope: `func(ctx: ClusterContext) -> list[CheckResult]`; a result
    whose `host` is set is attached to that node.
    If a file in `needs` (evidence kinds, or bundle path globs) is missing from a
    node's bundle, the check is skipped with the reason, without calling it.
    """

    def deco(func: Callable) -> Callable:
        if check_id in CHECKS and CHECKS[check_id].func is not func:
            raise ValueError(f"check {check_id} registered twice")
        declare_profile_keys(params or {})
        CHECKS[check_id] = CheckSpec(
            check_id, func, scope, tuple(k.glob if isinstance(k, Kind) else k for k in needs), dict(params or {}),
            _summary(func.__doc__),
            needs_any, after_others,
        )
        return func

    return deco
