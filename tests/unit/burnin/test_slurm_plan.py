"""Drain decisions: only our reasons are resumed; others' drains are never touched."""

from __future__ import annotations

import subprocess

import pytest

from clusterkit.errors import ConfigError
from clusterkit.slurm import NodeState, Slurm, SlurmError, drain_reason, parse_sinfo, plan
from clusterkit.timespec import parse_duration, parse_since

SINFO = """node1|idle|none
node2|drained|clusterkit: GPU_ROW_REMAP_PENDING GPU 3 (burn-in run 4)
node3|drained*|disk replacement #42
node4|draining|clusterkit: IB_LINK_DOWNED_INCREASED mlx5_2 port 1
node1|idle|none
garbage line
"""


def test_parse_sinfo_dedupes_partitions_and_strips_flags():
    st = parse_sinfo(SINFO)
    assert set(st) == {"node1", "node2", "node3", "node4"}
    assert st["node1"] == NodeState("node1", "idle", "")
    assert st["node3"].state == "drained" and st["node3"].drained and not st["node3"].ours
    assert st["node4"].drained and st["node4"].ours


def test_plan():
    st = parse_sinfo(SINFO)
    acts = {a.node: (a.action, a.reason) for a in plan(st, {"node1": "clusterkit: X y", "node3": "clusterkit: Z"},
                                                       {"node2", "node4", "node9"})}
    assert acts["node1"] == ("drain", "clusterkit: X y")
    assert acts["node3"][0] == "skip" and "someone else" in acts["node3"][1]
    assert acts["node2"][0] == "resume" and acts["node4"][0] == "resume"
    assert acts["node9"] == ("skip", "not a Slurm node")


def test_plan_keeps_an_identical_drain_and_redrains_with_a_new_reason():
    st = {"n": NodeState("n", "drained", "clusterkit: A")}
    assert plan(st, {"n": "clusterkit: A"}, set())[0].action == "keep"
    assert plan(st, {"n": "clusterkit: B"}, set())[0].action == "drain"
    assert plan({"n": NodeState("n", "idle", "")}, {}, {"n"}) == []  # passing and not drained: nothing to do


def test_drain_reason_puts_codes_first_and_is_bounded():
    r = drain_reason(["A_CODE", "B_CODE", "A_CODE"], "GPU 3:\n  row remap " + "x" * 500)
    assert r.startswith("clusterkit: A_CODE,B_CODE GPU 3: row remap")
    assert len(r) <= 200 and "\n" not in r


def test_scontrol_argv_is_not_a_shell_line_and_errors_are_reported():
    calls = []

    def runner(argv, **kw):
        calls.append((argv, kw))
        if argv[0] == "scontrol" and "nodename=bad" in argv:
            return subprocess.CompletedProcess(argv, 1, "", "Invalid node name specified")
        return subprocess.CompletedProcess(argv, 0, "", "")

    s = Slurm(env={"SLURM_CONF": "/x"}, runner=runner, timeout_s=5)
    s.drain("n1", 'clusterkit: X "quoted"; rm -rf /')
    argv, kw = calls[0]
    assert argv == ["scontrol", "update", "nodename=n1", "state=drain", 'reason=clusterkit: X "quoted"; rm -rf /']
    assert kw["timeout"] == 5 and kw["env"] == {"SLURM_CONF": "/x"}
    with pytest.raises(SlurmError, match="Invalid node name"):
        s.resume("bad")

    def missing(argv, **kw):
        raise FileNotFoundError(argv[0])

    with pytest.raises(ConfigError, match="needs Slurm's sinfo"):
        Slurm(runner=missing).nodes()


@pytest.mark.parametrize("text,secs", [("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("7d", 604800),
                                       ("45", 45), ("1.5h", 5400)])
def test_parse_duration(text, secs):
    assert parse_duration(text) == secs


@pytest.mark.parametrize("bad", ["", "2x", "h", "1h 2q", "-5m"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ConfigError):
        parse_duration(bad)


def test_parse_since():
    import datetime as dt

    now = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
    assert parse_since("1d", now) == "2026-11-22T12:00:00+00:00"
    assert parse_since("2026-11-20", now) == "2026-11-20T00:00:00+00:00"
    with pytest.raises(ConfigError):
        parse_since("last tuesday", now)
