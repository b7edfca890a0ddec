"""Fleet pieces that need no sshd: targets from the inventory, known_hosts, the bounded pool."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

import paramiko
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterkit.errors import ConfigError
from clusterkit.fleet.hostkeys import KnownHosts, UnknownHostKey, known_hosts_name
from clusterkit.fleet.ssh import Deadline, Endpoint, fan_out, target_for
from clusterkit.inventory import HostSpec


def _spec(args: str = "", **kw) -> HostSpec:
    import shlex

    return HostSpec(name=kw.pop("name", "gpu01"), address=kw.pop("address", "10.0.0.1"),
                    ssh_common_args=shlex.split(args), **kw)


@pytest.mark.parametrize("args, jumps", [
    ("", ()),
    ("-J ops@bastion:2222", (Endpoint("bastion", 2222, "ops"),)),
    ("-Jbastion", (Endpoint("bastion", 22, "alice"),)),
    ("-o ProxyJump=ops@b1,b2:2200", (Endpoint("b1", 22, "ops"), Endpoint("b2", 2200, "alice"))),
    ("-oProxyJump=[fd00::1]:2022", (Endpoint("fd00::1", 2022, "alice"),)),
    ("-o 'ProxyJump none'", ()),
    ("-o StrictHostKeyChecking=yes", ()),
])
def test_jump_hosts_from_ssh_common_args(args, jumps):
    t = target_for(_spec(args, user="root"), user="alice")
    assert t.jumps == jumps
    assert t.endpoint == Endpoint("10.0.0.1", 22, "root")


def test_inventory_values_win_over_defaults_and_jump_names_resolve_in_inventory(tmp_path):
    bastion = HostSpec(name="bastion", address="192.0.2.9", port=2201, user="ops", private_key_file="~/k/ops")
    node = _spec("-J bastion", user=None, private_key_file=None, become=True)
    t = target_for(node, user="alice", identity_file=tmp_path / "id", inventory=[bastion, node])
    assert t.endpoint == Endpoint("10.0.0.1", 22, "alice", str(tmp_path / "id"))
    assert t.jumps == (Endpoint("192.0.2.9", 2201, "ops", "~/k/ops"),)
    assert t.become
    own = target_for(_spec(user="root", private_key_file="~/.ssh/gpu"), user="alice", identity_file=tmp_path / "id")
    assert own.endpoint.user == "root" and own.endpoint.key_file == str(Path("~/.ssh/gpu").expanduser())


@pytest.mark.parametrize("jump", ["host:notaport", "host:0", "host:70000", "@:22"])
def test_bad_jump_host_is_a_config_error_naming_the_host(jump):
    with pytest.raises(ConfigError, match="host gpu01: jump host"):
        target_for(_spec(f"-J {jump}"))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_jump_text_gives_a_target_or_a_config_error(text):
    spec = HostSpec(name="n", address="10.0.0.1", ssh_common_args=["-J", text])
    try:
        t = target_for(spec, user="u")
    except ConfigError as e:
        assert "jump host" in str(e)
    else:
        assert all(j.address and 0 < j.port < 65536 for j in t.jumps)


def _key() -> paramiko.PKey:
    """A fresh ed25519 public key, as a node would offer it."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    line = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    return paramiko.Ed25519Key(data=base64.b64decode(line.split()[1]))


def test_known_hosts_matches_hashed_and_port_entries(tmp_path):
    key = _key()
    hashed = paramiko.HostKeys.hash_host("[10.0.0.5]:2222")
    kh = tmp_path / "known_hosts"
    kh.write_text(f"# comment\n{hashed} {key.get_name()} {key.get_base64()}\n")
    known = KnownHosts(kh)
    known.verify(known_hosts_name("10.0.0.5", 2222), key)            # accepted: no exception
    with pytest.raises(UnknownHostKey):
        known.verify(known_hosts_name("10.0.0.5", 22), key)


def test_unknown_key_is_refused_unless_opted_in_and_then_recorded_privately(tmp_path):
    key = _key()
    kh = tmp_path / "sub" / "known_hosts"
    with pytest.raises(ConfigError, match="not found"):
        KnownHosts(kh)
    (tmp_path / "empty").touch()
    refuse = KnownHosts(tmp_path / "empty")
    client = paramiko.SSHClient()
    refuse.prepare(client, "[h]:2")
    with pytest.raises(UnknownHostKey, match="--accept-new-host-keys") as e:
        client._policy.missing_host_key(client, "[h]:2", key)
    assert key.fingerprint in str(e.value) and "ssh-keyscan -p 2 h" in str(e.value)
    accept = KnownHosts(kh, accept_new=True)
    accept.prepare(client, "[h]:2")
    client._policy.missing_host_key(client, "[h]:2", key)
    client._policy.missing_host_key(client, "[h]:2", key)        # twice: one line
    assert kh.read_text() == f"[h]:2 {key.get_name()} {key.get_base64()}\n"
    assert stat.S_IMODE(kh.stat().st_mode) == 0o600
    KnownHosts(kh).verify("[h]:2", key)                             # recorded: accepted from now on


def test_unreadable_known_hosts_is_a_config_error(tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text("h ssh-ed25519 not-base64!!\n")
    with pytest.raises(ConfigError, match="known_hosts"):
        KnownHosts(kh)


def test_fan_out_bounds_concurrency_keeps_order_and_respects_the_deadline():
    lock, running, peak = threading.Lock(), [0], [0]

    def task(i: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return i * 10

    out = fan_out(list(range(12)), task, concurrency=3, deadline=Deadline(60), on_not_started=lambda i: -1)
    assert out == [i * 10 for i in range(12)] and peak[0] == 3
    late = fan_out(list(range(4)), lambda i: time.sleep(0.3) or i, concurrency=1, deadline=Deadline(0.2),
                   on_not_started=lambda i: -1)
    assert late == [0, -1, -1, -1]
