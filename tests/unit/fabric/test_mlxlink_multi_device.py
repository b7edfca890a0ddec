"""Several HCAs' `mlxlink --show_counters` outputs in one paste (a shell loop, filtered through grep), each under
a banner that names its device: every device is read and judged on the lines it has. Fixtures written from
mlxlink's `Physical Counters and BER Info` section (MFT 4.2x)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterkit.evidence.kinds import sniff
from clusterkit.parsers.mlxlink import parse_mlxlink
from clusterkit.pipeline import analyze_paths

BLOCK = """\
FEC                             : RS-FEC - (544,514) + PLR
Physical Counters and BER Info
Symbol Errors                   : 0
Effective Physical Errors       : 0
Effective Physical BER          : {eff}
Raw Physical Errors Per Lane    : 3183333,242074
Raw Physical BER                : {raw}
Link Error Recovery Counter     : 0
"""


def loop(*bers: tuple[str, str], banner: str = "========== mlx5_{i} FEC Counters ==========") -> str:
    head = ('$ for i in $(seq 0 {n}); do echo "{b}"; sudo mlxlink -d mlx5_$i --show_counters | grep -i -E '
            '"error|fec|ber"; done\n').format(n=len(bers) - 1, b=banner.replace("{i}", "$i"))
    return head + "".join(banner.format(i=i) + "\n" + BLOCK.format(eff=e, raw=r) for i, (e, r) in enumerate(bers))


def _analyze(tmp_path: Path, text: str):
    p = tmp_path / "paste.txt"
    p.write_text(text)
    (node,) = analyze_paths([p]).nodes
    return node, [(f.code, f.severity, f.component.split()[0]) for c in node.checks for f in c.findings]


def test_every_device_of_the_loop_is_its_own_report():
    text = loop(("15E-255", "1E-8"), ("15E-255", "3E-4"), ("2E-10", "1E-7"))
    assert sniff(text).name == "mlxlink"
    rep = parse_mlxlink(text)
    assert [(r.device, r.raw_ber, r.effective_errors) for r in rep.reports] == [
        ("mlx5_0", pytest.approx(1e-8), 0), ("mlx5_1", pytest.approx(3e-4), 0), ("mlx5_2", pytest.approx(1e-7), 0)]
    assert rep.reports[2].effective_ber == pytest.approx(2e-10) and rep.reports[1].fec.startswith("RS-FEC")


def test_each_device_is_judged_on_its_own_lines(tmp_path):
    node, found = _analyze(tmp_path, loop(("15E-255", "1E-8"), ("15E-255", "3E-4"), ("2E-10", "1E-7"),
                                          ("15E-255", "2E-5")))
    assert node.status == "fail"
    assert sorted(found) == [("FABRIC_EFFECTIVE_BER_HIGH", "fail", "mlx5_2"), ("FABRIC_RAW_BER_HIGH", "fail", "mlx5_1"),
                             ("FABRIC_RAW_BER_HIGH", "warn", "mlx5_3")]


def test_a_clean_loop_passes_with_other_banner_styles(tmp_path):
    for banner in ("========== mlx5_{i} FEC Counters ==========", "mlx5_{i}:", "### /dev/mst/mt4123_pciconf{i} ###"):
        text = loop(("15E-255", "1E-8"), ("15E-255", "4E-9"), banner=banner)
        assert len(parse_mlxlink(text).reports) == 2, banner
        node, found = _analyze(tmp_path, text)
        assert (node.status, found) == ("pass", []), banner


def test_a_fragment_without_operational_info_is_judged_not_unusable(tmp_path):
    text = "Effective Physical BER          : 15E-255\nRaw Physical BER                : 5E-4\n"
    assert sniff(text).name == "mlxlink"
    node, found = _analyze(tmp_path, text)
    assert node.status == "fail" and [(c, s) for c, s, _ in found] == [("FABRIC_RAW_BER_HIGH", "fail")]
    clean = _analyze(tmp_path, text.replace("5E-4", "1E-8"))
    assert (clean[0].status, clean[1]) == ("pass", [])


def test_a_device_whose_command_failed_is_left_out_and_link_downs_are_counted_per_device(tmp_path):
    text = ("=== mlx5_0 ===\n-E- Failed to open device\n=== mlx5_1 ===\n" + BLOCK.format(eff="15E-255", raw="1E-8")
            + "Link Down Counter               : 3\n")
    rep = parse_mlxlink(text)
    assert [r.device for r in rep.reports] == ["mlx5_1"] and rep.link_down_counter == 3
    node, found = _analyze(tmp_path, text)
    assert ("FABRIC_COUNTER_LIFETIME", "info", "mlx5_1") in found
