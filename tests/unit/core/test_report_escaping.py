"""Text from evidence reaches reports literally: Rich markup is not interpreted (a mount point
`/data[/x]` crashed the table), ANSI escapes never reach the terminal, and characters XML
forbids never make the JUnit report invalid."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from clusterkit.evidence.bundle import BundleWriter
from clusterkit.pipeline import analyze_paths
from clusterkit.render import render

HOSTILE_HOST = "n1\x1b]0;owned\x07\x1b[31mRED"
DF = ("Filesystem 1024-blocks Used Available Capacity Mounted on\n"
      "/dev/sda1 104857600 104000000 857600 100% /data[/x]\n"
      "/dev/sdb1 104857600 104000000 857600 100% /scratch[bold]\x1b[2J\x01\n")


def _run(tmp_path):
    w = BundleWriter(tmp_path / "b", "n1")
    w.write("host/df.txt", DF)
    w.write("host/uname.txt", "Linux n1 6.1.0 #1 SMP x86_64 GNU/Linux\n")
    w.set_outcome("ok")
    w.finish(host=HOSTILE_HOST)
    return analyze_paths([tmp_path / "b"], suite="quick")


def test_the_table_shows_markup_and_escapes_literally(tmp_path):
    run = _run(tmp_path)
    disk = next(c for c in run.nodes[0].checks if c.id == "host.disk")
    assert disk.status == "fail" and "/data[/x]" in disk.summary
    for color in (False, True):
        out = render(run, "table", to_terminal=color)
        assert "/data[/x]" in out and "/scratch[bold]" in out
        assert "\x1b]0;" not in out and "\x1b[2J" not in out and "\x07" not in out and "\x01" not in out
        assert "\x1b[31mRED" not in out
    assert "n1RED" in render(run, "table", to_terminal=False)


def test_junit_is_valid_xml_whatever_the_evidence_held(tmp_path):
    run = _run(tmp_path)
    root = ET.fromstring(render(run, "junit"))
    names = [ts.get("name") for ts in root.iter("testsuite")]
    assert any(n.startswith("n1") and "\\x1b" in n for n in names)
    text = "".join(e.get("message", "") for e in root.iter("failure"))
    assert "/data[/x]" in text


def test_json_escapes_control_characters(tmp_path):
    out = render(_run(tmp_path), "json")
    assert not any(ord(c) < 0x20 and c not in "\n" for c in out)
    assert json.loads(out)["nodes"][0]["host"] == HOSTILE_HOST    # the data itself is kept exactly
