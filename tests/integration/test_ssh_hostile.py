"""The SSH layer against hostile nodes and real-world known_hosts files, with real sshd servers:
output capped while it is read, certificate host keys and revocations honoured as OpenSSH
does, a server that stops after its banner named as such."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from clusterkit.fleet import ssh as ssh_mod
from clusterkit.fleet.collect import FleetOptions, collect_planned
from clusterkit.fleet.hostkeys import KnownHosts
from clusterkit.fleet.ssh import Endpoint, HostFailure, SshSession, Target
from clusterkit.inventory import HostSpec
from clusterkit.probes.registry import Command
from tests.support.sshd import SshdCluster, keygen

pytestmark = pytest.mark.integration
MIB = 1 << 20


def _target(node) -> Target:
    return Target(node.name, Endpoint(node.address, node.port, node.user, str(node.key)))


def _open(node, known: KnownHosts) -> SshSession:
    return SshSession.open(_target(node), known, connect_timeout_s=5)


# -- output bounded while read ---------------------------------------------------------------
def test_endless_stdout_is_capped_while_read_and_the_command_stopped(sshd_cluster, tmp_path):
    s = _open(sshd_cluster.nodes[0], KnownHosts(sshd_cluster.known_hosts))
    try:
        t0 = time.monotonic()
        r = s.run(["yes", "flood"], timeout_s=60, max_stdout_bytes=MIB)
        took = time.monotonic() - t0
        with open(tmp_path / "spool", "w+b") as f:
            r2 = s.run(["yes", "flood"], timeout_s=60, max_stdout_bytes=MIB, stdout_to=f)
            size = f.tell()
        after = s.run(["echo", "still usable"], timeout_s=10)
    finally:
        s.close()
    assert took < 30                                       # stopped at the cap, not at its 60 s limit
    assert r.truncated and r.stdout_bytes == len(r.stdout) == MIB and r.discarded_bytes > 0
    assert r.status == "error" and "printed more than 1 MiB" in r.message and "discarded" in r.message
    assert r2.truncated and r2.stdout == b"" and r2.stdout_bytes == size == MIB
    assert after.stdout == b"still usable\n"


def test_endless_stderr_keeps_only_its_tail(sshd_cluster):
    s = _open(sshd_cluster.nodes[0], KnownHosts(sshd_cluster.known_hosts))
    try:
        r = s.run(["sh", "-c", "yes flood >&2"], timeout_s=2)
    finally:
        s.close()
    assert r.status == "timeout" and 0 < len(r.stderr) <= ssh_mod.STDERR_TAIL_BYTES
    assert set(r.stderr.split(b"\n")[1:-1]) == {b"flood"}     # the latest lines, cut where the kill came


def test_a_flooding_node_costs_its_caps_in_the_bundle_per_probe_and_per_host(sshd_cluster, tmp_path, monkeypatch):
    monkeypatch.setattr("clusterkit.fleet.hostrun.MAX_CAPTURE_BYTES", 2 * MIB)
    monkeypatch.setattr(ssh_mod, "MAX_HOST_CAPTURE_BYTES", 3 * MIB)
    n = sshd_cluster.nodes[0]
    spec = HostSpec(name="flood", address=n.address, port=n.port, user=n.user, private_key_file=str(n.key))
    plan = [Command(f"host/flood{i}.txt", ["yes", "flood"], timeout_s=60) for i in range(3)]
    d = collect_planned([spec], {"flood": plan}, tmp_path / "run",
                        FleetOptions(known_hosts=sshd_cluster.known_hosts, connect_timeout_s=5))[0]
    meta = json.loads((d / "bundle.json").read_text())
    sizes = [(d / f"host/flood{i}.txt").stat().st_size if (d / f"host/flood{i}.txt").exists() else 0
             for i in range(3)]
    assert sizes == [2 * MIB, 1 * MIB, 0]                  # 2 MiB per probe, 3 MiB for the host
    c0, c1, c2 = meta["commands"]
    assert "printed more than 2 MiB" in c0["message"] and c0["discarded_bytes"] > 0
    assert "this host's commands printed more than 3 MiB together" in c1["message"]
    assert "this host's commands" in c2["message"]
    assert meta["outcome"] == "ok"                         # the host answered; its evidence says what was cut
    assert not list(d.rglob(".spool-*"))                   # no temporary file left behind


# -- banner only -----------------------------------------------------------------------------
def test_a_server_that_stops_after_its_banner_is_named_as_such(sshd_cluster):
    """A stand-in for a hung sshd: the banner of a real one, then nothing."""
    banner = socket.create_connection((sshd_cluster.nodes[0].address, sshd_cluster.nodes[0].port), timeout=5)
    real = banner.recv(256).split(b"\r\n")[0]
    banner.close()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    held = []

    def serve():
        c, _ = srv.accept()
        c.sendall(real + b"\r\n")
        held.append(c)

    threading.Thread(target=serve, daemon=True).start()
    with pytest.raises(HostFailure) as e:
        SshSession.open(Target("hung", Endpoint("127.0.0.1", srv.getsockname()[1], "root")), KnownHosts(None),
                        connect_timeout_s=1)
    srv.close()
    assert e.value.outcome == "unreachable"
    assert f"sent its SSH banner ({real.decode()})" in e.value.message
    assert "did not complete the key exchange within 1 s" in e.value.message


# -- known_hosts as OpenSSH writes it ----------------------------------------------------------
@pytest.fixture(scope="module")
def ca_nodes(sshd_available, tmp_path_factory):
    """Nodes whose host keys carry certificates: ok (valid for 127.0.0.1), expired, wrong principal."""
    root = tmp_path_factory.mktemp("ca")
    ca = keygen(root / "host_ca", "test-host-ca")
    other_ca = keygen(root / "other_ca", "untrusted-ca")
    cluster = SshdCluster(root / "sshd")
    specs = {"cert01": ("127.0.0.1", "-5m:+1h", ca), "cert02": ("127.0.0.1", "-2d:-1d", ca),
             "cert03": ("gpu99.example", "-5m:+1h", ca), "cert04": ("127.0.0.1", "-5m:+1h", other_ca)}
    nodes = {}
    for name, (principal, validity, signer) in specs.items():
        d = cluster.root / name
        d.mkdir()
        key = keygen(d / "ssh_host_ed25519_key", f"{name}-host")
        subprocess.run(["ssh-keygen", "-q", "-s", str(signer), "-I", name, "-h", "-n", principal, "-V", validity,
                        f"{key}.pub"], check=True, capture_output=True)
        nodes[name] = cluster.start(1, prefix="cert", extra_config=f"HostCertificate {key}-cert.pub")[0]
    yield cluster, nodes, Path(f"{ca}.pub").read_text().split()[:2], Path(f"{other_ca}.pub").read_text().split()[:2]
    cluster.stop()


def _kh(tmp_path: Path, *lines: str) -> Path:
    p = tmp_path / "known_hosts"
    p.write_text("# as in /etc/ssh/ssh_known_hosts\n" + "".join(line + "\n" for line in lines))
    return p


def test_a_host_certificate_signed_by_a_trusted_ca_is_accepted_without_any_plain_key(ca_nodes, tmp_path):
    _, nodes, (t, k), _ = ca_nodes
    kh = _kh(tmp_path, f"@cert-authority [127.0.0.1]:*,*.cluster.example {t} {k} host-ca")
    s = _open(nodes["cert01"], KnownHosts(kh))
    try:
        assert s.run(["echo", "in"], timeout_s=10).stdout == b"in\n"
    finally:
        s.close()


@pytest.mark.parametrize("node,why", [("cert02", "has expired"), ("cert03", "is not among its principals")])
def test_an_invalid_host_certificate_is_refused_with_the_reason(ca_nodes, tmp_path, node, why):
    _, nodes, (t, k), _ = ca_nodes
    kh = _kh(tmp_path, f"@cert-authority * {t} {k}")
    before = kh.read_text()
    with pytest.raises(HostFailure) as e:
        _open(nodes[node], KnownHosts(kh, accept_new=True))      # the opt-in never overrides a CA's verdict
    assert e.value.outcome == "error" and why in e.value.message and node in e.value.message
    assert kh.read_text() == before                              # nothing recorded


def test_a_certificate_from_an_untrusted_ca_is_judged_by_its_plain_key(ca_nodes, tmp_path):
    _, nodes, (t, k), _ = ca_nodes
    kh = _kh(tmp_path, f"@cert-authority * {t} {k}")
    with pytest.raises(HostFailure) as e:
        _open(nodes["cert04"], KnownHosts(kh))
    assert "is not a @cert-authority for it" in e.value.message and "--accept-new-host-keys" in e.value.message
    node = nodes["cert04"]
    kh2 = _kh(tmp_path, f"@cert-authority * {t} {k}", f"{node.known_hosts_name} {node.host_key_pub}")
    _open(node, KnownHosts(kh2)).close()                          # its plain key is known: accepted


def test_revoked_keys_and_cas_are_refused_even_when_listed(ca_nodes, sshd_cluster, tmp_path):
    _, nodes, (t, k), _ = ca_nodes
    plain = sshd_cluster.nodes[0]
    kh = _kh(tmp_path, f"{plain.known_hosts_name} {plain.host_key_pub}", f"@revoked * {plain.host_key_pub}")
    with pytest.raises(HostFailure) as e:
        _open(plain, KnownHosts(kh, accept_new=True))
    assert e.value.outcome == "error" and "is marked @revoked" in e.value.message
    kh = _kh(tmp_path, f"@cert-authority * {t} {k}", f"@revoked * {t} {k}")
    with pytest.raises(HostFailure) as e:
        _open(nodes["cert01"], KnownHosts(kh))
    assert "CA key" in e.value.message and "@revoked" in e.value.message


def test_collect_with_a_system_style_known_hosts_file(sshd_cluster, tmp_path):
    """The file of issue 18: CA and revocation lines for other hosts, patterns, hashed names and
    comments around the nodes' own lines. It used to stop clusterkit with exit 2."""
    other = keygen(tmp_path / "unrelated", "x")
    okey = " ".join(Path(f"{other}.pub").read_text().split()[:2])
    n1, n2 = sshd_cluster.nodes[:2]
    kh = _kh(tmp_path, f"@cert-authority *.corp.example,!bastion.corp.example {okey} corp-ca",
             f"@revoked * {okey}",
             f"10.9.*.* {okey}",
             f"{n1.known_hosts_name} {n1.host_key_pub}",
             f"{n2.known_hosts_name},gpu02 {n2.host_key_pub} comment here")
    inv = tmp_path / "hosts.ini"
    sshd_cluster.write_inventory(inv, [n1, n2])
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "clusterkit", "collect", "-i", str(inv), "--out", str(out),
                        "--known-hosts", str(kh), "--suite", "quick", "--connect-timeout", "5"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert all(json.loads((out / n.name / "bundle.json").read_text())["outcome"] == "ok" for n in (n1, n2))


