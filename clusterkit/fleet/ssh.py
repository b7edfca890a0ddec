"""SSH fan-out with paramiko: one connection per host, bounded concurrency, timeouts everywhere.

- `target_for(spec)` turns an inventory `HostSpec` into where and how to connect
  (address, port, user, key, ProxyJump hops, become).
- `SshSession.open(target, known_hosts, ...)` connects (through the jump hosts,
  each verified against known_hosts) and `session.run(argv, ...)` runs one command
  on that connection. Every argv element is quoted with `shlex.join`; `root=True`
  prefixes `sudo -n --` when the host allows become.
- `fan_out(items, task, concurrency, deadline)` runs `task` over the items on a
  bounded thread pool; items still queued when the deadline passes are not started.

Failures are `HostFailure(outcome, message)`: `unreachable` (refused, no route,
DNS, connect timeout), `timeout` (the run's deadline) or `error` (auth, host key,
protocol), with a message that says what to do. Nothing here logs secrets:
messages name key files, never passphrases or environment values.
"""

from __future__ import annotations

import errno
import getpass
import select
import shlex
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Literal, TypeVar

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST

from clusterkit.errors import ConfigError
from clusterkit.fleet.hostkeys import KnownHosts, UnknownHostKey, changed_key_message, known_hosts_name
from clusterkit.inventory import HostSpec

Outcome = Literal["ok", "unreachable", "timeout", "error"]
T = TypeVar("T")
R = TypeVar("R")

MAX_CAPTURE_BYTES = 64 * 1024 * 1024   # same bound as an evidence file; more is cut and marked
NOT_FOUND_EXIT = 127                    # the shell's (and coreutils timeout's) "command not found"
REMOTE_GRACE_S = 1.0                    # the node's own timeout fires this long after ours...
REMOTE_KILL_AFTER_S = 5.0               # ...with SIGTERM, then SIGKILL this much later


class Deadline:
    """The run's global deadline, on the monotonic clock."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0


@dataclass(frozen=True)
class Endpoint:
    """One SSH server to log in to (a node or a jump host)."""

    address: str
    port: int = 22
    user: str | None = None
    key_file: str | None = None

    def __str__(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.address}:{self.port}"


@dataclass(frozen=True)
class Target:
    name: str
    endpoint: Endpoint
    jumps: tuple[Endpoint, ...] = ()
    become: bool = False


def _parse_hop(text: str, inventory: dict[str, HostSpec], default_user: str | None,
               default_key: str | None) -> Endpoint:
    """`[user@]host[:port]` (or an inventory host name) as ProxyJump writes it."""
    user, _, hostport = text.rpartition("@")
    host, port = hostport, None
    if hostport.startswith("["):                       # [v6addr]:port
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    if not host or (port is not None and not (port.isdigit() and 0 < int(port) < 65536)):
        raise ConfigError(f"jump host '{text}' is not [user@]host[:port] (from ansible_ssh_common_args)")
    spec = inventory.get(host)
    if spec is not None:
        return Endpoint(spec.address, int(port or spec.port), user or spec.user or default_user,
                        spec.private_key_file or default_key)
    return Endpoint(host, int(port or 22), user or default_user, default_key)


def target_for(spec: HostSpec, *, user: str | None = None, identity_file: Path | None = None,
               inventory: Iterable[HostSpec] = ()) -> Target:
    """Where and how to reach `spec`. As with Ansible, inventory variables win over
    the defaults `user`/`identity_file`; a jump host named like an inventory host
    is reached with that host's address, port, user and key."""
    default_user = user or getpass.getuser()
    default_key = str(identity_file) if identity_file else None
    key = spec.private_key_file or default_key
    if key:
        key = str(Path(key).expanduser())
    by_name = {h.name: h for h in inventory}
    jumps: tuple[Endpoint, ...] = ()
    if spec.jump_host and spec.jump_host.lower() != "none":
        try:
            jumps = tuple(_parse_hop(h.strip(), by_name, default_user, key)
                          for h in spec.jump_host.split(",") if h.strip())
        except ConfigError as e:
            raise ConfigError(f"host {spec.name}: {e}") from None
    return Target(spec.name, Endpoint(spec.address, spec.port, spec.user or default_user, key), jumps, spec.become)


