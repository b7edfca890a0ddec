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

Output is bounded while it is read, because a node may print without end: stdout
up to MAX_CAPTURE_BYTES per command and MAX_HOST_CAPTURE_BYTES per connection (in
memory, or straight into a file the caller gives), stderr its last 64 KiB. Past a
limit the rest is discarded, the command is stopped, and the result says so.
"""

from __future__ import annotations

import errno
import getpass
import logging
import re
import select
import shlex
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterable, Literal, TypeVar

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST

from clusterkit.errors import ConfigError
from clusterkit.fleet.hostkeys import (KnownHosts, RefusedHostKey, UnknownHostKey, changed_key_message,
                                       known_hosts_name)
from clusterkit.inventory import HostSpec

# paramiko logs each failed handshake with a traceback; with no logging configured
# Python would print those on stderr. Each host's failure is reported once, as data.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

Outcome = Literal["ok", "unreachable", "timeout", "error"]
T = TypeVar("T")
R = TypeVar("R")

MAX_CAPTURE_BYTES = 64 * 1024 * 1024   # one command's stdout: the bound of an evidence file
MAX_HOST_CAPTURE_BYTES = 256 * 1024 * 1024   # all commands of one connection together
STDERR_TAIL_BYTES = 64 * 1024          # stderr: its end says what went wrong
# SSH flow control: what a node may send before we read it. paramiko buffers up to this per
# channel (2 MiB by default, x 64 hosts); 512 KiB still fills a LAN link.
CHANNEL_WINDOW_BYTES = 512 * 1024
NOT_FOUND_EXIT = 127                    # the shell's (and coreutils timeout's) "command not found"
REMOTE_GRACE_S = 1.0                    # the node's own timeout fires this long after ours...
REMOTE_KILL_AFTER_S = 5.0               # ...with SIGTERM, then SIGKILL this much later
_WRAPPER_NOT_FOUND = re.compile(rb"\Atimeout: failed to run command '(.*?)': No such file or directory\n?\Z")
_SUDO_NOT_FOUND = re.compile(rb"\Asudo: .*: command not found\n?\Z")
WATCHDOG_GRACE_S = 0.5                  # a command stuck inside paramiko is cut this long after its limit


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
    command: str                      # shlex.join of the argv (with sudo), without the `timeout` wrapper
    exit_code: int | None             # None: killed, or no exit status came back
    stdout: bytes = b""
    stderr: bytes = b""
    status: Literal["ok", "timeout", "error"] = "ok"
    message: str = ""
    local_start_epoch: float = 0.0    # the controller's clock around the command
    local_end_epoch: float = 0.0
    duration_s: float = 0.0
    truncated: bool = False           # stdout went past a limit: the rest was discarded, the command stopped
    stdout_bytes: int = 0             # stdout kept (in `stdout`, or in the file given to run())
    stdout_blank: bool = True         # what was kept is only whitespace (or nothing)
    discarded_bytes: int = 0          # stdout read past the limit and dropped

    def __post_init__(self) -> None:
        if self.stdout and not self.stdout_bytes:   # built by hand with its output
            self.stdout_bytes, self.stdout_blank = len(self.stdout), not self.stdout.strip()


class _Capped:
    """A stream kept up to `limit` bytes as it is read (in memory or into `sink`);
    what comes after is counted and dropped."""

    def __init__(self, limit: int, sink: IO[bytes] | None = None):
        self.limit, self.sink = max(0, limit), sink
        self.buf = bytearray()
        self.kept = self.dropped = 0
        self.blank = True

    def add(self, chunk: bytes) -> None:
        part = chunk[:self.limit - self.kept]
        if part:
            if self.sink is not None:
                self.sink.write(part)
            else:
                self.buf += part
            self.kept += len(part)
            self.blank = self.blank and not part.strip()
        self.dropped += len(chunk) - len(part)


class _Tail:
    """The last `size` bytes of a stream, in bounded memory."""

    def __init__(self, size: int = STDERR_TAIL_BYTES):
        self.size, self.buf = size, bytearray()

    def add(self, chunk: bytes) -> None:
        self.buf += chunk[-self.size:]
        if len(self.buf) > 2 * self.size:
            del self.buf[:-self.size]

    def value(self) -> bytes:
        return bytes(self.buf[-self.size:])


def _connect_failure(exc: BaseException, where: Endpoint, timeout_s: float, banner: str = "",
                     elapsed_s: float | None = None) -> HostFailure:
    """Classify a failure to open TCP + SSH to `where`, with what to do about it. `banner`: the
    server's SSH banner when one came; `elapsed_s`: how long the handshake ran."""
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
    if isinstance(exc, (UnknownHostKey, RefusedHostKey)):
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
    if isinstance(exc, paramiko.SSHException) and "indecipherable protocol version" in str(exc).lower():
        return HostFailure("unreachable", f"{addr} answered, but not as an SSH server ({str(exc)[:120]}): "
                                          f"check ansible_port")
    if isinstance(exc, paramiko.SSHException) and "banner" in str(exc).lower():
        if elapsed_s is not None and elapsed_s < 0.9 * timeout_s:
            return HostFailure("unreachable", f"{addr} closed the connection without an SSH banner: is it sshd "
                                              f"(check ansible_port), or does it refuse this client (MaxStartups, "
                                              f"tcp wrappers)?")
        return HostFailure("unreachable", f"{addr} accepted the connection but sent no SSH banner within "
                                          f"{timeout_s:g} s: is it sshd, and is it overloaded (MaxStartups)?")
    if banner and isinstance(exc, (paramiko.SSHException, EOFError, socket.timeout, TimeoutError)):
        # the server said who it is, then nothing more: a hung or overloaded sshd, or a tarpit
        return HostFailure("unreachable", f"{addr} sent its SSH banner ({banner[:80]}) but did not complete the "
                                          f"key exchange within {timeout_s:g} s: sshd there is hung or overloaded "
                                          f"(MaxStartups, a full disk, slow PAM or DNS), or it is not a real SSH "
                                          f"server; look at its log")
    if isinstance(exc, paramiko.SSHException) and elapsed_s is not None and elapsed_s >= timeout_s:
        return HostFailure("unreachable", f"{addr} accepted the connection but sent no SSH banner within "
                                          f"{timeout_s:g} s (it may have sent other lines: not sshd, or a tarpit): "
                                          f"check ansible_port and what listens there")
    if isinstance(exc, OSError):
        return HostFailure("unreachable", f"cannot connect to {addr}: {exc.strerror or exc}")
    return HostFailure("error", f"SSH to {addr} failed: {type(exc).__name__}: {exc}")


