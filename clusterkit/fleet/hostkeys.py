"""Host key verification against known_hosts, as OpenSSH does it.

known_hosts is read here, not by paramiko, because /etc/ssh/ssh_known_hosts commonly
holds what paramiko does not understand: host patterns (`*.cluster.example`, `!bastion`,
`[10.0.0.*]:2222`), `@cert-authority` lines (the CA that signs the hosts' certificates)
and `@revoked` lines. Hashed names (`|1|salt|hash`) are understood too.

The decision, made once the server has shown its key and before any login:
- a key (or a certificate's CA, or a certificate's own key) listed `@revoked` for the
  host is refused, whatever else the files say;
- a host certificate is accepted when a `@cert-authority` line for the host names its
  signing CA, the signature holds, it is a host certificate, valid now, lists the host
  among its principals (or lists none) and has no critical options: OpenSSH's rules.
  A certificate from a CA not trusted for the host is judged by its plain key, as
  OpenSSH falls back;
- a plain key listed for the host is accepted; one that differs from a listed key of
  its type is always refused ("host key changed"), even with the opt-in below;
- an unknown host is refused unless the user passed the explicit opt-in (`accept_new`),
  which RECORDS the key in the known_hosts file (OpenSSH's `StrictHostKeyChecking=accept-new`).

The key types offered are ordered like OpenSSH orders them: certificate types first for
a host with a CA, then the types already known for the host.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
from paramiko.pkey import UnknownKeyType

from clusterkit.errors import ConfigError

USER_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
SYSTEM_KNOWN_HOSTS = Path("/etc/ssh/ssh_known_hosts")
CERT_SUFFIX = "-cert-v01@openssh.com"
SSH2_CERT_TYPE_HOST = 2
MARKERS = ("cert-authority", "revoked")


def known_hosts_name(address: str, port: int) -> str:
    """How known_hosts names a host: `addr` on port 22, `[addr]:port` otherwise."""
    return address if port == 22 else f"[{address}]:{port}"


def _bare(name: str) -> str:
    """`[addr]:port` -> `addr` (what a certificate's principals name)."""
    return name[1:].rpartition("]:")[0] if name.startswith("[") and "]:" in name else name


class UnknownHostKey(paramiko.SSHException):
    """The host's key is in no known_hosts file and new keys are not accepted."""

    def __init__(self, name: str, key: paramiko.PKey, path: Path, why: str = ""):
        self.name, self.key, self.path = name, key, path
        host, _, port = name.strip("[").partition("]:")
        scan = f"ssh-keyscan -p {port} {host}" if port else f"ssh-keyscan {host}"
        super().__init__(
            f"host key of {name} is not in {path} (the node offers {key.get_name()} {key.fingerprint}){why}: "
            f"compare that fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the node's console, "
            f"then add it (`{scan} >> {shlex.quote(str(path))}`), "
            f"or rerun with --accept-new-host-keys to record it"
        )


class RefusedHostKey(paramiko.SSHException):
    """The host's key is revoked, or its certificate is invalid: never accepted."""


def changed_key_message(name: str, offered: paramiko.PKey, expected: paramiko.PKey, path: Path) -> str:
    return (
        f"host key changed for {name}: {path} has {expected.get_name()} {expected.fingerprint}, the node offers "
        f"{offered.get_name()} {offered.fingerprint}; refused (--accept-new-host-keys never replaces a key). "
        f"If the node was reinstalled, verify the new key on its console and remove the old entry with "
        f"`ssh-keygen -R {shlex.quote(name)} -f {shlex.quote(str(path))}`; otherwise someone may be "
        f"intercepting the connection"
    )


def _pattern_re(pattern: str) -> re.Pattern[str]:
    """OpenSSH's match_pattern: `*` and `?` wildcards, nothing else special, case-insensitive."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern),
                      re.I | re.S)


@dataclass(frozen=True)
class Entry:
    """One known_hosts line."""

    marker: str | None               # None, "cert-authority" or "revoked"
    hosts: str                       # the host field as written
    key: paramiko.PKey
    source: Path
    lineno: int

    def matches(self, name: str) -> bool:
        """OpenSSH's match_hostname: a hashed name, or a pattern list where a matching
        `!pattern` excludes the host whatever else matches."""
        if self.hosts.startswith("|1|"):
            _, _, salt, digest = self.hosts.split("|", 3)
            try:
                want = base64.b64decode(digest)
                got = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(got, want)
        hit = False
        for pat in self.hosts.split(","):
            negated = pat.startswith("!")
            if _pattern_re(pat[1:] if negated else pat).fullmatch(name):
                if negated:
                    return False
                hit = True
        return hit


def parse_known_hosts(path: Path) -> list[Entry]:
    """Every usable line of a known_hosts file. Keys of types paramiko cannot use (ssh-dss,
    security keys) are skipped, as OpenSSH skips what it cannot use; a line that is not
    known_hosts syntax at all is a ConfigError naming file and line."""
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise ConfigError(f"{path}: unreadable known_hosts file: {e.strerror}") from None
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        marker = None
        if fields[0].startswith("@"):
            marker = fields.pop(0)[1:]
            if marker not in MARKERS:
                raise ConfigError(f"{path}:{n}: unknown known_hosts marker @{marker} (OpenSSH knows "
                                  f"{', '.join('@' + m for m in MARKERS)})")
        if len(fields) < 3:
            raise ConfigError(f"{path}:{n}: bad known_hosts line {line[:120]!r}: expected "
                              f"[@marker] hosts keytype base64-key [comment]")
        hosts, keytype, b64 = fields[:3]
        try:
            key = paramiko.PKey.from_type_string(keytype, base64.b64decode(b64, validate=True))
        except UnknownKeyType:
            continue
        except (binascii.Error, ValueError, paramiko.SSHException) as e:
            raise ConfigError(f"{path}:{n}: bad known_hosts line {line[:120]!r}: {e}") from None
        out.append(Entry(marker, hosts, key, path, n))
    return out


@dataclass(frozen=True)
class HostCertificate:
    """The fields of an OpenSSH certificate (PROTOCOL.certkeys) that host verification reads."""

    cert_type: int
    key_id: str
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int
    critical: bytes
    signature_key: bytes
    signed: bytes                    # the blob up to the signature: what the CA signed
    signature: bytes

    @classmethod
    def parse(cls, blob: bytes) -> "HostCertificate":
        m = paramiko.Message(blob)
        ctype = m.get_text()
        m.get_binary()                                  # nonce
        if ctype.startswith("ssh-ed25519"):
            m.get_binary()
        elif ctype.startswith("ecdsa-sha2-"):
            m.get_text()
            m.get_binary()
        elif ctype.startswith(("ssh-rsa", "rsa-sha2-")):
            m.get_mpint()
            m.get_mpint()
        else:
            raise RefusedHostKey(f"certificate type {ctype} is not supported")
        m.get_int64()                                   # serial
        cert_type = m.get_int()
        key_id = m.get_text()
        packed = paramiko.Message(m.get_binary())
        principals = []
        while packed.get_remainder():
            principals.append(packed.get_text())
        valid_after, valid_before = m.get_int64(), m.get_int64()
        critical = m.get_binary()
        m.get_binary()                                  # extensions
        m.get_binary()                                  # reserved
        signature_key = m.get_binary()
        signed = m.get_so_far()
        return cls(cert_type, key_id, tuple(principals), valid_after, valid_before, critical, signature_key,
                   signed, m.get_binary())

    def problem(self, host: str, now: float) -> str | None:
        """Why OpenSSH would refuse this certificate for `host` (sshkey_cert_check_host), or None."""
        if self.cert_type != SSH2_CERT_TYPE_HOST:
            return "it is not a host certificate"
        if now < self.valid_after:
            return "it is not yet valid"
        if now >= self.valid_before:
            return "it has expired"
        if self.principals and not any(_pattern_re(p).fullmatch(host) for p in self.principals):
            return f"{host} is not among its principals ({', '.join(self.principals)})"
        if self.critical:
            return "it carries critical options, which host certificates may not"
        return None


def _cert_blob(key: paramiko.PKey) -> bytes | None:
    blob = getattr(key, "public_blob", None)
    return blob.key_blob if blob is not None and str(blob.key_type).endswith(CERT_SUFFIX) else None


def _plain_types(key: paramiko.PKey) -> list[str]:
    """Key exchange names for a known key's type (an RSA key is offered as rsa-sha2-*)."""
    name = key.get_name()
    return ["rsa-sha2-512", "rsa-sha2-256"] if name == "ssh-rsa" else [name]


class KnownHosts:
    """The known_hosts files of one run, loaded once and shared by all connections.

    `path` is the file to check and record into; when None, the user's
    ~/.ssh/known_hosts (recorded into) and /etc/ssh/ssh_known_hosts (read only).
    """

    def __init__(self, path: Path | None = None, *, accept_new: bool = False, clock: Any = time.time):
        self.accept_new = accept_new
        self.path = (path or USER_KNOWN_HOSTS).expanduser()
        self.clock = clock
        self._entries: list[Entry] = []
        self._lock = threading.Lock()
        sources = [self.path] + ([SYSTEM_KNOWN_HOSTS] if path is None else [])
        for src in sources:
            if src.is_file():
                self._entries += parse_known_hosts(src)
            elif path is not None and not accept_new:
                raise ConfigError(f"{src}: known_hosts file not found (pass --accept-new-host-keys to create it)")

    def _for(self, name: str, marker: str | None) -> list[paramiko.PKey]:
        with self._lock:
            return [e.key for e in self._entries if e.marker == marker and e.matches(name)]

    def key_order(self, name: str, offered: tuple[str, ...]) -> tuple[str, ...]:
        """The host key types to offer for `name`: certificates first when a CA is trusted
        for it, then the types known for it, then the rest."""
        first = [t for k in self._for(name, None) for t in _plain_types(k)]
        if self._for(name, "cert-authority"):
            first = [t for t in offered if t.endswith(CERT_SUFFIX)] + first
        rank = {t: i for i, t in enumerate(dict.fromkeys(first))}
        return tuple(sorted(offered, key=lambda t: rank.get(t, len(rank))))

    def prepare(self, client: paramiko.SSHClient, name: str) -> None:
        """Make `client` ask this store about every key `name` offers."""
        client.set_missing_host_key_policy(_Policy(self))

    def transport_factory(self, name: str):
        """For SSHClient.connect: a Transport offering host key types in key_order()."""
        store = self

        class _Transport(paramiko.Transport):
            @property
            def preferred_keys(self) -> tuple[str, ...]:   # type: ignore[override]
                return store.key_order(name, super().preferred_keys)

        return lambda sock, **kw: _Transport(sock, **kw)

    def verify(self, name: str, key: paramiko.PKey) -> None:
        """Accept `key` for `name` or raise (RefusedHostKey, BadHostKeyException, UnknownHostKey)."""
        revoked = self._for(name, "revoked")
        plain = key
        why_not_cert = ""
        blob = _cert_blob(key)
        if blob is not None:
            cert = HostCertificate.parse(blob)
            ca = paramiko.PKey.from_type_string(paramiko.Message(cert.signature_key).get_text(), cert.signature_key)
            if any(r.asbytes() == ca.asbytes() for r in revoked):
                raise RefusedHostKey(f"{name}: its certificate's CA key {ca.get_name()} {ca.fingerprint} is marked "
                                     f"@revoked in known_hosts; refused")
            trusted = [k for k in self._for(name, "cert-authority") if k.asbytes() == ca.asbytes()]
            if trusted:
                why = cert.problem(_bare(name), self.clock())
                if why is None and not ca.verify_ssh_sig(cert.signed, paramiko.Message(cert.signature)):
                    why = "its CA signature does not verify"
                if why:
                    raise RefusedHostKey(f"{name}: host certificate {cert.key_id!r} refused: {why}")
                self._check_revoked(name, key, revoked)
                return
            why_not_cert = f"; its certificate's CA {ca.get_name()} {ca.fingerprint} is not a @cert-authority for it"
        self._check_revoked(name, plain, revoked)
        known = self._for(name, None)
        if any(k.asbytes() == plain.asbytes() for k in known):
            return
        same_type = [k for k in known if k.get_name() == plain.get_name()]
        if same_type:
            raise paramiko.BadHostKeyException(name, plain, same_type[0])
        if not self.accept_new:
            raise UnknownHostKey(name, plain, self.path, why_not_cert)
        self.record(name, plain)

    @staticmethod
    def _check_revoked(name: str, key: paramiko.PKey, revoked: list[paramiko.PKey]) -> None:
        if any(r.asbytes() == key.asbytes() for r in revoked):
            raise RefusedHostKey(f"{name}: host key {key.get_name()} {key.fingerprint} is marked @revoked in "
                                 f"known_hosts; refused (the node's key must be replaced)")

    def record(self, name: str, key: paramiko.PKey) -> None:
        """Append the key to the known_hosts file (the explicit opt-in only)."""
        line = f"{name} {key.get_name()} {key.get_base64()}\n"
        with self._lock:
            if any(e.marker is None and e.matches(name) and e.key.asbytes() == key.asbytes() for e in self._entries):
                return
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(line)
            self._entries.append(Entry(None, name, key, self.path, 0))


class _Policy(paramiko.MissingHostKeyPolicy):
    """Every key reaches here: the client itself is given no known keys, so that certificates,
    patterns and revocations are judged by KnownHosts.verify alone."""

    def __init__(self, store: KnownHosts):
        self.store = store

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        self.store.verify(hostname, key)
