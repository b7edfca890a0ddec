"""The burn-in loop over history: per-cycle storage, resume, trends, drain decisions."""

from __future__ import annotations

import datetime as dt

import pytest

import clusterkit.checks.burnin  # noqa: F401
from clusterkit.burnin import Burnin, BurninOptions, failing_codes, mark_dead_runs_interrupted, resumable
from clusterkit.history import History
from clusterkit.profiles import Profile
from clusterkit.slurm import NodeState
from tests.burnin_helpers import FLAP, ROW_REMAP, node, run

PROFILE = Profile("t", {
    "burnin.trend_window_days": 7.0, "burnin.trend_min_samples": 4, "burnin.trend_fleet_margin_percent": 3.0,
    "burnin.trend_min_fleet_nodes": 3, "burnin.trend_higher_is_better_max_drop_percent": {"busbw_large_gbps": 5.0},
})


def cycles(plan: dict[int, dict]):
    """cycle -> {host: kwargs for node()}; records which cycles were run."""
    seen: list[int] = []

    def fn(c: int, on_node=None):
        seen.append(c)
        return run([node(h, **kw) for h, kw in plan[c].items()])

    fn.seen = seen
    return fn


def test_cycles_are_stored_with_worst_status_per_node(tmp_path):
    fn = cycles({0: {"a": {}, "b": {}}, 1: {"a": {}, "b": {"fail": [ROW_REMAP]}}, 2: {"a": {}, "b": {}}})
    with History(tmp_path / "h.db") as h:
        b = Burnin.start(h, BurninOptions(simulate=True, cycles=3), fn)
        s = b.run()
        assert fn.seen == [0, 1, 2] and s.cycles_done == 3
        assert s.node_status == {"a": "pass", "b": "fail"} and s.status == "fail"
        per_cycle = h.conn.execute("SELECT cycle, count(*) FROM check_results WHERE run_id=? GROUP BY cycle",
                                   (s.run_id,)).fetchall()
        assert [tuple(r) for r in per_cycle] == [(0, 9), (1, 9), (2, 9)]  # 2 nodes x 4 + 1 cluster check
        row = h.run(s.run_id)
        assert row["kind"] == "burnin" and row["finished_at"] and row["status"] == "fail"


def test_resume_continues_after_the_last_stored_cycle(tmp_path):
    plan = {c: {"a": {}, "b": {}} for c in range(4)}
    fn = cycles(plan)

    def dies_in_cycle_2(c, on_node):
        if c == 2:
            raise KeyboardInterrupt  # the process is gone: nothing after cycle 1 is stored
        return fn(c)

    with History(tmp_path / "h.db") as h:
        opts = BurninOptions(simulate=True, cycles=4, pid=2 ** 22 + 12345)  # a pid that isn't running
        b = Burnin.start(h, opts, dies_in_cycle_2)
        with pytest.raises(KeyboardInterrupt):
            b.run()
        assert h.run(b.run_id)["finished_at"] is None
        mark_dead_runs_interrupted(h)
        assert h.run(b.run_id)["status"] == "interrupted"
        rid, ropts = resumable(h)
        assert rid == b.run_id and ropts.cycles == 4 and ropts.simulate
        s = Burnin(h, rid, ropts, fn).run()
        assert fn.seen == [0, 1, 2, 3] and s.cycles_done == 4 and s.status == "pass"
        assert h.conn.execute("SELECT count(DISTINCT cycle) FROM check_results WHERE run_id=?", (rid,)).fetchone()[0] == 4
        assert resumable(h) is None


def test_checks_stored_before_the_progress_write_are_not_measured_twice(tmp_path):
    fn = cycles({c: {"a": {}} for c in range(3)})
    with History(tmp_path / "h.db") as h:
        b = Burnin.start(h, BurninOptions(simulate=True, cycles=3), fn)
        # as if killed between storing cycle 0's checks and saving progress
        for host, c in [("a", x) for x in node("a").checks]:
            h.record_check(b.run_id, host, c, cycle=0)
        b.run()
        assert fn.seen == [1, 2]


