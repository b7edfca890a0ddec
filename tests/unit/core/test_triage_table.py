"""The report a technician reads: worst problem first, one cause once, fits 80 and 160 columns,
never wrapped when piped. Mostly on the simulated 8-node cluster, which has the faults the
ranking and grouping are for (a GPU off the bus with fabric counters, a fabric manager mismatch)."""

from __future__ import annotations

import re

import pytest

from clusterkit import pipeline
from clusterkit.render import render, terminal_width
from clusterkit.render.table import render_table
from clusterkit.results import CheckResult, Finding, NodeResult, RunResult
from clusterkit.triage import node_order, tier, triage

HEAD = re.compile(r"^  (FAIL|ERROR|WARN) +(\S+) ")
CLUSTER = re.compile(r"^  cluster ")       # a passing cluster check


@pytest.fixture(scope="module")
def sim() -> RunResult:
    return pipeline.simulate_run(nodes=8, seed=0)


def _rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("│ ") and line[2:].strip()[:1] not in ("", "│")]


def _fix_section(text: str) -> list[str]:
    lines = text.split("What to fix", 1)[1].splitlines()[1:]
    return [x for x in lines if x.strip() and not re.match(r"^\d+ nodes", x)]


def test_the_worst_problem_of_a_node_is_shown_not_its_alphabetically_first(sim):
    text = render_table(sim, width=160)
    row = next(r for r in _rows(text) if r.startswith("│ sim-h100-04"))
    assert "GPU_XID_79" in row and "fallen off the bus" in row      # not its symbol-error counter
    worst = triage(sim)[0]
    assert (worst.host, worst.cause.code) == ("sim-h100-04", "GPU_XID_79")


def test_failing_nodes_come_first_and_only_failing_hides_the_rest(sim):
    order = [n.host for n in node_order(sim)]
    status = {n.host: n.status for n in sim.nodes}
    ranks = [0 if status[h] in ("fail", "error") else 1 if status[h] == "warn" else 2 for h in order]
    assert ranks == sorted(ranks) and ranks[-1] == 2
    text = render_table(sim, width=160, only_failing=True)
    shown = {r[2:].split()[0] for r in _rows(text)}
    passing = {h for h, s in status.items() if s in ("pass", "skip")}
    assert passing and not shown & passing
    assert f"({len(passing)} passing node{'s' if len(passing) != 1 else ''} not shown: --only-failing)" in text


def test_a_fabric_manager_mismatch_is_one_cause_with_its_consequences_named(sim):
    lines = _fix_section(render_table(sim, width=None))
    heads = [x for x in lines if HEAD.match(x)]
    host = next(n.host for n in sim.nodes for c in n.checks for f in c.findings
                if f.code == "GPU_FABRIC_MANAGER_VERSION_MISMATCH")     # wherever the simulator put the fault
    fm = [x for x in heads if x.split()[1] == host and "FABRIC_MANAGER" in x]
    assert len(fm) == 1 and "(cause: the fabric manager is not at the driver's version)" in fm[0]
    follows = lines[lines.index(fm[0]) + 2]
    assert follows.strip().startswith("follows from it:")
    # the package check (stack.versions) says the same as gpu.versions under the same code: one cause
    for code in ("GPU_FABRIC_MANAGER_NOT_RUNNING", "GPU_FABRIC_MANAGER_VERSION_MISMATCH (stack.versions)",
                 "STACK_VERSION_DRIFT"):
        assert code in follows
    text = "\n".join(lines)
    assert text.count("GPU_FABRIC_MANAGER_VERSION_MISMATCH") == 2      # the cause, and the package check under it
    findings = sum(1 for n in sim.nodes for c in n.checks for f in c.findings if f.severity != "info"
                   and c.status != "pass")
    assert len(heads) < findings / 2


