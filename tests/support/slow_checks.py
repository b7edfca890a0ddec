"""Checks that never end on one node, for the time-budget tests (module-level, so the
analysis worker processes import them by name)."""

from __future__ import annotations

import re

from clusterkit.results import CheckResult

SLOW_HOST = "slow-07"


def hangs_in_a_regex(ctx) -> CheckResult:
    """A backtracking regex, as a parser had before issue 18: exponential, so endless here."""
    if ctx.host == SLOW_HOST:
        re.match(r"(a+)+$", "a" * 64 + "!")
    return CheckResult("test.regex", "pass", "fine")


def swallows_exceptions(ctx) -> CheckResult:
    """A loop whose `except Exception` would swallow a budget that raised an Exception."""
    while ctx.host == SLOW_HOST:
        try:
            sum(range(10_000))
        except Exception:  # noqa: BLE001 - the point of the test
            pass
    return CheckResult("test.loop", "pass", "fine")