def test_duration_bounds_the_cycles(tmp_path):
    t = [0.0]
    fn = cycles({c: {"a": {}} for c in range(100)})

    def slow(c, on_node):
        t[0] += 600.0  # each cycle takes 10 minutes
        return fn(c)

    with History(tmp_path / "h.db") as h:
        s = Burnin.start(h, BurninOptions(simulate=True, duration_s=1800.0), slow, clock=lambda: t[0]).run()
    assert s.cycles_done == 3


def test_trend_results_are_stored_with_the_run_they_evaluate(tmp_path):
    now = dt.datetime.now(dt.timezone.utc)
    with History(tmp_path / "h.db") as h:
        for day in range(7, 0, -1):  # seven earlier nights; gpu03 slides 1.2%/night
            ts = (now - dt.timedelta(days=day)).isoformat(timespec="seconds")
            h.record_run(run([node(f"gpu0{i}", busbw=230.0 * (1 - (0.012 * (7 - day) if i == 3 else 0)))
                              for i in range(1, 6)], started_at=ts, finished_at=ts), kind="burnin")
        fn = cycles({0: {f"gpu0{i}": {"busbw": 230.0 * (0.916 if i == 3 else 1)} for i in range(1, 6)}})
        s = Burnin.start(h, BurninOptions(simulate=True), fn, trend_profile=PROFILE).run()
        rows = h.conn.execute("SELECT c.host, f.code FROM check_results c JOIN findings f ON f.check_result_id=c.id"
                              " WHERE c.run_id=? AND c.check_id='burnin.trend'", (s.run_id,)).fetchall()
        assert [tuple(r) for r in rows] == [("gpu03", "TREND_REGRESSION")]
        assert s.status == "warn"
        n = h.conn.execute("SELECT count(*) FROM check_results WHERE run_id=? AND check_id='burnin.trend'",
                           (s.run_id,)).fetchone()[0]
        assert n == 5


def test_failing_codes_name_the_finding():
    codes, detail = failing_codes(node("a", fail=[ROW_REMAP, FLAP]))
    assert codes == ["GPU_ROW_REMAP_PENDING", "IB_LINK_DOWNED_INCREASED"]
    assert detail.startswith("GPU 3 (0000:1B:00.0")


class FakeSlurm:
    """Records calls; the real scontrol/sinfo are exercised in tests/integration/burnin/test_slurm_drain.py."""

    def __init__(self, states):
        self.states = states
        self.calls: list[tuple] = []

    def nodes(self, *names):
        return {n: st for n, st in self.states.items() if not names or n in names}

    def drain(self, node, reason):
        self.calls.append(("drain", node, reason))
        self.states[node] = NodeState(node, "drained", reason)

    def resume(self, node):
        self.calls.append(("resume", node))
        self.states[node] = NodeState(node, "idle", "")


def test_mass_failure_drains_nothing(tmp_path):
    fn = cycles({0: {h: {"fail": [ROW_REMAP]} for h in "abc"} | {"d": {}}})
    sl = FakeSlurm({h: NodeState(h, "idle", "") for h in "abcd"})
    with History(tmp_path / "h.db") as h:
        Burnin.start(h, BurninOptions(simulate=True, drain=True, max_drain_fraction=0.5), fn, slurm=sl).run()
    assert sl.calls == []


def test_an_interrupted_run_older_than_a_day_is_not_resumed(tmp_path):
    with History(tmp_path / "h.db") as h:
        old = h.start_run("burnin", started_at="2026-01-01T01:00:00+00:00",
                          options=BurninOptions(simulate=True, pid=2 ** 22 + 7).to_json())
        assert resumable(h) is None
        assert h.run(old)["status"] == "interrupted"   # still visible as what it was
        assert resumable(h, max_age_s=10 ** 10)[0] == old


def _crashed(host: str):
    """A node whose only bad results are clusterkit's own trouble, not the hardware's."""
    from clusterkit.results import CheckResult

    n = node(host)
    n.checks.append(CheckResult.error("gpu.ecc", "internal error in check gpu.ecc: KeyError: 'x'",
                                      code="CHECK_CRASHED", component="clusterkit"))
    n.checks.append(CheckResult.error("host.kernel_log", "host/dmesg.txt: a FIFO, not a regular file; refused"))
    n.checks.append(CheckResult.error("host.disk", "took longer than 60 s and was stopped", code="CHECK_TIMEOUT"))
    return n