class HostFailure(Exception):
    """A host that cannot be (or can no longer be) worked on."""

    def __init__(self, outcome: Outcome, message: str):
        super().__init__(message)
        self.outcome = outcome
        self.message = message


@dataclass
class CommandResult:
    command: str                      # what was executed remotely (shlex.join of the argv)
    exit_code: int | None             # None: killed, or no exit status came back
    stdout: bytes = b""
    stderr: bytes = b""
    status: Literal["ok", "timeout", "error"] = "ok"
    message: str = ""
    local_start_epoch: float = 0.0    # the controller's clock around the command
    local_end_epoch: float = 0.0
    duration_s: float = 0.0
    truncated: bool = False


def _connect_failure(exc: BaseException, where: Endpoint, timeout_s: float) -> HostFailure:
    """Classify a failure to open TCP + SSH to `where`, with what to do about it."""
    addr = f"{where.address}:{where.port}"
    if isinstance(exc, socket.gaierror):
        return HostFailure("unreachable", f"cannot resolve '{where.address}': set ansible_host to its address "
                                          f"or fix DNS ({exc.strerror or exc})")
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return HostFailure("unreachable", f"connection refused by {addr}: check that sshd runs there and that "
                                          f"ansible_port is right")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return HostFailure("unreachable", f"no answer from {addr} within {timeout_s:g} s: check that the node "
                                          f"is powered on and reachable (address, VLAN, firewall)")
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN):
        return HostFailure("unreachable", f"no route to {addr} ({exc.strerror}): check the node is up and "
                                          f"the controller's network reaches it")
    if isinstance(exc, (ConnectionResetError, EOFError)):
        return HostFailure("unreachable", f"{addr} closed the connection during the SSH handshake: check sshd's "
                                          f"log there (MaxStartups, AllowUsers, tcp wrappers)")
    if isinstance(exc, UnknownHostKey):
        return HostFailure("error", str(exc))
    if isinstance(exc, paramiko.PasswordRequiredException):
        return HostFailure("error", f"private key {where.key_file} is passphrase-protected: load it into "
                                    f"ssh-agent (`ssh-add {where.key_file}`); clusterkit never asks for passphrases")
    if isinstance(exc, paramiko.AuthenticationException):
        key = f"key {where.key_file}" if where.key_file else "ssh-agent and default keys"
        return HostFailure("error", f"authentication as {where.user}@{addr} failed ({key}): check ansible_user "
                                    f"and ansible_ssh_private_key_file, and that the key is in the node's "
                                    f"authorized_keys")
    if isinstance(exc, paramiko.ChannelException):
        return HostFailure("unreachable", f"the jump host could not connect to {addr} ({exc.text}): check the "
                                          f"node is up and reachable from the jump host")
    if isinstance(exc, paramiko.SSHException) and "banner" in str(exc).lower():
        return HostFailure("unreachable", f"{addr} accepted the connection but sent no SSH banner within "
                                          f"{timeout_s:g} s: is it sshd, and is it overloaded (MaxStartups)?")
    if isinstance(exc, OSError):
        return HostFailure("unreachable", f"cannot connect to {addr}: {exc.strerror or exc}")
    return HostFailure("error", f"SSH to {addr} failed: {type(exc).__name__}: {exc}")


def _changed_key_with_path(exc: paramiko.BadHostKeyException, where: Endpoint, known: KnownHosts) -> HostFailure:
    name = known_hosts_name(where.address, where.port)
    return HostFailure("error", changed_key_message(name, exc.key, exc.expected_key, known.path))


