"""collect against real sshd nodes: outcomes, bundle contents, phases, concurrency, deadline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.checks.registry import CHECKS, check
from clusterkit.evidence.bundle import Bundle
from clusterkit.fleet.collect import FleetOptions, collect_bundles, collect_planned
from clusterkit.inventory import HostSpec, load_inventory
from clusterkit.evidence.kinds import Kind
from clusterkit.probes.registry import PHASE_AFTER, PHASE_INFO, PHASE_LOAD, PROBES, Command, probe
from clusterkit.results import CheckResult
from clusterkit.suites import Suite

pytestmark = pytest.mark.integration


def _spec(name: str, node, **kw) -> HostSpec:
    return HostSpec(name=name, address=node.address, port=kw.pop("port", node.port), user=node.user,
                    private_key_file=str(node.key), **kw)


def _meta(bundle_dir: Path) -> dict:
    return json.loads((bundle_dir / "bundle.json").read_text())


def _options(known_hosts: Path, **kw) -> FleetOptions:
    return FleetOptions(known_hosts=known_hosts, connect_timeout_s=5, **kw)


def test_each_host_ends_with_its_own_outcome(sshd_cluster, tmp_path):
    n1, n2, n3 = sshd_cluster.nodes
    kh = sshd_cluster.write_known_hosts(tmp_path / "known_hosts", [n1, n2], wrong_key_for=[n2.name])
    hosts = [_spec("good", n1), _spec("changed", n2), _spec("unknown", n3),
             _spec("down", n1, port=sshd_cluster.closed_port()), _spec("hangs", n1)]
    plans = {h.name: [Command("host/uname.txt", ["uname", "-s"], timeout_s=10)] for h in hosts}
    plans["hangs"] = [Command("host/hang.txt", ["sleep", "60"], timeout_s=1),
                      Command("host/uname.txt", ["uname", "-s"], timeout_s=10)]
    dirs = collect_planned(hosts, plans, tmp_path / "run", _options(kh))
    assert [d.name for d in dirs] == [h.name for h in hosts]
    meta = {d.name: _meta(d) for d in dirs}
    outcome = {h: m["outcome"] for h, m in meta.items()}
    assert outcome == {"good": "ok", "changed": "error", "unknown": "error", "down": "unreachable",
                       "hangs": "timeout"}
    assert "host key changed" in meta["changed"]["message"]
    assert "--accept-new-host-keys" in meta["unknown"]["message"]
    assert "connection refused" in meta["down"]["message"]
    assert "sleep 60" in meta["hangs"]["message"] and "killed" in meta["hangs"]["message"]
    # the hung command cost its own timeout only; the host's next command still ran
    hang, uname = meta["hangs"]["commands"]
    assert hang["status"] == "timeout" and hang["exit_code"] is None and hang["duration_s"] < 3
    assert uname["status"] == "ok" and (dirs[4] / "host/uname.txt").read_text() == "Linux\n"
    assert (dirs[0] / "host/uname.txt").read_text() == "Linux\n"
    for h in ("changed", "unknown", "down"):
        assert meta[h]["commands"] == [] and not (tmp_path / "run" / h / "host").exists()
    # analysis sees the same outcomes
    run = analyze_bundles([Bundle.open(d) for d in dirs], Suite("none", []))
    assert {n.host: n.outcome for n in run.nodes} == outcome


def test_bundle_records_commands_exit_codes_durations_and_clock(sshd_cluster, tmp_path):
    n1 = sshd_cluster.nodes[0]
    marker = tmp_path / "pwned"
    odd = ["a b", "it's", f"$(touch {marker})", "`id`", "x;y"]
    files_script = (b"import json\nprint(json.dumps({'gpu/a.txt': 'A\\n', 'gpu/sub/b.txt': 'B\\n'}))\n")
    plans = {"n": [
        Command("host/args.txt", ["printf", "%s|", *odd], timeout_s=10),
        Command("host/fails.txt", ["sh", "-c", "echo partial; echo bad >&2; exit 2"], timeout_s=10),
        Command("gpu/nvidia-smi.txt", ["clusterkit-no-such-tool", "-q"], timeout_s=10, root=True),
        Command("gpu/files.json", ["python3", "-"], stdin=files_script, output="files-json", timeout_s=20),
        Command("host/empty.txt", ["true"], timeout_s=10),
        Command("host/required.txt", ["clusterkit-required-tool"], timeout_s=10, optional=False),
    ]}
    host = _spec("n", n1, gpu_model=None, rack="r7")
    d = collect_planned([host], plans, tmp_path / "run", _options(sshd_cluster.known_hosts))[0]
    meta = _meta(d)
    assert meta["outcome"] == "ok" and meta["host"] == "n" and meta["declared"]["rack"] == "r7"
    assert meta["tool_versions"]["sshd"].startswith("SSH-2.0-OpenSSH")
    cmds = {c["path"]: c for c in meta["commands"]}
    assert list(cmds) == [c.path for c in plans["n"]]
    # raw stdout as printed, every argument verbatim, nothing run by the remote shell
    assert (d / "host/args.txt").read_text() == "".join(a + "|" for a in odd)
    assert not marker.exists()
    assert cmds["host/args.txt"]["command"].endswith("printf '%s|' 'a b' 'it'\"'\"'s' '$(touch " + str(marker)
                                                     + ")' '`id`' 'x;y'")
    assert (d / "host/fails.txt").read_text() == "partial\n"
    assert cmds["host/fails.txt"]["exit_code"] == 2 and cmds["host/fails.txt"]["stderr"] == "bad\n"
    missing = cmds["gpu/nvidia-smi.txt"]
    assert missing["exit_code"] == 127 and missing["not_installed"] is True and missing["status"] == "ok"
    assert not (d / "gpu/nvidia-smi.txt").exists()
    assert (d / "gpu/a.txt").read_text() == "A\n" and (d / "gpu/sub/b.txt").read_text() == "B\n"
    assert cmds["gpu/files.json"]["files"] == ["gpu/a.txt", "gpu/sub/b.txt"]
    assert not (d / "gpu/files.json").exists()
    assert (d / "host/empty.txt").read_text() == ""           # exit 0 with no output is still evidence
    required = cmds["host/required.txt"]
    assert required["status"] == "error" and "not installed" in required["message"]
    for c in meta["commands"]:
        assert c["duration_s"] > 0 and c["local_start_epoch"] < c["local_end_epoch"]
        assert c["local_end_epoch"] - c["local_start_epoch"] == pytest.approx(c["duration_s"], abs=0.05)
    starts = [c["local_start_epoch"] for c in meta["commands"]]
    assert starts == sorted(starts), "a host's commands run in order"


def test_files_json_that_is_not_json_is_kept_and_flagged(sshd_cluster, tmp_path):
    plans = {"n": [Command("gpu/probe.json", ["echo", "Traceback: boom"], output="files-json", timeout_s=10),
                   Command("gpu/escape.json", ["echo", '{"../../evil.txt": "x"}'], output="files-json",
                           timeout_s=10)]}
    d = collect_planned([_spec("n", sshd_cluster.nodes[0])], plans, tmp_path / "run",
                        _options(sshd_cluster.known_hosts))[0]
    cmds = {c["path"]: c for c in _meta(d)["commands"]}
    assert (d / "gpu/probe.json").read_text() == "Traceback: boom\n"
    assert cmds["gpu/probe.json"]["status"] == "error" and "JSON" in cmds["gpu/probe.json"]["message"]
    assert cmds["gpu/escape.json"]["status"] == "error" and "escapes" in cmds["gpu/escape.json"]["message"]
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "run" / "evil.txt").exists()


def test_phases_finish_on_every_host_before_the_next_starts_on_one_connection(sshd_cluster, tmp_path):
    n1, n2, _ = sshd_cluster.nodes
    conn = ["sh", "-c", 'echo "$SSH_CONNECTION"']
    plans = {
        "slow": [Command("a/before.txt", conn, phase=PHASE_INFO, timeout_s=10),
                 Command("a/load.txt", ["sleep", "0.6"], phase=PHASE_LOAD, timeout_s=10),
                 Command("a/after.txt", conn, phase=PHASE_AFTER, timeout_s=10)],
        "fast": [Command("b/after.txt", conn, phase=PHASE_AFTER, timeout_s=10),
                 Command("b/info.txt", conn, phase=PHASE_INFO, timeout_s=10)],
    }
    dirs = collect_planned([_spec("slow", n1), _spec("fast", n2)], plans, tmp_path / "run",
                           _options(sshd_cluster.known_hosts))
    slow, fast = ({c["path"]: c for c in _meta(d)["commands"]} for d in dirs)
    assert fast["b/after.txt"]["local_start_epoch"] >= slow["a/load.txt"]["local_end_epoch"]
    assert list(fast) == ["b/info.txt", "b/after.txt"]
    # one SSH connection per host for all its phases: the same client port every time
    assert (dirs[0] / "a/before.txt").read_text() == (dirs[0] / "a/after.txt").read_text()
    assert (dirs[1] / "b/info.txt").read_text() == (dirs[1] / "b/after.txt").read_text()


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    cur = best = 0
    for _, step in events:
        cur += step
        best = max(best, cur)
    return best


def test_concurrency_bound_is_honoured(sshd_cluster, tmp_path):
    names = [f"h{i}" for i in range(6)]
    hosts = [_spec(n, sshd_cluster.nodes[i % 3]) for i, n in enumerate(names)]
    plans = {n: [Command("host/sleep.txt", ["sleep", "0.4"], timeout_s=10)] for n in names}
    dirs = collect_planned(hosts, plans, tmp_path / "run", _options(sshd_cluster.known_hosts, concurrency=2))
    spans = [(c["local_start_epoch"], c["local_end_epoch"]) for d in dirs for c in _meta(d)["commands"]]
    assert len(spans) == 6
    assert _max_overlap(spans) == 2


def test_global_deadline_ends_the_run_with_timeouts(sshd_cluster, tmp_path):
    names = ["first", "second", "third"]
    hosts = [_spec(n, sshd_cluster.nodes[0]) for n in names]
    plans = {n: [Command("host/sleep.txt", ["sleep", "30"], timeout_s=60),
                 Command("host/uname.txt", ["uname"], timeout_s=60, phase=PHASE_AFTER)] for n in names}
    dirs = collect_planned(hosts, plans, tmp_path / "run",
                           _options(sshd_cluster.known_hosts, concurrency=1, deadline_s=1.5))
    metas = [_meta(d) for d in dirs]
    assert [m["outcome"] for m in metas] == ["timeout"] * 3
    assert "deadline" in metas[0]["message"] and "during" in metas[0]["message"]
    assert metas[0]["commands"][0]["status"] == "timeout"
    assert metas[0]["commands"][0]["duration_s"] < 3
    for m in metas[1:]:
        assert "deadline" in m["message"] and m["commands"] == []


def test_a_late_host_is_waited_for_until_its_command_in_flight_ends_then_left_out(sshd_cluster, tmp_path,
                                                                                   monkeypatch):
    import clusterkit.fleet.collect as collect

    monkeypatch.setattr(collect, "SYNC_SLACK_S", 0.5)
    n1, n2, n3 = sshd_cluster.nodes
    load = Command("a/load.txt", ["true"], phase=PHASE_LOAD, timeout_s=10)
    plans = {
        # busy: healthy, several short commands that together outlast one command's limit: never left out
        "busy": [Command(f"a/step{i}.txt", ["sleep", "0.6"], timeout_s=1) for i in range(5)] + [load],
        # late: a hung command, then one more slow one: still busy when the others have waited for the hang
        "late": [Command("a/hang.txt", ["sleep", "30"], timeout_s=5), Command("a/slow.txt", ["sleep", "2"],
                                                                             timeout_s=10), load],
        # after: nothing before the window, so nothing to wait at in the first round
        "after": [Command("a/after.txt", ["true"], phase=PHASE_AFTER, timeout_s=10)],
    }
    dirs = collect_planned([_spec("busy", n1), _spec("late", n2), _spec("after", n3)], plans, tmp_path / "run",
                           FleetOptions(known_hosts=sshd_cluster.known_hosts, connect_timeout_s=2))
    busy, late, after = (_meta(d) for d in dirs)
    cmds = {name: {c["path"]: c for c in m["commands"]} for name, m in (("busy", busy), ("late", late))}
    assert "missed_sync" not in busy and "missed_sync" not in after
    assert late["missed_sync"] and "left out of the start of the load window" in late["missed_sync"][0]
    assert "a/slow.txt" in late["missed_sync"][0]
    hang_end = cmds["late"]["a/hang.txt"]["local_end_epoch"]
    # the window opened once the hung command was killed (plus the slack), without waiting for a/slow.txt
    assert hang_end <= cmds["busy"]["a/load.txt"]["local_start_epoch"] < cmds["late"]["a/slow.txt"]["local_end_epoch"]
    assert cmds["late"]["a/load.txt"]["status"] == "ok"             # it went on alone: nothing lost
    assert [m["outcome"] for m in (busy, late, after)] == ["ok", "timeout", "ok"]


def test_progress_reports_each_step(sshd_cluster, tmp_path):
    seen: list[tuple[str, str, str]] = []
    plans = {"n": [Command("host/uname.txt", ["uname"], timeout_s=10)]}

    def progress(host: str, step: str, state: str) -> None:
        seen.append((host, step, state))
        raise RuntimeError("a broken progress display must not stop collection")

    d = collect_planned([_spec("n", sshd_cluster.nodes[0])], plans, tmp_path / "run",
                        _options(sshd_cluster.known_hosts), progress=progress)[0]
    assert _meta(d)["outcome"] == "ok"
    assert seen == [("", "phase", "collecting"), ("n", "connect", "start"), ("n", "connect", "ok"),
                    ("n", "host/uname.txt", "start"), ("n", "host/uname.txt", "ok"), ("n", "done", "ok")]


@pytest.fixture
def fleettest_probe():
    """A probe and a check registered for one test only."""

    kernel_kind = Kind("fleettest-kernel", "fleettest/kernel.txt")   # not declared: never sniffed

    @probe("fleettest.kernel", kinds=(kernel_kind,))
    def plan(env):
        return [Command(kernel_kind.path, ["uname", env.params.get("flag", "-s")], timeout_s=10)]

    @check("fleettest.kernel", needs=(kernel_kind,))
    def kernel(ctx):
        """The kernel is Linux."""
        text = ctx.text("fleettest/kernel.txt").strip()
        return CheckResult.from_findings("fleettest.kernel", [], f"kernel {text}")

    yield
    PROBES.pop("fleettest.kernel")
    CHECKS.pop("fleettest.kernel")


def test_collect_bundles_runs_the_probes_the_suite_needs(sshd_cluster, fleettest_probe, tmp_path):
    inv = sshd_cluster.write_inventory(tmp_path / "hosts.ini", sshd_cluster.nodes[:2])
    hosts = load_inventory(inv)[0].hosts
    suite = Suite("t", ["fleettest.kernel"], params={"fleettest.kernel": {"flag": "-o"}})
    dirs = collect_bundles(hosts, suite, ProfileResolver(), tmp_path / "run", _options(sshd_cluster.known_hosts))
    assert [d.name for d in dirs] == ["node01", "node02"]
    for d in dirs:
        assert (d / "fleettest/kernel.txt").read_text() == "GNU/Linux\n"     # the suite's param reached the probe
        assert [c["path"] for c in _meta(d)["commands"]] == ["fleettest/kernel.txt"]
    run = analyze_bundles([Bundle.open(d) for d in dirs], suite)
    assert [(n.outcome, [c.status for c in n.checks]) for n in run.nodes] == [("ok", ["pass"])] * 2


def test_accept_new_records_keys_once_for_the_whole_fleet(sshd_cluster, tmp_path):
    kh = tmp_path / "known_hosts"
    hosts = [_spec(f"h{i}", n) for i, n in enumerate(sshd_cluster.nodes)]
    hosts.append(_spec("alias", sshd_cluster.nodes[0]))      # same server twice: one line
    plans = {h.name: [Command("host/uname.txt", ["uname"], timeout_s=10)] for h in hosts}
    dirs = collect_planned(hosts, plans, tmp_path / "run",
                           FleetOptions(known_hosts=kh, accept_new_host_keys=True, connect_timeout_s=5))
    assert {_meta(d)["outcome"] for d in dirs} == {"ok"}
    lines = sorted(kh.read_text().splitlines())
    assert lines == sorted(f"{n.known_hosts_name} {n.host_key_pub}" for n in sshd_cluster.nodes)
    again = collect_planned(hosts, plans, tmp_path / "run2", _options(kh))
    assert {_meta(d)["outcome"] for d in again} == {"ok"}


def test_large_runs_reconnect_per_phase_and_commands_get_the_c_locale(sshd_cluster, tmp_path, monkeypatch):
    import clusterkit.fleet.collect as collect

    monkeypatch.setattr(collect, "KEEP_OPEN_MAX_HOSTS", 1)    # 2 hosts: "too many" to keep open
    conn = ["sh", "-c", 'echo "$SSH_CONNECTION"']
    plans = {n: [Command("a/before.txt", conn, timeout_s=10),
                 Command("a/locale.txt", ["printenv", "LC_ALL"], timeout_s=10),
                 Command("a/load.txt", ["true"], phase=PHASE_LOAD, timeout_s=10),   # sync points around it
                 Command("a/after.txt", conn, phase=PHASE_AFTER, timeout_s=10)] for n in ("x", "y")}
    dirs = collect_planned([_spec("x", sshd_cluster.nodes[0]), _spec("y", sshd_cluster.nodes[1])], plans,
                           tmp_path / "run", _options(sshd_cluster.known_hosts))
    for d in dirs:
        assert _meta(d)["outcome"] == "ok"
        assert (d / "a/before.txt").read_text() != (d / "a/after.txt").read_text()   # a new connection
        assert (d / "a/locale.txt").read_text() == "C\n"


def test_ctrl_c_ends_a_hung_collection_promptly_and_keeps_the_evidence(sshd_cluster, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    n = sshd_cluster.nodes[0]
    # The library's own reaction to KeyboardInterrupt, whatever SIGINT disposition the test
    # process inherited (a background job of a non-interactive shell starts with it ignored).
    script = f"""
