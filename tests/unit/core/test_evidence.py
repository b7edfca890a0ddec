"""Loose files: kind recognition, and unusable files giving error results, never a crash."""

import json
import subprocess
import sys

from clusterkit.evidence.kinds import sniff
from clusterkit.pipeline import analyze_paths


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "clusterkit", *args], capture_output=True, text=True, timeout=120)


def test_sniff_recognizes_host_kinds():
    assert sniff("[    1.000000] Linux version 5.15.0\n[    2.0] pci 0000:00:01.0: bridge\n").name == "kernel-log"
    assert sniff("MemTotal:  1000 kB\nMemFree: 10 kB\n").name == "meminfo"
    assert sniff("Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 10 5 5 50% /\n").name == "df"
    assert sniff('NAME="Ubuntu"\nID=ubuntu\nVERSION_ID="22.04"\n').name == "os-release"
    assert sniff("hello world\nthis is prose\n") is None


def test_unusable_files_are_error_results(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    binary = tmp_path / "core.bin"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)
    prose = tmp_path / "notes.txt"
    prose.write_text("please check node 7, it looked slow yesterday\n")
    huge = tmp_path / "huge.log"
    with open(huge, "wb") as f:
        f.truncate(65 * 1024 * 1024)  # sparse: 65 MiB of NULs without using the disk
    run = analyze_paths([empty, binary, prose, huge])
    by_host = {n.host: n for n in run.nodes}
    assert set(by_host) == {"empty.txt", "core.bin", "notes.txt", "huge.log"}
    msgs = {h: n.checks[0].findings[0].message for h, n in by_host.items()}
    assert all(n.status == "error" for n in by_host.values())
    assert "empty" in msgs["empty.txt"]
    assert "binary" in msgs["core.bin"]
    assert "unrecognized content" in msgs["notes.txt"] and "--kind" in msgs["notes.txt"]
    assert "larger than" in msgs["huge.log"]


def test_analyze_cli_loose_file_named_after_file_and_kind_override(tmp_path):
    log = tmp_path / "node7-dmesg.txt"
    log.write_text("[  10.000000] mce: [Hardware Error]: Machine check events logged\n")
    r = _cli("analyze", str(log), "--format", "json")
    assert r.returncode == 1, r.stderr
    d = json.loads(r.stdout)
    node = d["nodes"][0]
    assert node["host"] == "node7-dmesg.txt"
    assert [c["id"] for c in node["checks"]] == sorted(c["id"] for c in node["checks"])
    kl = next(c for c in node["checks"] if c["id"] == "host.kernel_log")
    assert kl["status"] == "fail" and kl["findings"][0]["code"] == "HOST_MCE_HARDWARE_ERROR"
    # checks that read other kinds are not reported for a loose file
    assert not any(c["id"] in ("host.disk", "host.memory", "host.reachable") for c in node["checks"])
    # --kind forces the reading; an unknown kind is a usage error
    odd = tmp_path / "odd.txt"
    odd.write_text("mce: [Hardware Error]: Machine check events logged\n")
    r = _cli("analyze", str(odd), "--kind", "kernel-log", "--format", "json")
    assert r.returncode == 1 and '"HOST_MCE_HARDWARE_ERROR"' in r.stdout
    r = _cli("analyze", str(odd), "--kind", "no-such-kind")
    assert r.returncode == 2 and "unknown --kind" in r.stderr


def test_analyze_bundle_directory_with_missing_files_skips_with_reason(tmp_path):
    from clusterkit.evidence.bundle import BundleWriter

    w = BundleWriter(tmp_path / "n1", "n1")
    w.write("host/uname.txt", "Linux n1 6.1.0-18-amd64 #1 SMP Debian x86_64 GNU/Linux\n")
    w.finish()
    run = analyze_paths([tmp_path], suite="quick")
    checks = {c.id: c for c in run.nodes[0].checks}
    assert checks["host.disk"].status == "skip" and "host/df.txt" in checks["host.disk"].summary
    assert checks["host.reachable"].status == "pass"