def _changed_key_with_path(exc: paramiko.BadHostKeyException, where: Endpoint, known: KnownHosts) -> HostFailure:
    name = known_hosts_name(where.address, where.port)
    return HostFailure("error", changed_key_message(name, exc.key, exc.expected_key, known.path))


def _login(where: Endpoint, sock: socket.socket | paramiko.Channel, known: KnownHosts,
           timeout_s: float) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    name = known_hosts_name(where.address, where.port)
    known.prepare(client, name)
    t0 = time.monotonic()
    try:
        client.connect(
            where.address, where.port, username=where.user, key_filename=where.key_file, sock=sock,
            # the handshake's limit outlasts the banner's, so a mute port reports "no banner"
            timeout=timeout_s + 1.0, banner_timeout=timeout_s, auth_timeout=timeout_s, channel_timeout=timeout_s,
            allow_agent=True, look_for_keys=where.key_file is None, transport_factory=known.transport_factory(name),
        )
    except paramiko.BadHostKeyException as e:
        client.close()
        raise _changed_key_with_path(e, where, known) from None
    except Exception as e:
        # the transport thread's own error (e.g. no banner) says more than the
        # "No existing session" the caller sees once that thread has ended
        t = client.get_transport()
        cause = (t.get_exception() if t is not None else None) or e
        banner = str(getattr(t, "remote_version", "") or "") if t is not None else ""
        client.close()
        raise _connect_failure(cause, where, timeout_s, banner, time.monotonic() - t0) from None
    return client


def _close_channel(chan: paramiko.Channel) -> None:
    """Close a channel without paramiko's race. `chan.fileno()` gave it a pipe that the transport
    thread writes a byte into whenever data arrives; `close()` closes that pipe, and a packet
    arriving in between wrote into a descriptor number another connection had just reused (seen
    as "Broken pipe" on other hosts while nodes flooded). Swapping the buffers' events first, under
    the buffers' own locks, ends those writes before the pipe goes."""
    quiet = threading.Event()
    chan.in_buffer.set_event(quiet)
    chan.in_stderr_buffer.set_event(quiet)
    try:
        chan.close()
    except (paramiko.SSHException, OSError, EOFError):
        pass   # the connection is gone: the next command (or close) says so


class _OutputFull(Exception):
    """Stdout went past its limit."""