def test_no_gpu_found_carries_the_nccl_and_power_errors_that_follow_from_it():
    checks = [
        CheckResult.from_findings("gpu.inventory", [Finding("GPU_NOT_FOUND", "fail", "node", "declared 8 GPUs, "
                                                            "found none", action="check the driver")], ""),
        CheckResult.error("nccl.single_node", "all_reduce_perf output unusable: no result rows",
                          code="INPUT_UNUSABLE", component="nccl"),
        CheckResult.error("power.step", "NVML unavailable", code="POWER_STEP_NOT_RUN", component="node"),
        CheckResult.from_findings("host.disk", [Finding("HOST_DISK_LOW", "warn", "filesystem /", "1% free")], ""),
    ]
    run = RunResult("p", "quick", [NodeResult("gpu07", checks=checks)])
    groups = triage(run)
    assert [(g.cause.code, sorted(p.code for p in g.follows)) for g in groups] == [
        ("GPU_NOT_FOUND", ["INPUT_UNUSABLE", "POWER_STEP_NOT_RUN"]), ("HOST_DISK_LOW", [])]


def test_ranking_puts_a_lost_gpu_or_node_before_counters_and_warnings_last():
    assert tier("GPU_UNREADABLE") < tier("NCCL_VALIDATION_FAILED") < tier("FABRIC_PORT_RATE_LOW") \
        < tier("NCCL_BUSBW_LOW") < tier("IB_SYMBOL_ERROR_INCREASED")
    counters = Finding("IB_SYMBOL_ERROR_INCREASED", "fail", "mlx5_0 port 1", "symbol_error +900")
    lost = Finding("GPU_UNREADABLE", "fail", "GPU 2 (0000:3a:00.0)", "GPU is lost")
    drift = Finding("HOST_KERNEL_DRIFT", "warn", "kernel", "kernel differs")
    run = RunResult("p", "quick", [
        NodeResult("a", checks=[CheckResult.from_findings("fabric.counters", [counters], ""),
                                CheckResult.from_findings("host.kernel", [drift], "")]),
        NodeResult("b", checks=[CheckResult.from_findings("gpu.inventory", [lost], "")]),
        NodeResult("c", outcome="unreachable", message="connection refused by 10.0.0.3:22"),
    ])
    assert [(g.host, g.cause.code) for g in triage(run)] == [
        ("b", "GPU_UNREADABLE"), ("c", "NODE_UNREACHABLE"), ("a", "IB_SYMBOL_ERROR_INCREASED"),
        ("a", "HOST_KERNEL_DRIFT")]
    text = render_table(run, width=100)
    assert "NODE_UNREACHABLE - unreachable: connection refused by 10.0.0.3:22" in text
    assert "action: check that the node is powered on" in text


@pytest.mark.parametrize("width", [80, 160])
def test_the_report_fits_the_terminal_and_folded_lines_keep_their_indent(sim, width):
    text = render_table(sim, width=width)
    assert max(len(x) for x in text.splitlines()) <= width
    assert len(max(_rows(text), key=len)) == width or width == 160   # the table uses the width it has
    lines = _fix_section(text)
    col = None
    for x in lines:
        m = HEAD.match(x) or CLUSTER.match(x)
        if m:
            col = m.end()                 # where the text of this entry starts
            continue
        assert col is not None and len(x) - len(x.lstrip(" ")) >= col, (width, x)


def test_piped_output_is_never_wrapped(sim):
    text = render(sim, "table", to_terminal=False)
    lines = text.splitlines()
    assert all(x == x.rstrip() for x in lines)                # nothing padded to a width
    for g in triage(sim):
        head = next(x for x in lines if HEAD.match(x) and x.split()[1] == (g.host or "cluster") and g.cause.code in x)
        assert g.cause.text in head                          # the whole finding on one line, with its node
        if g.cause.action:
            assert any(x.strip() == f"action: {g.cause.action}" for x in lines)
    for n in sim.nodes:                                     # one table row per node, whole
        assert sum(1 for r in _rows(text) if r[2:].startswith(n.host + " ")) == 1


@pytest.mark.parametrize("columns, expected", [("50", 80), ("123", 123), ("300", 200)])
def test_terminal_width_is_kept_within_80_and_200_columns(monkeypatch, columns, expected):
    monkeypatch.setenv("COLUMNS", columns)
    assert terminal_width() == expected


def test_node_text_is_printed_as_is_not_as_markup_or_emoji():
    f = Finding("GPU_UNREADABLE", "fail", "GPU 5 (0000:ab:00.0)", "[bold]lost[/bold] :ab: GPU")
    run = RunResult("p", "quick", [NodeResult("n1", checks=[CheckResult.from_findings("gpu.inventory", [f], "")])])
    text = render_table(run, width=None)
    assert "0000:ab:00.0" in text and "[bold]lost[/bold] :ab: GPU" in text
