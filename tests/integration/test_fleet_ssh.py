"""The SSH layer against real sshd servers: quoting, host keys, jump hosts, become, timeouts."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from clusterkit.fleet.hostkeys import KnownHosts
from clusterkit.fleet.ssh import Endpoint, HostFailure, SshSession, Target, run_everywhere, target_for
from clusterkit.inventory import load_inventory

pytestmark = pytest.mark.integration


def _target(node, **kw) -> Target:
    return Target(node.name, Endpoint(node.address, node.port, node.user, str(node.key)), **kw)


def _open(node, known_hosts: Path, **kw) -> SshSession:
    return SshSession.open(_target(node, **kw), KnownHosts(known_hosts), connect_timeout_s=5)


def test_argv_with_shell_syntax_arrives_verbatim(sshd_cluster, tmp_path):
    marker = tmp_path / "pwned"
    nasty = ["a b", "it's", '"dq"', f"$(touch {marker})", f"`touch {marker}`", "; touch " + str(marker),
             "*", "$HOME", "back\\slash", "new\nline", ""]
    s = _open(sshd_cluster.nodes[0], sshd_cluster.known_hosts)
    try:
        r = s.run(["printf", "%s\\0", *nasty], timeout_s=10)
    finally:
        s.close()
    assert r.status == "ok" and r.exit_code == 0, r
    assert r.stdout.split(b"\0")[:-1] == [a.encode() for a in nasty]
    assert not marker.exists(), "an argument was run by the remote shell"


def test_stdin_stdout_stderr_and_exit_code(sshd_cluster):
    s = _open(sshd_cluster.nodes[0], sshd_cluster.known_hosts)
    try:
        script = b"import sys\nsys.stdout.write('out:' + sys.argv[0])\nsys.stderr.write('err')\nsys.exit(3)\n"
        r = s.run(["python3", "-"], timeout_s=20, stdin=script)
        missing = s.run(["clusterkit-no-such-tool", "--version"], timeout_s=10)
    finally:
        s.close()
    assert (r.exit_code, r.stdout, r.stderr, r.status) == (3, b"out:-", b"err", "ok")
    assert r.local_start_epoch <= r.local_end_epoch and r.duration_s > 0
    assert missing.exit_code == 127 and missing.status == "ok"


def test_hung_command_is_killed_at_its_timeout(sshd_cluster):
    tag = f"{time.time_ns() % 10**6 + 100}.5"          # a sleep argument no other process uses
    s = _open(sshd_cluster.nodes[0], sshd_cluster.known_hosts)
    try:
        t0 = time.monotonic()
        r = s.run(["sleep", tag], timeout_s=1)
        took = time.monotonic() - t0
        after = s.run(["echo", "still usable"], timeout_s=10)
    finally:
        s.close()
    assert r.status == "timeout" and r.exit_code is None and "killed" in r.message
    assert took < 3
    assert after.stdout == b"still usable\n", "the connection must survive a killed command"
    for _ in range(60):                                 # the node's own `timeout` ends it 1 s later
        if subprocess.run(["pgrep", "-f", f"^sleep {tag}$"], capture_output=True).returncode != 0:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"`sleep {tag}` still runs on the node after its timeout")


def test_changed_host_key_is_refused_even_with_accept_new(sshd_cluster, tmp_path):
    node = sshd_cluster.nodes[1]
    kh = sshd_cluster.write_known_hosts(tmp_path / "known_hosts", wrong_key_for=[node.name])
    before = kh.read_text()
    for accept in (False, True):
        with pytest.raises(HostFailure) as e:
            SshSession.open(_target(node), KnownHosts(kh, accept_new=accept), connect_timeout_s=5)
        assert e.value.outcome == "error"
        assert "host key changed" in e.value.message and "ssh-keygen -R" in e.value.message
    assert kh.read_text() == before, "a changed key must never be written"


def test_unknown_host_key_refused_then_recorded_only_with_opt_in(sshd_cluster, tmp_path):
    node = sshd_cluster.nodes[2]
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    with pytest.raises(HostFailure) as e:
        SshSession.open(_target(node), KnownHosts(kh), connect_timeout_s=5)
    assert e.value.outcome == "error"
    assert "not in" in e.value.message and "--accept-new-host-keys" in e.value.message
    assert kh.read_text() == "", "no silent accept"
    SshSession.open(_target(node), KnownHosts(kh, accept_new=True), connect_timeout_s=5).close()
    assert kh.read_text().split() == [node.known_hosts_name, *node.host_key_pub.split()]
    SshSession.open(_target(node), KnownHosts(kh), connect_timeout_s=5).close()   # now known


def test_unreachable_and_auth_failures_are_classified(sshd_cluster, tmp_path):
    known = KnownHosts(sshd_cluster.known_hosts)
    closed = Target("gone", Endpoint("127.0.0.1", sshd_cluster.closed_port(), "root"))
    with pytest.raises(HostFailure) as e:
        SshSession.open(closed, known, connect_timeout_s=5)
    assert e.value.outcome == "unreachable" and "connection refused" in e.value.message
    node = sshd_cluster.nodes[0]
    from tests.support.sshd import keygen
    stranger = keygen(tmp_path / "stranger")
    with pytest.raises(HostFailure) as e:
        SshSession.open(Target("x", Endpoint(node.address, node.port, node.user, str(stranger))), known,
                        connect_timeout_s=5)
    assert e.value.outcome == "error" and "authentication" in e.value.message
    assert "ansible_ssh_private_key_file" in e.value.message


def test_jump_host_from_inventory_proxyjump(sshd_cluster, tmp_path):
    jump, node = sshd_cluster.nodes[0], sshd_cluster.nodes[1]
    inv = sshd_cluster.write_inventory(tmp_path / "hosts.ini", [node], common_args={
        node.name: f"-o ProxyJump={jump.user}@127.0.0.1:{jump.port}"})
    spec = load_inventory(inv)[0].hosts[0]
    target = target_for(spec)
    assert target.jumps == (Endpoint("127.0.0.1", jump.port, jump.user, str(node.key)),)
    s = SshSession.open(target, KnownHosts(sshd_cluster.known_hosts), connect_timeout_s=5)
    try:
        r = s.run(["sh", "-c", 'echo "$SSH_CONNECTION"'], timeout_s=10)
    finally:
        s.close()
    assert r.exit_code == 0 and r.stdout.split()[-1] == str(node.port).encode()


def test_jump_host_really_carries_the_connection(sshd_available, tmp_path):
    """A jump host that forbids forwarding makes the same target fail: the traffic goes through it."""
    from tests.support.sshd import SshdCluster

    with SshdCluster(tmp_path) as c:
        node = c.start(1)[0]
        strict = c.start(1, extra_config="AllowTcpForwarding no")[0]
        known = KnownHosts(c.known_hosts)
        hop = Endpoint("127.0.0.1", strict.port, strict.user, str(strict.key))
        with pytest.raises(HostFailure) as e:
            SshSession.open(_target(node, jumps=(hop,)), known, connect_timeout_s=5)
        assert e.value.outcome == "unreachable" and e.value.message.startswith("via jump host")
        closed = Endpoint("127.0.0.1", c.closed_port(), "root")
        with pytest.raises(HostFailure) as e:
            SshSession.open(_target(node, jumps=(closed,)), known, connect_timeout_s=5)
        assert "via jump host" not in e.value.message and "connection refused" in e.value.message


@pytest.mark.skipif(subprocess.run(["sh", "-c", "command -v sudo"], capture_output=True).returncode != 0,
                    reason="sudo is not installed (apt-get install sudo)")
def test_become_runs_root_commands_through_sudo(sshd_cluster, tmp_path):
    node = sshd_cluster.nodes[0]
    inv = sshd_cluster.write_inventory(tmp_path / "hosts.ini", [node], host_vars={node.name: {"ansible_become": "true"}})
    target = target_for(load_inventory(inv)[0].hosts[0])
    assert target.become
    s = SshSession.open(target, KnownHosts(sshd_cluster.known_hosts), connect_timeout_s=5)
    try:
        as_root = s.run(["printenv", "SUDO_USER"], timeout_s=10, root=True)
        plain = s.run(["printenv", "SUDO_USER"], timeout_s=10, root=False)
    finally:
        s.close()
    assert "sudo -n --" in as_root.command and as_root.stdout == f"{node.user}\n".encode()
    assert "sudo" not in plain.command and plain.exit_code == 1   # not set: not run through sudo
    direct = _open(node, sshd_cluster.known_hosts)
    try:
        r = direct.run(["printenv", "SUDO_USER"], timeout_s=10, root=True)   # no become: runs directly
    finally:
        direct.close()
    assert "sudo" not in r.command and r.exit_code == 1


def test_run_everywhere_one_bad_host_does_not_stop_the_others(sshd_cluster):
    known = KnownHosts(sshd_cluster.known_hosts)
    targets = [_target(n) for n in sshd_cluster.nodes]
    targets.insert(1, Target("gone", Endpoint("127.0.0.1", sshd_cluster.closed_port(), "root")))
    out = run_everywhere(targets, ["uname", "-s"], known, concurrency=2, connect_timeout_s=5, timeout_s=10)
    assert isinstance(out["gone"], HostFailure) and out["gone"].outcome == "unreachable"
    assert [out[n.name].stdout for n in sshd_cluster.nodes] == [b"Linux\n"] * 3