def test_many_nodes_flooding_at_once_each_keep_their_own_connection(sshd_cluster, tmp_path, monkeypatch):
    """Stopping a flooding command closes its channel while data still arrives: no other
    host's connection may suffer for it (paramiko's select pipe once wrote into a reused
    descriptor, breaking other connections with "Broken pipe")."""
    monkeypatch.setattr("clusterkit.fleet.hostrun.MAX_CAPTURE_BYTES", 2 * MIB)
    n = sshd_cluster.nodes
    hosts = [HostSpec(name=f"f{i:02d}", address=n[i % 3].address, port=n[i % 3].port, user=n[0].user,
                      private_key_file=str(n[0].key)) for i in range(24)]
    plan = [Command(f"host/f{j}.txt", ["yes", "flood " * 10], timeout_s=120) for j in range(6)]
    dirs = collect_planned(hosts, {h.name: plan for h in hosts}, tmp_path / "run",
                           FleetOptions(known_hosts=sshd_cluster.known_hosts, connect_timeout_s=30, concurrency=24))
    lost = {d.name: m.get("message") for d in dirs if (m := json.loads((d / "bundle.json").read_text()))["outcome"] != "ok"}
    assert lost == {}
    assert all((d / "host/f5.txt").stat().st_size == 2 * MIB for d in dirs)