def _login(where: Endpoint, sock: socket.socket | paramiko.Channel, known: KnownHosts,
           timeout_s: float) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    known.prepare(client, known_hosts_name(where.address, where.port))
    try:
        client.connect(
            where.address, where.port, username=where.user, key_filename=where.key_file, sock=sock,
            timeout=timeout_s, banner_timeout=timeout_s, auth_timeout=timeout_s, channel_timeout=timeout_s,
            allow_agent=True, look_for_keys=where.key_file is None,
        )
    except paramiko.BadHostKeyException as e:
        client.close()
        raise _changed_key_with_path(e, where, known) from None
    except Exception as e:
        client.close()
        raise _connect_failure(e, where, timeout_s) from None
    return client


def _send_signal(chan: paramiko.Channel, name: str) -> None:
    """RFC 4254 "signal" request (OpenSSH >= 7.9 delivers it to the command)."""
    m = paramiko.Message()
    m.add_byte(cMSG_CHANNEL_REQUEST)
    m.add_int(chan.remote_chanid)
    m.add_string("signal")
    m.add_boolean(False)
    m.add_string(name)
    chan.transport._send_user_message(m)  # noqa: SLF001 - paramiko has no public call for this request


@dataclass
class SshSession:
    """One SSH connection to a host (plus those to its jump hosts), reused by all its commands."""

    target: Target
    client: paramiko.SSHClient
    hops: list[paramiko.SSHClient] = field(default_factory=list)

    @classmethod
    def open(cls, target: Target, known: KnownHosts, *, connect_timeout_s: float,
             deadline: Deadline | None = None) -> "SshSession":
        hops: list[paramiko.SSHClient] = []
        chain = [*target.jumps, target.endpoint]
        try:
            sock: socket.socket | paramiko.Channel | None = None
            for i, where in enumerate(chain):
                timeout = connect_timeout_s if deadline is None else min(connect_timeout_s, deadline.remaining())
                if timeout <= 0:
                    raise HostFailure("timeout", f"the run's deadline ({deadline.seconds:g} s) ran out before "
                                                 f"{target.name} was connected")
                if sock is None:
                    try:
                        sock = socket.create_connection((where.address, where.port), timeout=timeout)
                    except OSError as e:
                        raise _connect_failure(e, where, timeout) from None
                client = _login(where, sock, known, timeout)
                if i == len(chain) - 1:
                    return cls(target, client, hops)
                hops.append(client)
                nxt = chain[i + 1]
                try:
                    sock = client.get_transport().open_channel(  # type: ignore[union-attr]
                        "direct-tcpip", (nxt.address, nxt.port), ("127.0.0.1", 0), timeout=timeout)
                except Exception as e:
                    raise _connect_failure(e, nxt, timeout) from None
        except HostFailure as f:
            for h in reversed(hops):
                h.close()
            if hops:
                via = " -> ".join(str(j) for j in target.jumps)
                f.message = f"via jump host {via}: {f.message}"
                f.args = (f.message,)
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def server_version(self) -> str:
        t = self.client.get_transport()
        return t.remote_version if t is not None else ""

    @property
    def alive(self) -> bool:
        t = self.client.get_transport()
        return t is not None and t.is_active()

    def wire_argv(self, argv: list[str], root: bool, timeout_s: float | None = None) -> list[str]:
        """The argv actually run: `sudo -n --` first for root commands on become hosts,
        and coreutils `timeout` around it. Closing an SSH channel does not end a
        command without a pty, and sshd refuses "signal" requests for root logins,
        so the node ends an overrun command itself, just after the controller gave up."""
        wire = ["sudo", "-n", "--", *argv] if root and self.target.become else list(argv)
        if timeout_s is not None:
            wire = ["timeout", "-k", f"{REMOTE_KILL_AFTER_S:g}", f"{timeout_s + REMOTE_GRACE_S:g}", *wire]
        return wire

    def run(self, argv: list[str], *, timeout_s: float, stdin: bytes | None = None, root: bool = False,
            env: dict[str, str] | None = None) -> CommandResult:
        """Run one command; at `timeout_s` send it SIGKILL (non-root logins), close the
        channel, and let the node's `timeout` wrapper end it (root logins)."""
        command = shlex.join(self.wire_argv(argv, root, timeout_s))
        res = CommandResult(command, None, local_start_epoch=time.time())
        t0 = time.monotonic()
        end = t0 + max(timeout_s, 0.0)
        out, err = bytearray(), bytearray()
        chan: paramiko.Channel | None = None
        try:
            transport = self.client.get_transport()
            if transport is None or not transport.is_active():
                raise HostFailure("unreachable", f"the connection to {self.target.name} was lost")
            chan = transport.open_session(timeout=max(0.1, end - time.monotonic()))
            for k, v in (env or {}).items():
                chan.set_environment_variable(k, v)   # sshd drops what AcceptEnv does not allow
            chan.exec_command(command)
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()                      # EOF: nothing waits on an open stdin
            fd = chan.fileno()
            while True:
                while chan.recv_ready():
                    out += chan.recv(65536)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if chan.eof_received and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                select.select([fd], [], [], min(left, 1.0))
            # the exit status follows the EOF closely; do not wait past the timeout for it
            if chan.status_event.wait(max(0.0, min(end - time.monotonic(), 5.0))):
                code = chan.recv_exit_status()
                res.exit_code = code if code >= 0 else None
                if res.exit_code is None:
                    res.status = "error"
                    res.message = "the command was ended by a signal (no exit status)"
            else:
                res.status = "error"
                res.message = "the command's output ended but no exit status came back"
        except TimeoutError:
            res.status = "timeout"
            res.message = (f"did not finish within {timeout_s:g} s and was killed")
            if chan is not None:
                try:
                    _send_signal(chan, "KILL")
                except Exception:
                    pass  # the close below still ends the session
        except HostFailure:
            raise
        except (paramiko.SSHException, OSError, EOFError) as e:
            if not self.alive:
                raise HostFailure("unreachable", f"the connection to {self.target.name} was lost during "
                                                 f"`{command}` ({type(e).__name__}: {e})") from None
            res.status = "error"
            res.message = f"could not run the command: {type(e).__name__}: {e}"
        finally:
            if chan is not None:
                chan.close()
            res.local_end_epoch = time.time()
            res.duration_s = time.monotonic() - t0
        res.truncated = len(out) > MAX_CAPTURE_BYTES
        res.stdout, res.stderr = bytes(out[:MAX_CAPTURE_BYTES]), bytes(err[-65536:])
        return res

    def close(self) -> None:
        self.client.close()
        for h in reversed(self.hops):
            h.close()