import signal
signal.signal(signal.SIGINT, signal.default_int_handler)
from pathlib import Path
from clusterkit.fleet.collect import FleetOptions, collect_planned
from clusterkit.inventory import HostSpec
from clusterkit.probes.registry import Command
h = HostSpec(name="n", address="127.0.0.1", port={n.port}, user={n.user!r}, private_key_file={str(n.key)!r})
plans = {{"n": [Command("host/uname.txt", ["uname"], timeout_s=10), Command("host/hang.txt", ["sleep", "60"], timeout_s=60),
               Command("host/later.txt", ["uname"], timeout_s=10)]}}
def progress(host, step, state):
    if step == "host/hang.txt" and state == "start":
        print("hanging", flush=True)
collect_planned([h], plans, Path({str(tmp_path / 'run')!r}), FleetOptions(known_hosts=Path({str(sshd_cluster.known_hosts)!r})),
                progress)
"""
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "hanging\n"
    time.sleep(0.3)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    p.wait(timeout=20)
    assert time.monotonic() - t0 < 5, "Ctrl-C must not wait for the hung command"
    assert "KeyboardInterrupt" in p.stderr.read()
    meta = _meta(tmp_path / "run" / "n")
    assert meta["outcome"] == "interrupted" and "interrupted" in meta["message"]
    assert "host/hang.txt" in meta["message"] and "host/later.txt" in meta["message"]   # what was cut short
    uname, hang, later = meta["commands"]
    assert uname["status"] == "ok" and (tmp_path / "run" / "n" / "host" / "uname.txt").read_text() == "Linux\n"
    assert hang["status"] == "not_run" and "cut short after" in hang["message"]
    assert later["status"] == "not_run" and later["message"].startswith("not run: collection interrupted")


def test_a_host_with_nothing_to_run_is_still_checked_for_reachability(sshd_cluster, tmp_path):
    hosts = [_spec("busy", sshd_cluster.nodes[0]), _spec("idle", sshd_cluster.nodes[1]),
             _spec("idle-down", sshd_cluster.nodes[1], port=sshd_cluster.closed_port())]
    plans = {"busy": [Command("host/uname.txt", ["uname"], timeout_s=10)]}
    dirs = collect_planned(hosts, plans, tmp_path / "run", _options(sshd_cluster.known_hosts))
    assert [_meta(d)["outcome"] for d in dirs] == ["ok", "ok", "unreachable"]
    assert _meta(dirs[1])["tool_versions"]["sshd"].startswith("SSH-2.0-")     # it did connect
