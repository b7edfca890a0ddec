"""A paste of several commands is read command by command; fixtures written from each tool's format."""

from __future__ import annotations

import time
from pathlib import Path

from clusterkit.evidence.normalize import command_sections, normalize_document
from clusterkit.pipeline import analyze_paths

QUERY = """\
index, name, pci.bus_id, vbios_version
0, NVIDIA H100 80GB HBM3, 00000000:18:00.0, 96.00.89.00.01
1, NVIDIA H100 80GB HBM3, 00000000:2A:00.0, 96.00.89.00.01"""

XIDS = """\
[Mon Oct 29 12:07:39 2018] NVRM: Xid (PCI:0000:2a:00): 48, An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 4, subpartition 1.
[Mon Oct 29 12:07:40 2018] NVRM: Xid (PCI:0000:2a:00): 63, Dynamic Page Retirement: New page retired, reboot to activate (0x00000000002ce8ac)."""

TWO_COMMANDS = f"""\
root@gpu01:~# nvidia-smi --query-gpu=index,name,pci.bus_id,vbios_version --format=csv
{QUERY}
root@gpu01:~# dmesg -T | grep -i xid
{XIDS}
root@gpu01:~#
"""


def _run(tmp_path: Path, text: str):
    p = tmp_path / "paste.txt"
    p.write_text(text)
    return analyze_paths([p])


def _codes(node) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for c in node.checks:
        for f in c.findings:
            out.setdefault(f.code, []).append(c.id)
    return out


def test_each_command_of_a_paste_is_read_as_its_own_output(tmp_path):
    """The Xid lines are the kernel log's (judged by gpu.xid), not rows of the CSV above them: no VBIOS
    'differs' read out of a kernel message."""
    run = _run(tmp_path, TWO_COMMANDS)
    (node,) = run.nodes
    codes = _codes(node)
    assert node.status == "fail"
    assert "gpu.xid" in codes["GPU_XID_48"] and "GPU_XID_63" in codes
    assert "GPU_VBIOS_MIXED" not in codes
    assert not any(c.status == "error" for c in node.checks), [(c.id, c.summary) for c in node.checks]


def test_commands_behind_pdsh_prefixes_are_split_per_host(tmp_path):
    text = "\n".join(f"gpu{h}: {l}" for h in ("01", "02") for l in TWO_COMMANDS.splitlines()
                     if h == "01" or "dmesg" not in l and "NVRM" not in l)
    run = _run(tmp_path, text)
    by_host = {n.host: n for n in run.nodes}
    assert set(by_host) == {"gpu01", "gpu02"}
    assert "gpu.xid" in _codes(by_host["gpu01"])["GPU_XID_48"] and by_host["gpu01"].status == "fail"
    assert not any("GPU_VBIOS_MIXED" in _codes(n) for n in run.nodes)
    assert "GPU_XID_48" not in _codes(by_host["gpu02"]) and by_host["gpu02"].status != "fail"


def test_two_outputs_of_one_kind_are_two_nodes_named_by_their_command(tmp_path):
    text = ("$ ethtool -S ens1f0np0 | grep -E 'crc|symbol'\n     rx_crc_errors_phy: 0\n     rx_symbol_err_phy: 0\n"
            "$ ethtool -S ens1f1np1 | grep -E 'crc|symbol'\n     rx_crc_errors_phy: 4521\n     rx_symbol_err_phy: 4530\n")
    run = _run(tmp_path, text)
    by_host = {n.host: n for n in run.nodes}
    assert by_host.keys() == {"paste.txt", "paste.txt (ethtool -S ens1f1np1 | grep -E 'crc|symbol')"}, by_host.keys()
    clean, errors = by_host["paste.txt"], by_host["paste.txt (ethtool -S ens1f1np1 | grep -E 'crc|symbol')"]
    assert clean.status == "pass"
    assert errors.status == "warn"       # lifetime counters of one snapshot: watch them
    assert {f.component for c in errors.checks for f in c.findings} == {"ens1f1np1"}


def test_a_section_no_kind_reads_does_not_make_the_paste_unusable(tmp_path):
    text = f"$ uname -a\nLinux gpu01 5.15.0-91-generic #101-Ubuntu SMP x86_64 GNU/Linux\n$ dmesg -T | grep -i xid\n{XIDS}\n"
    (node,) = _run(tmp_path, text).nodes
    assert node.status == "fail" and "gpu.xid" in _codes(node)["GPU_XID_48"]   # read as the kernel log it is
    assert not any(c.id == "evidence.read" for c in node.checks)


def test_one_command_and_its_output_is_not_split():
    assert command_sections(normalize_document(f"$ dmesg -T\n{XIDS}\n")) is None
    assert command_sections(normalize_document(XIDS)) is None


def test_prompts_inside_log_prefixes_split_too():
    wrapped = "\n".join(f"2025-01-17T15:36:57.68{i}Z stdout F {l}" for i, l in enumerate(TWO_COMMANDS.splitlines()))
    parts = command_sections(normalize_document(wrapped))
    assert parts is not None and len([p for p in parts if p.strip()]) == 2
    assert parts[-1].startswith("$ dmesg -T | grep -i xid")


def test_a_paste_of_many_prompts_is_split_in_linear_time():
    text = "$ dmesg\n[    1.0] x\n" * 50_000
    t0 = time.monotonic()
    parts = command_sections(normalize_document(text))
    assert parts is not None and len(parts) == 50_001
    assert time.monotonic() - t0 < 10