def _kill(chan: paramiko.Channel | None) -> None:
    if chan is not None:
        try:
            _send_signal(chan, "KILL")
        except Exception:
            pass  # closing the channel still ends the session


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
    captured: int = 0                 # stdout bytes kept from this connection's commands so far

    @classmethod
    def open(cls, target: Target, known: KnownHosts, *, connect_timeout_s: float,
             deadline: Deadline | None = None) -> "SshSession":
        hops: list[paramiko.SSHClient] = []
        chain = [*target.jumps, target.endpoint]
        for where in chain:
            if where.key_file and not Path(where.key_file).is_file():
                raise HostFailure("error", f"private key {where.key_file} for {where} does not exist: fix "
                                           f"ansible_ssh_private_key_file or --identity")
        i = 0
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
                    i += 1
                    raise _connect_failure(e, nxt, timeout) from None
        except HostFailure as f:
            for h in reversed(hops):
                h.close()
            if i < len(target.jumps):      # the jump host itself failed
                f.message = f"jump host {target.jumps[i]}: {f.message}"
            elif target.jumps:
                f.message = f"via jump host {' -> '.join(str(j) for j in target.jumps)}: {f.message}"
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
            env: dict[str, str] | None = None, stdout_to: IO[bytes] | None = None,
            max_stdout_bytes: int = MAX_CAPTURE_BYTES) -> CommandResult:
        """Run one command; at `timeout_s` send it SIGKILL (non-root logins), close the
        channel, and let the node's `timeout` wrapper end it (root logins).

        Stdout goes to `stdout_to` when given (else `result.stdout`) as it arrives, up to
        `max_stdout_bytes` and what is left of this connection's MAX_HOST_CAPTURE_BYTES;
        past that the rest is discarded and the command stopped (`result.truncated`)."""
        command = shlex.join(self.wire_argv(argv, root))         # as recorded and reported
        res = CommandResult(command, None, local_start_epoch=time.time())
        t0 = time.monotonic()
        end = t0 + max(timeout_s, 0.0)
        out = _Capped(min(max_stdout_bytes, MAX_HOST_CAPTURE_BYTES - self.captured), stdout_to)
        err = _Tail()
        chan: paramiko.Channel | None = None
        watchdog: threading.Timer | None = None
        expired = threading.Event()

        def expire() -> None:
            # paramiko waits without a limit for the reply to exec and for window space in
            # sendall; closing the channel from here wakes both
            expired.set()
            if chan is not None:
                _close_channel(chan)

        try:
            transport = self.client.get_transport()
            if transport is None or not transport.is_active():
                raise HostFailure("unreachable", f"the connection to {self.target.name} was lost")
            chan = transport.open_session(window_size=CHANNEL_WINDOW_BYTES, timeout=max(0.1, end - time.monotonic()))
            watchdog = threading.Timer(max(0.0, end - time.monotonic()) + WATCHDOG_GRACE_S, expire)
            watchdog.daemon = True
            watchdog.start()
            for k, v in (env or {}).items():
                chan.set_environment_variable(k, v)   # sshd drops what AcceptEnv does not allow
            chan.exec_command(shlex.join(self.wire_argv(argv, root, timeout_s)))
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()                      # EOF: nothing waits on an open stdin
            fd = chan.fileno()
            while True:
                while chan.recv_ready() and not out.dropped:
                    out.add(chan.recv(65536))
                while chan.recv_stderr_ready():
                    err.add(chan.recv_stderr(65536))
                if out.dropped:
                    raise _OutputFull
                if chan.eof_received and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                if chan.closed:   # closed without EOF: by the watchdog, or the session was closed
                    raise EOFError("the channel was closed before the command's output ended")
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
            _kill(chan)
        except _OutputFull:
            # a node printing without end must not fill the controller: keep what fits, stop it
            res.status = "error"
            why = (f"this host's commands printed more than {MAX_HOST_CAPTURE_BYTES / 2**20:g} MiB together"
                   if out.limit < max_stdout_bytes else f"printed more than {max_stdout_bytes / 2**20:g} MiB")
            res.message = (f"{why} on stdout: the first {out.kept / 2**20:.1f} MiB are kept, the rest was "
                           f"discarded and the command stopped")
            _kill(chan)
        except HostFailure:
            raise
        except (paramiko.SSHException, OSError, EOFError) as e:
            if expired.is_set():
                res.status = "timeout"
                res.message = f"did not start or take its input within {timeout_s:g} s; abandoned"
            elif not self.alive:
                raise HostFailure("unreachable", f"the connection to {self.target.name} was lost during "
                                                 f"`{command}` ({type(e).__name__}: {e})") from None
            else:
                res.status = "error"
                res.message = f"could not run the command: {type(e).__name__}: {e}"
        finally:
            if watchdog is not None:
                watchdog.cancel()
            if chan is not None:
                _close_channel(chan)
            res.local_end_epoch = time.time()
            res.duration_s = time.monotonic() - t0
        self.captured += out.kept
        res.truncated, res.discarded_bytes = bool(out.dropped), out.dropped
        res.stdout, res.stdout_bytes, res.stdout_blank = bytes(out.buf), out.kept, out.blank
        res.stderr = err.value()
        if res.exit_code == NOT_FOUND_EXIT:
            # said by our `timeout` wrapper, which the user never typed: say it as a shell would
            res.stderr = _WRAPPER_NOT_FOUND.sub(rb"\1: command not found\n", res.stderr)
        elif res.exit_code == 1 and command.startswith("sudo -n ") and _SUDO_NOT_FOUND.match(res.stderr):
            # sudo exits 1 for a missing command; 127 is what "not installed" is everywhere else
            res.exit_code = NOT_FOUND_EXIT
            res.message = "sudo: command not found (sudo exits 1; recorded as 127)"
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
    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(items))), thread_name_prefix="clusterkit-ssh")
    try:
        results = list(pool.map(guarded, items))
    except BaseException:
        # Ctrl-C: start nothing more and return at once; the caller closes the connections,
        # which ends the commands still running
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results


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
