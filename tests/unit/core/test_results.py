import json
import xml.etree.ElementTree as ET

from clusterkit.render import render
from clusterkit.results import CheckResult, Finding, NodeResult, RunResult


def _run() -> RunResult:
    bad = Finding("GPU_ROW_REMAP_PENDING", "fail", "GPU 3 (0000:1B:00.0, SN 1652)", "row remap pending",
                  observed=1, limit=0, unit="rows", action="reset the GPU (nvidia-smi -r -i 3)")
    warn = Finding("HOST_KERNEL_DRIFT", "warn", "kernel", "kernel differs", action="pin the kernel")
    return RunResult("h100-sxm5-80gb", "quick", [
        NodeResult("n1", checks=[CheckResult.from_findings("gpu.remap", [bad], "ok"),
                                 CheckResult.from_findings("host.kernel", [warn], "ok"),
                                 CheckResult.skip("nccl.single_node", "not collected: nccl/all_reduce_perf.txt")]),
        NodeResult("n2", checks=[CheckResult.from_findings("host.disk", [], "all good")]),
        NodeResult("n3", outcome="unreachable", message="connection refused"),
    ])


def test_status_is_worst_part_and_unreachable_node_fails_run():
    run = _run()
    assert [n.status for n in run.nodes] == ["fail", "pass", "error"]
    assert run.status == "fail" and run.failed()
    only_warn = RunResult("p", "s", [NodeResult("a", checks=[CheckResult.from_findings(
        "x.y", [Finding("C", "warn", "c", "m")], "ok")])])
    assert only_warn.status == "warn" and not only_warn.failed()
    lost = RunResult("p", "s", [NodeResult("a", outcome="timeout", message="deadline")])
    assert lost.failed()


def test_json_contract_round_trips():
    d = json.loads(render(_run(), "json"))
    assert set(d) == {"clusterkit_version", "profile", "suite", "started_at", "finished_at", "status", "simulated",
                      "summary", "nodes", "cluster_checks"}
    n1 = d["nodes"][0]
    assert set(n1) >= {"host", "outcome", "status", "checks"}
    c = n1["checks"][0]
    assert set(c) == {"id", "status", "summary", "findings", "metrics", "duration_s"}
    assert set(c["findings"][0]) == {"code", "severity", "component", "message", "observed", "limit", "unit",
                                     "action", "evidence"}
    assert RunResult.from_dict(d).to_dict()["nodes"] == d["nodes"]


def test_json_summary_counts_outcomes_and_names_failing_hosts_and_their_worst_problem():
    s = json.loads(render(_run(), "json"))["summary"]
    assert s["nodes"] == 3
    assert s["nodes_by_outcome"] == {"ok": 2, "timeout": 0, "interrupted": 0, "unreachable": 1, "error": 0}
    assert s["nodes_by_status"] == {"pass": 1, "warn": 0, "fail": 1, "error": 1, "skip": 0}
    assert s["checks_by_status"] == {"pass": 1, "warn": 1, "fail": 1, "error": 0, "skip": 1}
    assert s["failing_hosts"] == ["n3", "n1"] and s["not_reached_hosts"] == ["n3"]     # worst first
    assert s["rerun_hosts"] == ["n1", "n3"]
    assert s["worst_by_host"]["n1"]["code"] == "GPU_ROW_REMAP_PENDING"
    assert s["worst_by_host"]["n3"]["code"] == "NODE_UNREACHABLE" and "n2" not in s["worst_by_host"]
    assert list(json.loads(render(_run(), "json")))[:8] == ["clusterkit_version", "profile", "suite", "started_at",
                                                            "finished_at", "status", "simulated", "summary"]


def test_numbers_units_and_plurals_read_as_written():
    from clusterkit.render.fmt import number, plural, quantity

    assert quantity(4629135.0, "elements") == "4,629,135 elements"
    assert quantity(1, "errors") == "1 error" and quantity(2, "errors") == "2 errors"
    assert quantity(12.5, "C") == "12.5 °C" and quantity(3, "s") == "3 seconds" and quantity(1, "s") == "1 second"
    assert quantity(7, "count") == "7" and quantity(12028, None) == "12028"      # an error number, not a quantity
    assert number(1.2e-05) == "1.2e-05" and number(0.5) == "0.5" and number(1234.56) == "1,234.6"
    assert plural(1, "node") == "1 node" and plural(2, "node") == "2 nodes" and plural(0, "cause") == "0 causes"
    big = Finding("NCCL_VALIDATION_FAILED", "fail", "n1 GPUs", "wrong data", observed=4629135.0, unit="elements")
    run = RunResult("p", "quick", [NodeResult("n1", checks=[CheckResult.from_findings("nccl.single_node", [big], "")])])
    table = render(run, "table", to_terminal=False)
    assert "[observed 4,629,135 elements]" in table and "1 node: status FAIL" in table
    assert "1 nodes" not in table and "4629135.0" not in table
    assert "observed 4,629,135 elements" in render(run, "junit")


def test_junit_has_a_testcase_per_node_and_check():
    root = ET.fromstring(render(_run(), "junit").split("\n", 1)[1])
    assert root.get("tests") == "5" and root.get("failures") == "1" and root.get("errors") == "1"
    assert root.get("skipped") == "1"
    cases = {(tc.get("classname"), tc.get("name")) for tc in root.iter("testcase")}
    assert ("n1", "gpu.remap") in cases and ("n3", "host.reachable") in cases
    failure = next(tc for tc in root.iter("testcase") if tc.get("name") == "gpu.remap").find("failure")
    assert "reset the GPU" in failure.text and "GPU 3" in failure.text


def test_table_names_part_and_action():
    out = render(_run(), "table", to_terminal=False)
    assert "GPU_ROW_REMAP_PENDING" in out and "GPU 3 (0000:1B:00.0, SN 1652)" in out
    assert "action: reset the GPU" in out
    assert "n3" in out and "connection refused" in out
    assert out.index("GPU_ROW_REMAP_PENDING") < out.index("HOST_KERNEL_DRIFT")  # failures first


def test_finding_headline_names_the_component_once():
    from clusterkit.results import Finding

    said_twice = Finding("GPU_ECC_UNCORRECTABLE", "fail", "GPU 5 (0000:ab:00.0)", "GPU 5 (0000:ab:00.0): 1 uncorrectable")
    assert said_twice.headline() == "GPU 5 (0000:ab:00.0): 1 uncorrectable"
    plain = Finding("HOST_DISK_LOW", "fail", "filesystem /raid", "1.0% free")
    assert plain.headline() == "filesystem /raid: 1.0% free"
