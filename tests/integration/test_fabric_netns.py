"""A real link flap: a veth pair in a network namespace, set down and up with iproute2;
fabric.flaps finds it from the kernel's own /sys/class/net/<if>/carrier_changes,
read by the same reader the probe sends to nodes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from clusterkit.evidence.bundle import Bundle
from tests.fabric_helpers import analyze

pytestmark = pytest.mark.integration
READER = Path(__file__).resolve().parents[2] / "clusterkit" / "node_scripts" / "fabric_counters.py"


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)


@pytest.fixture
def netns():
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (`ip`) is not installed: apt-get install iproute2")
    name = f"ckfab-{uuid.uuid4().hex[:8]}"
    r = _ip("netns", "add", name)
    if r.returncode != 0:
        pytest.skip(f"network namespaces not permitted here (ip netns add: {r.stderr.strip()}); needs root/CAP_SYS_ADMIN")
    try:
        yield name
    finally:
        _ip("netns", "del", name)
        assert name not in _ip("netns", "list").stdout


def _snapshot(ns: str, phase: str) -> str:
    # `ip netns exec` mounts the namespace's own /sys, so root "/" shows its interfaces.
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-", "--phase", phase],
                       input=READER.read_bytes(), capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode()


def test_veth_flap_is_found_from_real_sysfs(netns):
    for cmd in (("link", "add", "ckA", "type", "veth", "peer", "name", "ckB"),
                ("link", "set", "ckA", "up"), ("link", "set", "ckB", "up")):
        r = _ip("-n", netns, *cmd)
        assert r.returncode == 0, r.stderr
    before = _snapshot(netns, "before")
    for _ in range(2):   # two flaps of the far end: ckA loses and regains carrier twice
        assert _ip("-n", netns, "link", "set", "ckB", "down").returncode == 0
        assert _ip("-n", netns, "link", "set", "ckB", "up").returncode == 0
    after = _snapshot(netns, "after")
    b_doc, a_doc = json.loads(before), json.loads(after)
    assert a_doc["net"]["ckA"]["carrier_changes"] - b_doc["net"]["ckA"]["carrier_changes"] == 4
    bundle = Bundle.virtual("veth-node", {"fabric/counters-before.json": before, "fabric/counters-after.json": after},
                            {"host": "veth-node", "declared": {"roce_interfaces": ["ckA"]}})
    run = analyze([bundle], "fabric.flaps")
    c = run.nodes[0].checks[0]
    assert c.status == "fail"
    f = c.findings[0]
    assert f.code == "FABRIC_CARRIER_CHANGES" and f.component.startswith("ckA") and f.observed == 4
    assert c.metrics["link_flaps_total"] == 2
    # an undisturbed interface passes: the same reading with nothing flapped
    still = Bundle.virtual("veth-node", {"fabric/counters-before.json": after,
                                         "fabric/counters-after.json": _snapshot(netns, "after")},
                           {"host": "veth-node", "declared": {"roce_interfaces": ["ckA"]}})
    assert analyze([still], "fabric.flaps").nodes[0].checks[0].status == "pass"
