"""Localization against the simulated bandwidth model and hand-made testers."""

from __future__ import annotations

import json
import math
import random

import pytest

from clusterkit.fleet.localize import GroupTest, LocalizeConfig, TestOutcome, localize, sequential
from clusterkit.sim.nccl import BandwidthModel

RAILS = [f"mlx5_{i}" for i in range(8)]


def model(n_nodes_bad: dict[str, float] | None = None, rails_bad: dict[tuple[str, int], float] | None = None,
          seed: int = 0, flaky: float = 0.0) -> BandwidthModel:
    m = BandwidthModel(376.0, 47.0, 8, random.Random(seed), flaky_probability=flaky)
    m.node_factor.update(n_nodes_bad or {})
    m.rail_factor.update(rails_bad or {})
    return m


def cfg(**kw) -> LocalizeConfig:
    return LocalizeConfig(expected_full_gbps=376.0, expected_rail_gbps=47.0, rails=RAILS, **kw)


HOSTS = [f"n{i:03d}" for i in range(64)]


@pytest.mark.parametrize("group", [2, 8, 64])
def test_finds_slow_nodes_and_the_bad_nic_with_no_false_accusation(group):
    m = model({"n005": 0.5, "n040": 0.5}, {("n017", 3): 0.33}, seed=group)
    v = localize(HOSTS, m.tester, cfg(group_nodes=group))
    found = {(c.host, c.part, tuple(c.nics)) for c in v.culprits if c.part == "nic"}
    assert found == {("n017", "nic", ("mlx5_3",))}
    assert {c.host for c in v.culprits if c.part == "node"} == {"n005", "n040"}
    k = 3
    assert len(v.rounds) <= 2 * k * math.log2(len(HOSTS)) + 2
    # every accusation carries the rounds that show it, and those rounds name the host
    for c in v.culprits:
        assert len(c.evidence_rounds) >= 2
        for r in c.evidence_rounds:
            assert any(c.host in t["nodes"] for t in v.rounds[r - 1]["tests"])


def test_rounds_do_not_grow_with_culprits_when_tests_run_in_parallel():
    bad = {h: 0.5 for h in HOSTS[3:60:9]}
    v = localize(HOSTS, model(bad).tester, cfg(group_nodes=2))
    assert {c.host for c in v.culprits} == set(bad)
    assert len(v.rounds) == 4  # screen, isolate, rails, confirm


def test_a_single_noisy_run_never_accuses_a_healthy_node():
    calls = {"n": 0}
    m = model()

    def tester(tests):
        out = m.tester(tests)
        for i, t in enumerate(tests):
            if "n010" in t.nodes and calls["n"] == 0 and t.rail is None:
                out[i] = TestOutcome(out[i].busbw_gbps * 0.5, out[i].duration_s)  # one bad measurement
        calls["n"] += 1
        return out

    v = localize(HOSTS, tester, cfg(group_nodes=2))
    assert v.culprits == [] and v.status == "none_reproduced"


def test_persistent_slowness_visible_only_in_full_tests_needs_three_failures():
    # NVLink-like fault: every full test with n020 is slow, every rail alone is fine.
    def one(t: GroupTest) -> TestOutcome:
        full = t.rail is None
        v = (376.0 if full else 47.0) * (0.6 if full and "n020" in t.nodes else 1.0)
        return TestOutcome(v, 20.0)

    v = localize(HOSTS, sequential(one), cfg(group_nodes=2))
    (c,) = v.culprits
    assert c.host == "n020" and c.part == "node" and "intra-node" in c.reason
    assert [rd["stage"] for rd in v.rounds][-1] == "reconfirm"


def test_healthy_cluster_and_missing_figures():
    v = localize(HOSTS, model(seed=3).tester, cfg(group_nodes=2))
    assert v.status == "none_reproduced" and len(v.rounds) == 1
    # no expected figures: the reference is the median of the screening round
    m = model({"n033": 0.5}, seed=4)
    v = localize(HOSTS, m.tester, LocalizeConfig(rails=RAILS))
    assert [c.host for c in v.culprits] == ["n033"]


def test_no_partner_left_is_inconclusive_not_an_accusation():
    m = model({"a": 0.5, "b": 0.5})
    v = localize(["a", "b"], m.tester, cfg())
    assert v.culprits == [] and v.status == "inconclusive" and set(v.unresolved) == {"a", "b"}


def test_failed_test_without_a_figure_counts_as_low():
    def one(t: GroupTest) -> TestOutcome:
        if "n007" in t.nodes:
            return TestOutcome(None, 5.0, error="mpirun: rank 1 exited with code 1")
        return TestOutcome(376.0 if t.rail is None else 47.0, 20.0)

    v = localize(HOSTS[:16], sequential(one), cfg(group_nodes=4))
    assert [c.host for c in v.culprits] == ["n007"]
    assert any(t.get("error") for rd in v.rounds for t in rd["tests"])
    d = v.to_dict()
    assert d["round_count"] == len(v.rounds) and d["culprits"][0]["host"] == "n007"


def test_raw_outputs_become_files_named_by_the_report():
    def one(t: GroupTest) -> TestOutcome:
        v = (376.0 if t.rail is None else 47.0) * (0.5 if "n003" in t.nodes else 1.0)
        return TestOutcome(v, 20.0, raw=f"output of {'+'.join(t.nodes)} rail {t.rail}")

    v = localize(HOSTS[:8], sequential(one), cfg(), keep_raw=True)
    files = v.evidence_files()
    doc = json.loads(files["nccl/localize.json"])
    paths = [t["raw_path"] for rd in doc["rounds"] for t in rd["tests"]]
    assert len(paths) == v.tests and all(files[p].startswith("output of") for p in paths)
    assert "raw" not in files["nccl/localize.json"].replace("raw_path", "")


def test_two_noisy_runs_on_a_healthy_rail_beside_the_bad_one_do_not_accuse_it():
    seen = {"rail6": 0}

    def one(t: GroupTest) -> TestOutcome:
        if t.rail is None:
            return TestOutcome(120.0 if "n017" in t.nodes else 376.0, 20.0)
        v = 47.0
        if "n017" in t.nodes and t.rail == 3:
            v = 15.0
        if "n017" in t.nodes and t.rail == 6 and seen["rail6"] < 2:  # low twice, then fine
            seen["rail6"] += 1
            v = 28.0
        return TestOutcome(v, 12.0)

    v = localize(HOSTS[:24], sequential(one), cfg(group_nodes=2))
    (c,) = v.culprits
    assert c.host == "n017" and c.part == "nic" and c.nics == ["mlx5_3"]
    assert v.rounds[-1]["stage"] == "reconfirm"
