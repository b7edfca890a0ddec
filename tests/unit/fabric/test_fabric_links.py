"""fabric.links: both ends of a back-to-back link put together."""

from __future__ import annotations

import json

from clusterkit.evidence.bundle import Bundle
from tests.fabric_helpers import analyze

SCHEMA = "clusterkit.fabric.counters/1"


def _ibstat(guid: str, lid: int) -> str:
    return (f"CA 'mlx5_0'\n\tCA type: MT4129\n\tFirmware version: 28.39.1002\n\tNode GUID: {guid}\n\tPort 1:\n"
            f"\t\tState: Active\n\t\tPhysical state: LinkUp\n\t\tRate: 400\n\t\tBase lid: {lid}\n"
            f"\t\tPort GUID: {guid}\n\t\tLink layer: InfiniBand\n")


def _iblink(host: str, guid: str, lid: int, peer: str, peer_lid: int) -> str:
    return (f"CA: {host} mlx5_0:\n      {guid}   {lid:4d}    1[  ] ==( 4X        106.25 Gbps Active/  LinkUp)==>"
            f"   {peer_lid:4d}    1[  ] \"{peer} mlx5_0\" ( )\n")


def _snap(t: float, sym: int) -> str:
    return json.dumps({"schema": SCHEMA, "taken_at": t, "ib": {"mlx5_0/1": {
        "device": "mlx5_0", "port": 1, "counters": {"symbol_error": sym, "port_rcv_errors": 0}}}, "net": {}})


def _mlxlink(rx: str, tx: str = "1.0,1.0,1.0,1.0") -> str:
    return (f"State : Active\nRx Power Current [dBm] : {rx} [-10.4..5.4]\nTx Power Current [dBm] : {tx} [-8.4..5]\n"
            "Effective Physical BER : 15E-255\nRaw Physical BER : 1E-9\n")


def _node(host: str, guid: str, lid: int, peer: str, peer_lid: int, sym_after: int, rx: str) -> Bundle:
    return Bundle.virtual(host, {
        "fabric/ibstat.txt": _ibstat(guid, lid),
        "fabric/iblinkinfo.txt": _iblink(host, guid, lid, peer, peer_lid),
        "fabric/counters-before.json": _snap(0, 0), "fabric/counters-after.json": _snap(600, sym_after),
        "fabric/mlxlink-mlx5_0.txt": _mlxlink(rx)}, {"host": host, "declared": {}})


def test_one_direction_bad_blames_the_fiber_feeding_the_receiver():
    a = _node("nodeA", "0x0000000000000a01", 10, "nodeB", 20, 0, "-1.0,-1.1,-0.9,-1.0")
    b = _node("nodeB", "0x0000000000000b01", 20, "nodeA", 10, 700, "-1.0,-12.0,-0.9,-1.0")
    run = analyze([a, b], "fabric.counters", "fabric.optics", "fabric.links")
    links = run.cluster_checks[0]
    [f] = [f for f in links.findings if f.code == "FABRIC_LINK_BAD"]   # one link, not one per end
    assert "nodeB mlx5_0 port 1" in f.component and "nodeA mlx5_0 port 1" in f.component
    assert "lane 2" in f.message and "far end transmits normally" in f.message
    assert "direction nodeA mlx5_0 port 1 -> nodeB mlx5_0 port 1" in f.action and "re-terminate" in f.action


def test_both_directions_bad_replace_the_cable():
    a = _node("nodeA", "0x0000000000000a01", 10, "nodeB", 20, 500, "-1.0,-1.1,-0.9,-1.0")
    b = _node("nodeB", "0x0000000000000b01", 20, "nodeA", 10, 700, "-1.0,-1.0,-0.9,-1.0")
    run = analyze([a, b], "fabric.counters", "fabric.links")
    [f] = [f for f in run.cluster_checks[0].findings if f.code == "FABRIC_LINK_BAD"]
    assert "replace the cable" in f.action and f.severity == "fail"


def test_fleet_firmware_mismatch_names_the_odd_node():
    nodes = [Bundle.virtual(h, {"fabric/ibstat.txt": _ibstat(f"0x{i:016x}", i + 1).replace(
        "28.39.1002", "28.39.1002" if h != "n3" else "28.36.1010")}, {"host": h, "declared": {}})
        for i, h in enumerate(["n1", "n2", "n3", "n4"])]
    run = analyze(nodes, "fabric.ports", "fabric.links")
    f = next(f for f in run.cluster_checks[0].findings if f.code == "FABRIC_FIRMWARE_MISMATCH")
    assert "n3" in f.message and "28.39.1002" in f.action and "n1" not in f.message
