"""stack.versions: installed NVIDIA stack per node, on dpkg-query output written here."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterkit.analysis import ProfileResolver, analyze_bundles
from clusterkit.evidence.bundle import Bundle
from clusterkit.evidence.kinds import sniff
from clusterkit.parsers import ParseError
from clusterkit.parsers.stack_versions import PATH, parse_stack_versions
from clusterkit.suites import Suite


def _dpkg(driver="570.172.08", fm=None, nccl="2.26.2-1+cuda12.8", dcgm="1:4.2.3-1", loaded=None):
    fm = fm or driver
    lines = [f"nvidia-driver-570-open\t{driver}-0ubuntu1\tinstalled",
             f"nvidia-fabricmanager-570\t{fm}-1\tinstalled",
             f"libnvidia-nscq-570\t{fm}-1\tinstalled",
             f"libnccl2\t{nccl}\tinstalled",
             f"datacenter-gpu-manager-4-core\t{dcgm}\tinstalled",
             f"datacenter-gpu-manager-4-cuda12\t{dcgm}\tinstalled",
             "nvidia-driver-550\t550.163.01-0ubuntu1\tconfig-files",   # removed: ignored
             "doca-ofed\t2.9.1-1\tinstalled"]
    if loaded:
        lines.append(f"loaded\tnvidia\t{loaded}")
    return "\n".join(lines) + "\n"


def test_parser_reduces_package_versions_to_the_table_s():
    s = parse_stack_versions(_dpkg(loaded="570.172.08"))
    assert s.components == {"driver": "570.172.08", "fabric_manager": "570.172.08", "nccl": "2.26.2",
                            "dcgm": "4.2.3", "doca": "2.9.1"}
    assert s.nccl_cuda == "12.8" and s.loaded_driver == "570.172.08"
    assert "nvidia-driver-550" not in s.packages


def test_sniffer_recognizes_it_and_garbage_is_a_parse_error():
    assert sniff(_dpkg()).name == "stack-versions"
    with pytest.raises(ParseError):
        parse_stack_versions("Package: libnccl2\nVersion: 2.26.2\n")


def _run(texts: dict[str, str]):
    bundles = [Bundle.virtual(h, {PATH: t}, {"host": h, "commands": []}) for h, t in texts.items()]
    run = analyze_bundles(bundles, Suite("t", ["stack.versions"]), profiles=ProfileResolver())
    return {n.host: next(c for c in n.checks if c.id == "stack.versions") for n in run.nodes}


def test_fabric_manager_mismatch_fails_the_node():
    r = _run({"n1": _dpkg(fm="570.124.06", loaded="570.172.08")})["n1"]
    assert r.status == "fail"
    [f] = r.findings
    assert f.code == "GPU_FABRIC_MANAGER_VERSION_MISMATCH" and f.observed == "570.124.06" and f.limit == "570.172.08"
    assert "--tags fabric_manager" in f.action


def test_installed_driver_not_loaded_warns():
    r = _run({"n1": _dpkg(driver="570.195.03", loaded="570.172.08")})["n1"]
    codes = sorted(f.code for f in r.findings)
    # the fabric manager follows the installed driver, not the loaded one: both are reported
    assert codes == ["GPU_FABRIC_MANAGER_VERSION_MISMATCH", "STACK_DRIVER_NOT_LOADED"]


def test_drift_names_the_odd_node_and_component():
    res = _run({"n1": _dpkg(), "n2": _dpkg(), "n3": _dpkg(nccl="2.21.5-1+cuda12.4")})
    assert [res[h].status for h in ("n1", "n2", "n3")] == ["pass", "pass", "warn"]
    comps = {(f.component, f.observed, f.limit) for f in res["n3"].findings}
    assert comps == {("nccl", "2.21.5", "2.26.2"), ("nccl cuda", "12.4", "12.8")}
    assert all(f.code == "STACK_VERSION_DRIFT" for f in res["n3"].findings)


def test_unprovisioned_node_is_skipped_not_failed():
    assert _run({"n1": "loaded\tnvidia\t\n"})["n1"].status == "skip"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["nvidia-driver-570", "nvidia-fabricmanager-570", "libnccl2", "loaded", "nvidia",
                                   "installed", "config-files", "\t", "\n", " ", "1:", "570.172.08", "-1+cuda12.8",
                                   "x", ""]), max_size=40).map("".join))
def test_any_text_parses_or_raises_parse_error(text):
    try:
        s = parse_stack_versions(text)
    except ParseError:
        return
    assert all(isinstance(v, str) and v for v in s.components.values())


def test_a_node_without_the_package_list_is_skipped_not_a_crash():
    """Bundles from before the probe existed, or a mix of old and new ones: the others are still judged."""
    bundles = [Bundle.virtual("old", {"host/uname.txt": "Linux old\n"}, {"host": "old", "commands": []}),
               Bundle.virtual("new", {PATH: _dpkg(loaded="570.172.08")}, {"host": "new", "commands": []})]
    run = analyze_bundles(bundles, Suite("t", ["stack.versions"]), profiles=ProfileResolver())
    got = {n.host: next(c for c in n.checks if c.id == "stack.versions") for n in run.nodes}
    assert got["old"].status == "skip" and PATH in got["old"].summary
    assert got["new"].status == "pass"
