"""Fleet-wide figures computed in O(n log n) or once per run give what the plain definitions give."""

from __future__ import annotations

import statistics

from hypothesis import given, settings
from hypothesis import strategies as st

from clusterkit.checks.host import _reference_offset
from clusterkit.parsers.nccl_tests import Device, NcclRun


def _reference_by_definition(offsets: list[float], window_s: float) -> float:
    """Median of the largest group of nodes within the window of one node (the first such group, taking
    nodes in order of their offset's size): the quadratic definition."""
    best: list[float] = []
    for o in sorted(offsets, key=abs):
        group = [x for x in offsets if abs(x - o) <= window_s]
        if len(group) > len(best):
            best = group
    return statistics.median(best)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(-5, 5, allow_nan=False), st.sampled_from([0.0, 0.05, -0.05, 0.1, 1e-9])),
                min_size=1, max_size=60),
       st.sampled_from([0.05, 0.1, 0.5, 1e-9]))
def test_clock_reference_is_the_defined_one(offsets, window):
    assert _reference_offset(offsets, window) == _reference_by_definition(offsets, window)


def test_run_hosts_in_order_of_appearance_follow_new_devices():
    run = NcclRun()
    run.devices += [Device(0, "b", 0, "0000:18:00", "H100"), Device(1, "a", 0, "0000:18:00", "H100"),
                    Device(2, "b", 1, "0000:2a:00", "H100")]
    assert run.hosts == ["b", "a"]
    run.devices.append(Device(3, "c", 0, "0000:18:00", "H100"))
    assert run.hosts == ["b", "a", "c"] and run.nodes == 3
