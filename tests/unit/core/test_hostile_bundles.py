"""Bundles that colleagues and vendors send may be hostile: links out of the bundle, FIFOs,
huge or misshapen bundle.json, profile names that are paths. Each gives that node an error
that says why; nothing outside the bundle is read, nothing blocks, the run goes on."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterkit.errors import ConfigError
from clusterkit.evidence.bundle import META, Bundle, BundleWriter
from clusterkit.pipeline import analyze_paths
from clusterkit.profiles import load_profile

SECRET = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUtc2VjcmV0LW1hdGVyaWFs\n"
DMESG = "[    5.000000] mce: [Hardware Error]: Machine check events logged\n"


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clusterkit", *args], capture_output=True, text=True,
                          timeout=timeout)


def _node(run_dir: Path, host: str, files: dict[str, str] | None = None) -> Path:
    w = BundleWriter(run_dir / host, host)
    for path, text in (files or {"host/dmesg.txt": DMESG,
                                 "host/uname.txt": f"Linux {host} 6.1.0 #1 SMP x86_64 GNU/Linux\n"}).items():
        w.write(path, text)
    w.finish()
    return run_dir / host


def _analyze_json(*paths: Path) -> dict:
    r = _cli("analyze", *map(str, paths), "--format", "json", "--suite", "quick")
    assert r.returncode in (0, 1), r.stderr
    assert "internal error" not in r.stderr
    return json.loads(r.stdout)


def _check(report: dict, host: str, check_id: str) -> dict:
    node = next(n for n in report["nodes"] if n["host"] == host)
    return next(c for c in node["checks"] if c["id"] == check_id)


def test_a_link_out_of_the_bundle_is_refused_and_its_target_never_quoted(tmp_path):
    secret = tmp_path / "outside" / "id_ed25519"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    b = _node(tmp_path / "run", "n1")
    (b / "host/dmesg.txt").unlink()
    (b / "host/dmesg.txt").symlink_to(secret)
    (b / "gpu").symlink_to(secret.parent, target_is_directory=True)   # a linked directory is not entered
    report = _analyze_json(b)
    text = json.dumps(report)
    assert "BEGIN OPENSSH" not in text and "b3BlbnNzaC1" not in text
    klog = _check(report, "n1", "host.kernel_log")
    assert klog["status"] == "error" and "symbolic link" in klog["summary"], klog


def test_a_link_to_a_parent_directory_is_not_followed(tmp_path):
    outside = tmp_path / "outside" / "host"
    outside.mkdir(parents=True)
    (outside / "dmesg.txt").write_text("[    1.0] secret-line-from-outside\n")
    b = _node(tmp_path / "run", "n1", {"host/uname.txt": "Linux n1 6.1.0 #1 SMP x86_64 GNU/Linux\n"})
    os.rename(b / "host", tmp_path / "moved")
    (b / "host").symlink_to(outside, target_is_directory=True)
    bundle = Bundle.open(b)
    assert bundle.paths() == []    # nothing listed through the link
    with pytest.raises(Exception, match="not a directory of the bundle"):
        bundle.text("host/dmesg.txt")


def test_a_fifo_or_a_device_link_in_a_bundle_is_refused_without_blocking(tmp_path):
    b = _node(tmp_path / "run", "n1")
    (b / "host/dmesg.txt").unlink()
    os.mkfifo(b / "host/dmesg.txt")                          # nobody ever writes to it
    (b / "host/uname.txt").unlink()
    (b / "host/uname.txt").symlink_to("/dev/zero")
    report = _analyze_json(b)                                  # a blocking read would time out here
    klog = _check(report, "n1", "host.kernel_log")
    assert klog["status"] == "error" and "FIFO" in klog["summary"]
    assert not any(f["code"] == "CHECK_CRASHED" for n in report["nodes"] for c in n["checks"]
                   for f in c["findings"])


@pytest.mark.parametrize("meta", ["[]", "null", "42", '"text"', "[" * 100_000 + "]" * 100_000,
                                  '{"outcome": 5}', '{"outcome": "exploded"}', '{"commands": "x"}',
                                  '{"commands": [{"path": 3}]}', '{"declared": {"gpu_count": "eight"}}',
                                  '{"declared": {"gpu_model": "../../../tmp/x"}}', '{"host": ["a"]}'])
def test_a_bad_bundle_json_makes_that_node_error_never_the_run(tmp_path, meta):
    run = tmp_path / "run"
    _node(run, "good")
    bad = _node(run, "bad")
    (bad / META).write_text(meta)
    report = _analyze_json(run)
    nodes = {n["host"]: n for n in report["nodes"]}
    assert nodes["good"]["outcome"] == "ok" and nodes["good"]["checks"]
    bad_node = nodes["bad"]
    assert bad_node["outcome"] == "error" and ("bundle.json" in bad_node["message"]), bad_node


def test_a_huge_or_linked_bundle_json_is_refused_unread(tmp_path):
    run = tmp_path / "run"
    _node(run, "good")
    huge = _node(run, "huge")
    with open(huge / META, "r+b") as f:
        f.truncate(20 * 2**20)                      # sparse: no disk used
    linked = _node(run, "linked")
    (linked / META).unlink()
    (linked / META).symlink_to(run / "good" / META)
    nodes = {b.host: b for b in (Bundle.open(run / n) for n in ("good", "huge", "linked"))}
    assert nodes["good"].outcome == "ok"
    assert nodes["huge"].outcome == "error" and "larger than" in nodes["huge"].meta["message"]
    assert nodes["linked"].outcome == "error" and "symbolic link" in nodes["linked"].meta["message"]


def test_a_profile_name_is_never_a_path(tmp_path):
    evil = tmp_path / "evil.toml"
    evil.write_text('description = "not ours"\n')
    profiles_dir = Path(__file__).resolve().parents[3] / "checks" / "profiles"
    rel = os.path.relpath(evil.with_suffix(""), profiles_dir)
    with pytest.raises(ConfigError, match="not a profile name"):
        load_profile(rel)
    with pytest.raises(ConfigError, match="not a profile name"):
        load_profile("/" + str(evil.with_suffix("")).lstrip("/"))


def test_bundles_are_written_private(tmp_path):
    b = _node(tmp_path / "run", "n1")
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o700
    assert stat.S_IMODE(b.stat().st_mode) == 0o700
    assert stat.S_IMODE((b / "host").stat().st_mode) == 0o700
    for f in (b / "host/dmesg.txt", b / META):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20)
_KEYS = ["host", "outcome", "message", "simulated", "declared", "commands", "tool_versions", "label"]
_CMD_KEYS = ["path", "command", "exit_code", "status", "stderr", "not_installed", "files", "duration_s",
             "local_start_epoch", "local_end_epoch"]
_DECL_KEYS = ["gpu_model", "gpu_count", "ib_devices", "ib_rate_gbps", "roce_interfaces", "rack", "slurm_node"]


@st.composite
def bundle_json(draw):
    """Well-formed bundle.json with some fields replaced by any JSON, or any JSON at all."""
    if draw(st.booleans()):
        return draw(json_values)
    meta = {"host": "fz", "outcome": "ok", "simulated": False, "declared": {"gpu_count": 0},
            "commands": [{"path": "host/dmesg.txt", "command": "dmesg", "exit_code": 0, "status": "ok",
                          "stderr": "", "local_start_epoch": 1.0, "local_end_epoch": 2.0}],
            "tool_versions": {}}
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["top", "command", "declared"]))
        if where == "top":
            meta[draw(st.sampled_from(_KEYS))] = draw(json_values)
        elif where == "command" and isinstance(meta.get("commands"), list) and meta["commands"] \
                and isinstance(meta["commands"][0], dict):
            meta["commands"][0][draw(st.sampled_from(_CMD_KEYS))] = draw(json_values)
        elif isinstance(meta.get("declared"), dict):
            meta["declared"][draw(st.sampled_from(_DECL_KEYS))] = draw(json_values)
    return meta


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("fuzz")
    _node(run, "good")
    _node(run, "fz")
    return run


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(meta=bundle_json())
def test_any_bundle_json_shape_gives_a_node_result_never_a_crash(fuzz_run, meta):
    from clusterkit.analysis import ProfileResolver, analyze_bundles
    from clusterkit.evidence.bundle import find_bundles
    from clusterkit.suites import load_suite

    (fuzz_run / "fz" / META).write_text(json.dumps(meta))
    bundles = [Bundle.open(d) for d in find_bundles(fuzz_run)]
    run = analyze_bundles(bundles, load_suite("quick"), profiles=ProfileResolver())
    nodes = {n.host: n for n in run.nodes}
    assert nodes["good"].outcome == "ok" and nodes["good"].checks
    for n in run.nodes:
        assert n.outcome in ("ok", "unreachable", "timeout", "error")
        if n.outcome == "ok":
            crashed = [c for c in n.checks if any(f.code == "CHECK_CRASHED" for f in c.findings)]
            assert not crashed, (meta, crashed[0].summary)
    json.dumps(run.to_dict(), default=str)


def test_analyze_of_a_directory_path_does_not_leave_the_run(tmp_path):
    """analyze_paths on a run dir reads its bundles only (a linked bundle dir is not one of them)."""
    outside = tmp_path / "elsewhere"
    _node(outside, "stranger")
    run = tmp_path / "run"
    _node(run, "n1")
    (run / "stranger").symlink_to(outside / "stranger", target_is_directory=True)
    r = analyze_paths([run], suite="quick")
    assert [n.host for n in r.nodes] == ["n1"]


LOST_GPU = "[ 9.000000] NVRM: GPU 0000:8a:00.0: GPU has fallen off the bus.\n"


def test_the_fatal_line_scan_reads_only_regular_files_of_the_bundle(tmp_path):
    """evidence.fatal_signatures reads every file of a bundle, through the same safe reads: a link to
    a file outside holding a fatal line is not followed, a FIFO does not block it; the same line in a
    real file of the bundle is found (so the scan did run)."""
    outside = tmp_path / "outside.txt"
    outside.write_text(LOST_GPU.replace("8a:00.0", "3b:00.0"))
    b = _node(tmp_path / "run", "n1", {"host/uname.txt": "Linux n1 6.1.0 #1 SMP x86_64 GNU/Linux\n",
                                       "notes/vendor.txt": LOST_GPU})
    (b / "notes/linked.txt").symlink_to(outside)
    os.mkfifo(b / "notes/pipe.txt")                          # nobody ever writes to it
    report = _analyze_json(b)
    scan = _check(report, "n1", "evidence.fatal_signatures")
    text = json.dumps(scan)
    assert "8a:00.0" in text and "notes/vendor.txt" in text, scan
    assert "3b:00.0" not in text and "linked.txt" not in text


def test_standard_input_is_bounded_like_an_evidence_file(monkeypatch):
    """`analyze -` reads at most the evidence limit (and one byte to tell a larger input): a larger
    paste is that input's error, never held whole."""
    from clusterkit.analysis import STDIN, open_paths

    monkeypatch.setattr("clusterkit.evidence.bundle.MAX_FILE_BYTES", 1024)
    _, _, errors, _ = open_paths([STDIN], stdin_text=(DMESG * 100).encode())
    assert [e.checks[0].findings[0].code for e in errors] == ["EVIDENCE_UNUSABLE"]
    assert "limit" in errors[0].checks[0].summary
    bundles, _, errors, _ = open_paths([STDIN], stdin_text=DMESG.encode())
    assert not errors and len(bundles) == 1


def test_analyze_reads_a_paste_from_standard_input():
    r = subprocess.run([sys.executable, "-m", "clusterkit", "analyze", "-", "--format", "json", "--suite", "quick"],
                       input=LOST_GPU, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert "GPU_XID_79" in r.stdout or "fallen off the bus" in r.stdout
