"""The cluster-wide NCCL step: launched on the first GPU node over real SSH, recorded in `_cluster/`.

There is no GPU or multi-host MPI here, so the launch itself fails on the node; what is
tested is what a user relies on: where it ran, with which argv/env/hostfile, that the
node's own output is kept, and that analysis turns it into a clear multi-node verdict."""

from __future__ import annotations

import json

import pytest

from clusterkit.analysis import ProfileResolver
from clusterkit.fleet.collect import FleetOptions, collect_bundles
from clusterkit.inventory import load_inventory
from clusterkit.pipeline import analyze_paths
from clusterkit.suites import load_suite

pytestmark = pytest.mark.integration


def test_multi_node_run_is_launched_on_the_first_gpu_node(sshd_cluster, tmp_path):
    nodes = sshd_cluster.nodes[:2]
    hv = {n.name: {"gpu_model": "h100-sxm5-80gb", "gpu_count": 1} for n in nodes}
    inv_path = sshd_cluster.write_inventory(tmp_path / "hosts.ini", nodes, host_vars=hv)
    inv, _ = load_inventory(inv_path)
    suite_path = tmp_path / "suite.toml"
    suite_path.write_text('checks = ["host.reachable", "nccl.multi_node"]\n'
                          '[params."nccl.multi_node"]\nbinary = "/nonexistent/all_reduce_perf"\ntimeout_s = 60\n')
    out = tmp_path / "run"
    dirs = collect_bundles(inv.hosts, load_suite(str(suite_path)), ProfileResolver(), out,
                           FleetOptions(known_hosts=sshd_cluster.known_hosts, connect_timeout_s=5))
    assert out / "_cluster" in dirs
    meta = json.loads((out / "_cluster" / "bundle.json").read_text())
    (cmd,) = meta["commands"]
    assert cmd["launched_on"] == nodes[0].name
    assert cmd["argv"][0] == "mpirun" and "/nonexistent/all_reduce_perf" in cmd["argv"]
    assert cmd["hostfile"].count("slots=1") == 2 and cmd["hosts"] == [n.name for n in nodes]
    text = (out / "_cluster" / "nccl" / "all_reduce_perf.txt").read_text()
    assert text.strip(), "the launcher's own output is kept as evidence"
    run = analyze_paths([out], suite=str(suite_path))
    (multi,) = [c for c in run.cluster_checks if c.id == "nccl.multi_node"]
    assert multi.status in ("fail", "error") and multi.findings
    assert "hostfile" in multi.summary and multi.findings[0].code == "NCCL_TEST_FAILED"  # mpirun's own words
    assert run.failed()


def test_no_cluster_step_for_fewer_than_two_gpu_nodes(sshd_cluster, tmp_path):
    inv_path = sshd_cluster.write_inventory(tmp_path / "hosts.ini", sshd_cluster.nodes[:2])  # no GPUs declared
    inv, _ = load_inventory(inv_path)
    suite_path = tmp_path / "suite.toml"
    suite_path.write_text('checks = ["host.reachable", "nccl.multi_node"]\n')
    out = tmp_path / "run"
    collect_bundles(inv.hosts, load_suite(str(suite_path)), ProfileResolver(), out,
                    FleetOptions(known_hosts=sshd_cluster.known_hosts, connect_timeout_s=5))
    meta = json.loads((out / "_cluster" / "bundle.json").read_text())
    assert meta["commands"] == [] and "fewer than two reachable GPU nodes" in meta["note"]
    run = analyze_paths([out], suite=str(suite_path))
    assert not run.failed()


def test_the_hostfile_is_a_private_temporary_file_removed_after_the_run(sshd_cluster, tmp_path):
    """Not a predictable /tmp/clusterkit-hosts-<epoch>.txt written without exclusive creation
    and left behind: mktemp on the launch node, then removed."""
    import re
    from pathlib import Path

    nodes = sshd_cluster.nodes[:2]
    hv = {n.name: {"gpu_model": "h100-sxm5-80gb", "gpu_count": 1} for n in nodes}
    inv, _ = load_inventory(sshd_cluster.write_inventory(tmp_path / "hosts.ini", nodes, host_vars=hv))
    suite_path = tmp_path / "suite.toml"
    suite_path.write_text('checks = ["nccl.multi_node"]\n[params."nccl.multi_node"]\n'
                          'binary = "/nonexistent/all_reduce_perf"\ntimeout_s = 60\n')
    before = set(Path("/tmp").glob("clusterkit-hosts*"))
    collect_bundles(inv.hosts, load_suite(str(suite_path)), ProfileResolver(), tmp_path / "run",
                    FleetOptions(known_hosts=sshd_cluster.known_hosts, connect_timeout_s=5))
    (cmd,) = json.loads((tmp_path / "run" / "_cluster" / "bundle.json").read_text())["commands"]
    used = cmd["argv"][cmd["argv"].index("--hostfile") + 1]
    assert re.fullmatch(r"/tmp/clusterkit-hosts\.[A-Za-z0-9]{10}", used), used
    assert cmd["hostfile"].count("slots=1") == 2
    assert set(Path("/tmp").glob("clusterkit-hosts*")) == before      # nothing left behind
