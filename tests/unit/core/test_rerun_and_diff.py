"""failed.txt and `--limit @FILE` (rerun what failed), and what changed since each host's previous run
(`verify --compare`, `history diff`)."""

from __future__ import annotations

import json

import pytest

from clusterkit.errors import ConfigError
from clusterkit.fleet.provision import HostSummary, PlaybookRun, ProvisionResult, _dest, _render_diff
from clusterkit.history import History
from clusterkit.history_diff import compare_run, compare_stored
from clusterkit.inventory import load_inventory
from clusterkit.results import CheckResult, Finding, NodeResult, RunResult
from clusterkit.retry import failed_hosts, failed_path, write_failed



@pytest.fixture
def inv(tmp_path):
    p = tmp_path / "hosts.ini"
    p.write_text("[gpu]\n" + "".join(f"gpu0{i} ansible_host=10.0.0.{i}\n" for i in range(1, 6)) +
                 "[cpu]\ncpu01 ansible_host=10.0.1.1\n")
    return load_inventory(p)[0]


def test_limit_at_file_reads_host_names_like_ansible(inv, tmp_path):
    f = tmp_path / "failed.txt"
    f.write_text("gpu04\n\ngpu02\n")
    assert [h.name for h in inv.limit(f"@{f}").hosts] == ["gpu02", "gpu04"]
    assert [h.name for h in inv.limit(f"cpu,@{f}").hosts] == ["gpu02", "gpu04", "cpu01"]
    assert [h.name for h in inv.limit("gpu01:gpu05").hosts] == ["gpu01", "gpu05"]
    with pytest.raises(ConfigError, match="cannot read"):
        inv.limit(f"@{tmp_path / 'nope.txt'}")
    f.write_text("\n")
    with pytest.raises(ConfigError, match="lists no host"):
        inv.limit(f"@{f}")


def _node(host: str, *checks: CheckResult, outcome: str = "ok") -> NodeResult:
    return NodeResult(host, outcome=outcome, checks=list(checks), message=None if outcome == "ok" else "refused")


def _check(cid: str, *findings: Finding) -> CheckResult:
    return CheckResult.from_findings(cid, list(findings), "ok")


def test_failed_txt_lists_failed_unreachable_and_cut_short_hosts_only_when_there_are_some(tmp_path):
    bad = Finding("HOST_DISK_LOW", "fail", "filesystem /", "1% free")
    warn = Finding("HOST_KERNEL_DRIFT", "warn", "kernel", "differs")
    run = RunResult("p", "quick", [_node("a", _check("host.disk")), _node("b", _check("host.disk", bad)),
                                   _node("c", _check("host.kernel", warn)), _node("d", outcome="unreachable"),
                                   _node("e", _check("host.disk"), outcome="timeout")])
    assert failed_hosts(run) == ["b", "d", "e"]
    out = tmp_path / "reports" / "night.json"
    assert failed_path(out) == tmp_path / "reports" / "failed.txt"
    assert failed_path(None, tmp_path / "evidence") == tmp_path / "evidence" / "failed.txt"
    path = write_failed(failed_hosts(run), failed_path(out))
    assert path is not None and path.read_text() == "b\nd\ne\n"
    assert write_failed([], tmp_path / "x" / "failed.txt") is None and not (tmp_path / "x").exists()


def test_provision_reruns_failed_unreachable_gate_failed_and_never_started_hosts():
    ok, failed, dark = HostSummary("n1", ok=3), HostSummary("n2", failed=1), HostSummary("n3", unreachable=1)
    b1 = PlaybookRun(1, ["n1", "n2", "n3"], None, "failed", summaries={"n1": ok, "n2": failed, "n3": dark})
    gate = RunResult("p", "quick", [_node("n4", _check("host.disk")),
                                    _node("n5", _check("host.disk", Finding("HOST_DISK_LOW", "fail", "/", "full")))])
    b2 = PlaybookRun(2, ["n4", "n5"], None, "successful",
                     summaries={"n4": HostSummary("n4", ok=1), "n5": HostSummary("n5", ok=1)}, verify=gate)
    stopped = PlaybookRun(3, ["n6", "n7"], None, "timeout", summaries={})
    res = ProvisionResult(None, False, [b1, b2, stopped], pending=[["n8"], ["n9"]])
    assert res.failed_hosts() == ["n2", "n3", "n5", "n6", "n7", "n8", "n9"]


def test_diff_headers_name_the_destination_not_ansibles_temporary_copy():
    # what ansible-runner reported for a template in check mode (tests/integration/test_provision_ansible.py)
    res = {"changed": True, "invocation": {"module_args": {"dest": "/etc/nccl.conf", "src": "nccl.conf.j2"}},
           "diff": {"before": "a\n", "after": "b\n",
                    "after_header": "/root/.ansible/tmp/ansible-local-1x/tmpq2/nccl.conf.j2"}}
    assert _dest(res) == "/etc/nccl.conf"
    text = _render_diff(res["diff"], _dest(res))
    assert "--- /etc/nccl.conf (before)" in text and "+++ /etc/nccl.conf (after)" in text
    assert "ansible" not in text
    d = {"before": "a\n", "after": "b\n", "before_header": "/etc/x.conf", "after_header": "roles/x/files/x.conf"}
    assert "+++ /etc/x.conf (after)" in _render_diff(d)