def test_only_hardware_findings_drain_never_clusterkits_own_errors(tmp_path):
    def fn(c, on_node):
        return run([node("a", fail=[ROW_REMAP]), _crashed("b"), node("c"), node("d")])

    sl = FakeSlurm({h: NodeState(h, "idle", "") for h in "abcd"})
    with History(tmp_path / "h.db") as h:
        s = Burnin.start(h, BurninOptions(simulate=True, drain=True), fn, slurm=sl).run()
        log = [tuple(r) for r in h.conn.execute("SELECT node, action, reason FROM drains")]
    assert [c[:2] for c in sl.calls] == [("drain", "a")]
    assert s.node_status["b"] == "error"          # still reported, just not drained
    assert len(log) == 1 and log[0][:2] == ("a", "drain") and "GPU_ROW_REMAP_PENDING" in log[0][2]
    assert failing_codes(_crashed("b")) == ([], "")


def test_drain_and_resume_use_the_inventorys_slurm_node_name(tmp_path):
    inv = tmp_path / "inv.ini"
    inv.write_text("[gpu]\ngpu-a.example.com slurm_node=a\ngpu-b.example.com slurm_node=b\n")
    plan = {0: {"gpu-a.example.com": {"fail": [ROW_REMAP]}, "gpu-b.example.com": {}}}
    sl = FakeSlurm({h: NodeState(h, "idle", "") for h in "ab"})
    with History(tmp_path / "h.db") as h:
        Burnin.start(h, BurninOptions(inventory=str(inv), drain=True), cycles(plan), slurm=sl).run()
    assert sl.calls[0][:2] == ("drain", "a") and "host gpu-a.example.com" in sl.calls[0][2]
    sl.states["a"] = NodeState("a", "drained", sl.calls[0][2])
    with History(tmp_path / "h.db") as h:
        Burnin.start(h, BurninOptions(inventory=str(inv), drain=True),
                     cycles({0: {"gpu-a.example.com": {}, "gpu-b.example.com": {}}}), slurm=sl).run()
    assert sl.calls[-1] == ("resume", "a")


@pytest.mark.parametrize("fraction", [float("nan"), -0.1, 1.5, float("inf")])
def test_a_stored_drain_guard_that_is_not_a_fraction_drains_nothing(tmp_path, fraction):
    fn = cycles({0: {"a": {"fail": [ROW_REMAP]}, "b": {}, "c": {}}})
    sl = FakeSlurm({h: NodeState(h, "idle", "") for h in "abc"})
    with History(tmp_path / "h.db") as h:
        Burnin.start(h, BurninOptions(simulate=True, drain=True, max_drain_fraction=fraction), fn, slurm=sl).run()
    assert sl.calls == []


@pytest.mark.parametrize("value", ["nan", "-5", "150", "inf"])
def test_max_drain_percent_must_be_a_percentage(tmp_path, value):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "clusterkit", "burnin", "--simulate", "--nodes", "2", "--drain",
                        "--max-drain-percent", value, "--db", str(tmp_path / "h.db")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--max-drain-percent must be a finite number" in r.stderr, r.stderr
    assert not (tmp_path / "h.db").exists()


def test_each_node_is_committed_as_its_checks_finish(tmp_path):
    """A kill mid-cycle keeps the nodes finished so far (one transaction each)."""
    seen_in_db: list[int] = []

    def fn(c, on_node):
        nodes = [node(h) for h in "abc"]
        for n in nodes[:2]:
            on_node(n)
        with History(tmp_path / "h.db", readonly=True) as other:   # what another process sees now
            seen_in_db.append(other.conn.execute("SELECT count(*) FROM check_results").fetchone()[0])
        raise KeyboardInterrupt   # killed before node c finished

    with History(tmp_path / "h.db") as h:
        b = Burnin.start(h, BurninOptions(simulate=True, cycles=1), fn)
        with pytest.raises(KeyboardInterrupt):
            b.run()
        hosts = {r[0] for r in h.conn.execute("SELECT DISTINCT host FROM check_results WHERE cycle=0")}
    assert seen_in_db == [8] and hosts == {"a", "b"}
