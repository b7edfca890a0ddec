"""How collect stores what a node printed: any output is kept or refused with a reason, never a crash."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from clusterkit.evidence.bundle import BundleWriter
from clusterkit.fleet.hostrun import store as _store
from clusterkit.fleet.ssh import CommandResult
from clusterkit.probes.registry import Command


def _result(stdout: bytes, exit_code: int | None = 0) -> CommandResult:
    return CommandResult("python3 -", exit_code, stdout, b"", local_start_epoch=100.0, local_end_epoch=100.5,
                         duration_s=0.5)


def _inside(root: Path) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


paths = st.one_of(st.sampled_from(["", "/", "bundle.json", "../x", "/etc/passwd", "a", "a/b", "a/", "gpu/x.txt",
                                   "a\x00b", ".", "..", "gpu/../../y"]),
                  st.text(min_size=0, max_size=12))
objects = st.dictionaries(paths, st.one_of(st.text(max_size=20), st.integers(), st.lists(st.integers())), max_size=5)


@settings(max_examples=100, deadline=None)
@given(st.one_of(objects.map(lambda d: json.dumps(d).encode()), st.binary(max_size=200)))
def test_any_files_json_output_is_stored_or_refused_inside_the_bundle(tmp_path_factory, stdout):
    root = tmp_path_factory.mktemp("b")
    w = BundleWriter(root / "n", "n")
    _store(w, Command("gpu/probe.json", ["python3", "-"], output="files-json"), _result(stdout))
    rec = w.meta["commands"][-1]
    w.finish()
    assert _inside(root) == sorted(["n/bundle.json", *(f"n/{p}" for p in rec["files"])]) or \
        rec["status"] == "error" and not rec["files"] and (root / "n/gpu/probe.json").read_bytes() == stdout
    assert rec["status"] == "ok" or rec["message"]
    assert json.loads((root / "n/bundle.json").read_text())["host"] == "n"   # never overwritten by a node


def test_plain_output_is_stored_as_printed_and_missing_tools_leave_only_a_record(tmp_path):
    w = BundleWriter(tmp_path / "n", "n")
    raw = b"line 1\r\n\xff odd bytes\n"
    _store(w, Command("host/x.txt", ["x"]), _result(raw))
    _store(w, Command("host/gone.txt", ["gone"]), _result(b"", 127))
    _store(w, Command("host/fails.txt", ["f"]), _result(b"", 1))
    assert (tmp_path / "n/host/x.txt").read_bytes() == raw
    assert not (tmp_path / "n/host/gone.txt").exists() and not (tmp_path / "n/host/fails.txt").exists()
    x, gone, fails = w.meta["commands"]
    assert (x["exit_code"], x["local_start_epoch"], x["local_end_epoch"], x["phase"]) == (0, 100.0, 100.5, 10)
    assert gone["not_installed"] is True and gone["status"] == "ok"
    assert fails["exit_code"] == 1 and "not_installed" not in fails


def test_sudo_asking_for_a_password_says_what_to_do(tmp_path):
    w = BundleWriter(tmp_path / "n", "n")
    res = CommandResult("sudo -n -- dmesg", 1, b"", b"sudo: a password is required\n")
    _store(w, Command("host/dmesg.txt", ["dmesg"], root=True), res)
    rec = w.meta["commands"][0]
    assert "NOPASSWD" in rec["message"] and "`dmesg`" in rec["message"]
    assert rec["stderr"] == "sudo: a password is required\n"
