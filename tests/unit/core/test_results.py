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
                      "nodes", "cluster_checks"}
    n1 = d["nodes"][0]
    assert set(n1) >= {"host", "outcome", "status", "checks"}
    c = n1["checks"][0]
    assert set(c) == {"id", "status", "summary", "findings", "metrics", "duration_s"}
    assert set(c["findings"][0]) == {"code", "severity", "component", "message", "observed", "limit", "unit",
                                     "action", "evidence"}
    assert RunResult.from_dict(d).to_dict()["nodes"] == d["nodes"]


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
