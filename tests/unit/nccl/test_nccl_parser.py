"""all_reduce_perf parser: every layout variant, bad input, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clusterkit.evidence.kinds import sniff
from clusterkit.parsers import ParseError
from clusterkit.parsers.nccl_tests import is_nccl_tests, parse

import nccl_fixtures as fx


def test_current_layout_peak_gate_avg_and_devices():
    r = parse(fx.CURRENT_8X_H100)
    assert r.test == "all_reduce_perf" and r.tests_version == "2.16.3"
    assert r.ranks == 8 and r.nodes == 1 and r.hosts == ["gpu-a01"]
    assert r.gpu_names == ["NVIDIA H100 80GB HBM3"]
    assert len(r.rows) == 6 and r.rows[0].root == -1
    assert r.busbw_peak_gbps == pytest.approx(479.43)
    # median of the >= 1 GiB rows (mean of out-of-place and in-place): 1G, 2G, 4G, 8G
    assert r.busbw_large_gbps() == pytest.approx((476.445 + 479.07) / 2)
    assert r.avg_busbw_gbps == pytest.approx(461.25)
    assert r.validation is True and r.wrong_total == 0 and r.has_trailer
    m = r.metrics()
    assert set(m) == {"busbw_peak_gbps", "busbw_large_gbps", "busbw_avg_gbps", "ranks", "nodes"}


def test_layout_without_root_column_and_old_device_lines():
    r = parse(fx.NO_ROOT_A100)
    assert len(r.rows) == 7 and all(row.root is None for row in r.rows)
    assert r.gpu_names == ["A100-SXM4-40GB"] and r.ranks == 2
    assert r.busbw_peak_gbps == pytest.approx(231.51)
    assert r.busbw_large_gbps() == pytest.approx((230.695 + 231.495) / 2)


def test_oldest_layout_error_column_is_a_delta_not_a_count():
    r = parse(fx.OLD_ERROR_COLUMN)
    assert len(r.rows) == 3 and all(row.delta_format for row in r.rows)
    assert r.wrong_total == 0  # 1e-06 is a float deviation within tolerance; the summary says OK
    assert r.oob_values == 0 and not r.oob_failed and r.has_trailer
    # no size reaches 1 GiB: the gate is the largest factor-of-8 band (32 MiB, 128 MiB)
    assert r.busbw_large_gbps() == pytest.approx((21.875 + 22.005) / 2)


def test_srun_prefix_interleaved_lines_and_truncation():
    r = parse(fx.SRUN_PREFIXED_TRUNCATED)
    assert [row.size_bytes for row in r.rows] == [1 << 30, 2 << 30]
    assert r.nodes == 2 and r.ranks == 2 and r.hosts == ["nodeA", "nodeB"]
    assert r.nics == ["mlx5_0", "mlx5_3"]
    assert r.info_nodes == 2
    assert not r.has_trailer and r.failures == []


def test_tagged_output_na_inplace_only_and_timestamps():
    r = parse(fx.TAGGED_NA_TIMESTAMPS)
    assert len(r.rows) == 2
    assert r.rows[0].oop_wrong is None and r.validation is False
    assert r.rows[1].oop_busbw_gbps is None and r.rows[1].ip_busbw_gbps == pytest.approx(230.56)
    assert r.busbw_peak_gbps == pytest.approx(230.56)


def test_wrong_counts_and_out_of_bounds_failed():
    r = parse(fx.WRONG_AND_FAILED)
    assert r.wrong_total == 3 + 1e6
    assert r.oob_values == 2 and r.oob_failed


def test_failure_lines_after_rows_are_kept():
    r = parse(fx.ABORTED_MID_RUN)
    assert len(r.rows) == 1
    assert any("illegal memory access" in f for f in r.failures)
    assert any("Test failure" in f for f in r.failures)


def test_cuda_init_failure_without_rows_is_a_record_not_an_exception():
    r = parse(fx.CUDA_INIT_FAIL)
    assert r.rows == [] and any("system not yet initialized" in f for f in r.failures)


def test_json_report():
    r = parse(fx.JSON_REPORT)
    assert r.source_format == "json" and r.test == "all_reduce_perf"
    assert r.nccl_version == "2.23.4" and r.env["NCCL_NVLS_ENABLE"] == "1"
    assert r.ranks == 2 and r.hosts == ["gpu-d01"] and r.rows[0].root == -1
    assert r.busbw_peak_gbps == pytest.approx(479.10)
    assert r.avg_busbw_gbps == pytest.approx(474.676667) and r.oob_values == 0


def test_json_report_cut_off_keeps_complete_records():
    cut = fx.JSON_REPORT[: fx.JSON_REPORT.index('{"size":4294967296') + 40]
    r = parse(cut)
    assert [row.size_bytes for row in r.rows] == [1 << 30, 2 << 30]
    assert not r.has_trailer and r.ranks == 2


def test_json_cut_before_results_is_a_parse_error():
    with pytest.raises(ParseError):
        parse('{"version":1,"start_time":"2026-11-23 09:12:44","ar')


@pytest.mark.parametrize("text", ["", "hello\nworld\n", "# just a comment\n", "{}", "[1, 2]", "\x00\x01"])
def test_unusable_input_is_parse_error(text):
    with pytest.raises(ParseError):
        parse(text)


def test_sniffer_recognizes_every_variant_and_not_prose():
    for t in (fx.CURRENT_8X_H100, fx.NO_ROOT_A100, fx.OLD_ERROR_COLUMN, fx.SRUN_PREFIXED_TRUNCATED,
              fx.TAGGED_NA_TIMESTAMPS, fx.CUDA_INIT_FAIL, fx.JSON_REPORT):
        k = sniff(t)
        assert k is not None and k.name == "nccl.all_reduce_perf", t[:80]
    assert not is_nccl_tests("The busbw of out-of-place and in-place runs was fine.\n")


def test_ansi_and_crlf_are_tolerated():
    t = "\x1b[32m" + fx.CURRENT_8X_H100.replace("\n", "\r\n") + "\x1b[0m"
    assert parse(t).busbw_peak_gbps == pytest.approx(479.43)


# ---- fuzzing -----------------------------------------------------------------------------

_noise_line = st.one_of(
    st.text(max_size=80).map(lambda s: s.replace("\n", " ")),
    st.sampled_from(["gpu:1:2 [0] NCCL INFO Channel 00/02 :    0   1",
                     "Warning: Permanently added 'x' (ECDSA) to the list of known hosts.",
                     "--------------------------------------------------------------------------",
                     "$ ", "#", "   12 34 float sum", "N/A N/A"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_noise_line, max_size=6), st.integers(min_value=0, max_value=10_000))
@example(["{"], 0)          # a lone brace first: text, not nccl-tests' JSON report (hypothesis found it)
def test_noise_lines_anywhere_never_lose_rows(noise, pos):
    lines = fx.CURRENT_8X_H100.split("\n")
    i = pos % (len(lines) + 1)
    text = "\n".join(lines[:i] + noise + lines[i:])
    r = parse(text)
    sizes = [row.size_bytes for row in r.rows]
    for want in (268435456, 1 << 30, 8 << 30):
        assert want in sizes
    assert r.busbw_peak_gbps >= 479.43


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=2000))
def test_arbitrary_text_parses_or_raises_parse_error(text):
    try:
        r = parse(text)
    except ParseError:
        return
    r.metrics()
    assert r.busbw_peak_gbps is None or r.busbw_peak_gbps >= 0


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_outputs_parse_or_raise_parse_error(data):
    base = data.draw(st.sampled_from([fx.CURRENT_8X_H100, fx.JSON_REPORT, fx.OLD_ERROR_COLUMN, fx.SRUN_PREFIXED_TRUNCATED]))
    cut = data.draw(st.integers(min_value=0, max_value=len(base)))
    junk = data.draw(st.text(max_size=40))
    text = base[:cut] + junk + base[cut + data.draw(st.integers(min_value=0, max_value=50)):]
    try:
        r = parse(text)
    except ParseError:
        return
    r.metrics()
    r.busbw_large_gbps()