def fan_out(items: list[T], task: Callable[[T], R], *, concurrency: int, deadline: Deadline,
            on_not_started: Callable[[T], R]) -> list[R]:
    """`task(item)` for every item on at most `concurrency` threads, results in item order.

    An item whose turn comes after the deadline gets `on_not_started(item)`.
    `task` must not raise: one host's trouble is its own result, never the run's."""

    def guarded(item: T) -> R:
        return on_not_started(item) if deadline.expired else task(item)

    if not items:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(items))),
                            thread_name_prefix="clusterkit-ssh") as pool:
        return list(pool.map(guarded, items))


def run_everywhere(targets: list[Target], argv: list[str], known: KnownHosts, *, concurrency: int = 64,
                   connect_timeout_s: float = 10.0, timeout_s: float = 60.0,
                   deadline_s: float = 1800.0) -> dict[str, CommandResult | HostFailure]:
    """One command on every target (connect, run, close): the simplest fan-out."""
    deadline = Deadline(deadline_s)

    def one(t: Target) -> CommandResult | HostFailure:
        try:
            s = SshSession.open(t, known, connect_timeout_s=connect_timeout_s, deadline=deadline)
        except HostFailure as f:
            return f
        try:
            return s.run(argv, timeout_s=min(timeout_s, max(deadline.remaining(), 0.0)))
        except HostFailure as f:
            return f
        finally:
            s.close()

    def late(t: Target) -> HostFailure:
        return HostFailure("timeout", f"not started: the run's deadline ({deadline_s:g} s) ran out first")

    return dict(zip((t.name for t in targets),
                    fan_out(targets, one, concurrency=concurrency, deadline=deadline, on_not_started=late)))
