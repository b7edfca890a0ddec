"""`ibnetdiscover -p` (ports report): recognized from its lines, parsed into the iblinkinfo link records,
and judged by fabric.ports like iblinkinfo. Fixtures are written from infiniband-diags' `dump_ports_report`
format: `%2s %5d %2d 0x%016x %s %s` then ` - %2s %5d %2d 0x%016x ( '%s' - '%s' )`, or 36 blanks and
`'%s'` for a port without a peer."""

from __future__ import annotations

from clusterkit.evidence.bundle import Bundle
from clusterkit.evidence.kinds import sniff
from clusterkit.parsers import ParseError
from clusterkit.parsers.ibnetdiscover import IBNETDISCOVER_PORTS, parse_ibnetdiscover_ports
from tests.fabric_helpers import analyze, node_check

SW, SW_GUID = "leaf01", "0x0c42a10300aa0001"


def _row(lid: int, port: int, guid: str, width: str, speed: str, slid: int, sport: int, name: str) -> list[str]:
    """Both ends of one host link, as ibnetdiscover -p prints each of them."""
    return [f"CA {lid:5d} {1:2d} {guid} {width} {speed} - SW {slid:5d} {sport:2d} {SW_GUID} ( '{name}' - '{SW}' )",
            f"SW {slid:5d} {sport:2d} {SW_GUID} {width} {speed} - CA {lid:5d} {1:2d} {guid} ( '{SW}' - '{name}' )"]


def fabric(*odd: tuple[int, str, str]) -> str:
    """Four HCAs at 4x EDR on one leaf (host i's link replaced by `odd` (i, width, speed)), one uplink,
    and two unconnected switch ports."""
    links = {i: ("4x", "EDR") for i in range(4)}
    links.update({i: (w, s) for i, w, s in odd})
    rows: list[str] = []
    for i, (w, s) in links.items():
        rows += _row(100 + i, 10 + i, f"0x506b4b0300cc02{i:02x}", w, s, 7, 10 + i, f"gpu{i:02d} HCA-1")
    rows.append(f"SW     7  1 {SW_GUID} 4x EDR - SW     9  1 0x0c42a10300bb0001 ( '{SW}' - 'spine01' )")
    rows.append(f"SW     7 37 {SW_GUID} 4x ???" + " " * 36 + f"'{SW}'")
    rows.append(f"SW     7 38 {SW_GUID} 4x SDR" + " " * 36 + f"'{SW}'")
    return "\n".join(rows) + "\n"


def ports(text: str):
    run = analyze([Bundle.virtual("n1", {IBNETDISCOVER_PORTS.path: text}, {"host": "n1", "declared": {}})],
                  "fabric.ports")
    return node_check(run, "n1", "fabric.ports")


def test_parses_both_ends_and_unconnected_ports():
    links = parse_ibnetdiscover_ports(fabric())
    ca = [l for l in links if l.section == "CA"]
    assert len(links) == 11 and len(ca) == 4
    first = ca[0]
    assert (first.node_name, first.node_guid, first.lid, first.port) == ("gpu00 HCA-1", "0x506b4b0300cc0200", 100, 1)
    assert (first.width, first.rate_gbps, first.peer_name, first.peer_lid, first.peer_port) == ("4X", 100, SW, 7, 10)
    uplink = next(l for l in links if l.peer_name == "spine01")
    assert uplink.peer_section == "Switch"
    free = [l for l in links if not l.peer_name]
    assert [(l.port, l.width, l.lane_gbps) for l in free] == [(37, None, None), (38, None, None)]


def test_healthy_fabric_passes_and_unconnected_ports_are_no_fault():
    c = ports(fabric())
    assert c.status == "pass", c.findings
    assert "4 host link(s)" in c.summary


def test_link_at_1x_among_4x_fails_naming_the_host_and_switch_port():
    c = ports(fabric((2, "1x", "EDR")))
    assert c.status == "fail"
    [f] = c.findings
    assert f.code == "FABRIC_PORT_RATE_LOW" and "gpu02 HCA-1 port 1" in f.component and "leaf01 port 12" in f.component
    assert (f.observed, f.limit) == (25, 100)


def test_link_at_sdr_among_edr_fails():
    c = ports(fabric((1, "4x", "SDR")))
    assert c.status == "fail"
    [f] = c.findings
    assert f.code == "IB_LINK_SPEED_BELOW_SWITCH" and "gpu01 HCA-1" in f.component
    assert (f.observed, f.limit) == (10, 100)


def test_fragment_and_grep_filtered_paste_are_recognized():
    lines = fabric((3, "2x", "EDR")).splitlines()
    assert sniff("\n".join(lines[6:8])) is IBNETDISCOVER_PORTS
    grepped = "\n".join(l for l in lines if "gpu03" in l)   # ibnetdiscover -p | grep gpu03
    assert sniff(grepped) is IBNETDISCOVER_PORTS
    assert sniff("\n".join(lines[-2:])) is IBNETDISCOVER_PORTS   # unconnected ports only
    assert ports(grepped).status == "pass"   # the odd link is judged against its switch's other links only


def test_unusable_text_is_a_parse_error():
    assert sniff("CA: gpu-0 HCA-1\nrandom text\n") is not IBNETDISCOVER_PORTS
    try:
        parse_ibnetdiscover_ports("no ports here\n")
    except ParseError as e:
        assert "ibnetdiscover -p" in str(e)
    else:
        raise AssertionError("no ParseError")