def _rate(host_check: str = "fabric.ports", code: str = "FABRIC_PORT_RATE_LOW", observed: float = 200.0) -> CheckResult:
    return _check(host_check, Finding(code, "fail", "mlx5_0 port 1", f"runs at {observed:g} Gb/s", observed=observed,
                                      limit=400, unit="Gb/s"))


def test_changes_since_each_hosts_previous_run(tmp_path):
    ecc = Finding("GPU_ECC_UNCORRECTABLE", "fail", "GPU 3", "2 uncorrectable ECC errors", observed=2)
    drift = Finding("HOST_KERNEL_DRIFT", "warn", "kernel", "differs")
    night1 = RunResult("p", "quick", [
        _node("g1", _rate(code="IB_PORT_RATE_LOW"), _check("gpu.ecc")),   # stored under the earlier name
        _node("g2", _check("gpu.ecc", ecc), _check("host.kernel", drift)),
        _node("g3", _check("gpu.ecc", ecc)),
        _node("g4", _rate())])
    with History(tmp_path / "h.db") as h:
        h.record_run(night1)
        night2 = RunResult("p", "quick", [
            _node("g1", _rate(), _check("gpu.ecc", ecc)),            # rate unchanged (renamed code), ECC new
            _node("g2", _check("gpu.ecc"), CheckResult.skip("host.kernel", "not collected")),   # ECC gone
            _node("g3", outcome="unreachable"),                      # not reached: nothing known, nothing gone
            _node("g4", _rate(observed=100.0)),                      # the same finding, another reading
            _node("g5", _check("gpu.ecc", ecc))])                     # no previous run
        ch = compare_run(h, night2)
        h.record_run(night2)
        stored = compare_stored(h, 2)
    got = {(c.kind, c.host, c.code) for c in ch.changes}
    assert got == {("new", "g1", "GPU_ECC_UNCORRECTABLE"), ("gone", "g2", "GPU_ECC_UNCORRECTABLE"),
                   ("unknown", "g2", "HOST_KERNEL_DRIFT"), ("unknown", "g3", "GPU_ECC_UNCORRECTABLE"),
                   ("changed", "g4", "FABRIC_PORT_RATE_LOW")}
    assert ch.outcome_changes == [("g3", "ok", "unreachable")]
    assert ch.compared == {"g1": 1, "g2": 1, "g3": 1, "g4": 1, "g5": None}
    assert {(c.kind, c.host, c.code) for c in stored.changes} == got and stored.compared == ch.compared
    d = ch.to_dict()
    assert (d["new"], d["gone"], d["changed"], d["not_judged_again"]) == (1, 1, 1, 2)
    assert d["hosts_without_previous_run"] == ["g5"]


def test_history_diff_and_verify_compare_on_the_command_line(ck, tmp_path):
    db = tmp_path / "h.db"
    assert ck("verify", "--simulate", "--nodes", "3", "--seed", "1", "--db", str(db), "--format", "json")[0] == 1
    code, out, _ = ck("verify", "--simulate", "--nodes", "3", "--seed", "2", "--compare", str(db),
                      "--db", str(db), "--format", "json")
    changes = json.loads(out)["changes"]
    assert changes["previous_run_of"] == {f"sim-h100-0{i}": 1 for i in (1, 2, 3)}
    assert changes["new"] + changes["gone"] + changes["changed"] > 0      # another seed: other faults
    code, out, _ = ck("history", "diff", "--db", str(db), "--format", "json")
    d = json.loads(out)
    assert code == 0 and d["run"] == 2 and d["new"] == changes["new"] and d["gone"] == changes["gone"]
    code, out, _ = ck("history", "--db", str(db), "diff", "--run", "2")
    assert code == 0 and out.startswith("Run 2 (verify") and "hosts compared" in out
    code, out, _ = ck("verify", "--simulate", "--nodes", "3", "--seed", "2", "--compare", str(db),
                      "--format", "table")
    assert "Since each host's previous stored run:" in out
    code, _, err = ck("history", "diff", "--db", str(db), "--run", "9")
    assert code == 2 and "no run 9" in err


def test_history_shows_a_code_stored_under_its_earlier_name_by_its_current_one(ck, tmp_path):
    db = tmp_path / "h.db"
    with History(db) as h:
        h.record_run(RunResult("p", "quick", [_node("g1", _rate(code="IB_PORT_RATE_LOW"))]))
    code, out, _ = ck("history", "--db", str(db), "--format", "json")
    [problem] = json.loads(out)["problems"]
    assert code == 0 and [f["code"] for f in problem["findings"]] == ["FABRIC_PORT_RATE_LOW"]
    code, _, err = ck("verify", "--simulate", "--compare", str(tmp_path / "none.db"))
    assert code == 2 and "--compare" in err and "no history database" in err
