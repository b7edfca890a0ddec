"""Host key verification against known_hosts, OpenSSH style.

A key that matches is accepted. An unknown host is refused unless the user
passed the explicit opt-in (`accept_new`), which RECORDS the key in the
known_hosts file (like OpenSSH's `StrictHostKeyChecking=accept-new`). A key
that differs from the recorded one is always refused: paramiko raises
`BadHostKeyException` before any policy is asked, so the opt-in cannot reach it.
"""

from __future__ import annotations

import os
import shlex
import threading
from pathlib import Path

import paramiko
from paramiko.hostkeys import InvalidHostKey

from clusterkit.errors import ConfigError

USER_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
SYSTEM_KNOWN_HOSTS = Path("/etc/ssh/ssh_known_hosts")


def known_hosts_name(address: str, port: int) -> str:
    """How known_hosts names a host: `addr` on port 22, `[addr]:port` otherwise."""
    return address if port == 22 else f"[{address}]:{port}"


class UnknownHostKey(paramiko.SSHException):
    """The host's key is in no known_hosts file and new keys are not accepted."""

    def __init__(self, name: str, key: paramiko.PKey, path: Path):
        self.name, self.key, self.path = name, key, path
        host, _, port = name.strip("[").partition("]:")
        scan = f"ssh-keyscan -p {port} {host}" if port else f"ssh-keyscan {host}"
        super().__init__(
            f"host key of {name} is not in {path} (the node offers {key.get_name()} {key.fingerprint}): "
            f"compare that fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the node's console, "
            f"then add it (`{scan} >> {shlex.quote(str(path))}`), "
            f"or rerun with --accept-new-host-keys to record it"
        )


def changed_key_message(name: str, offered: paramiko.PKey, expected: paramiko.PKey, path: Path) -> str:
    return (
        f"host key changed for {name}: {path} has {expected.get_name()} {expected.fingerprint}, the node offers "
        f"{offered.get_name()} {offered.fingerprint}; refused (--accept-new-host-keys never replaces a key). "
        f"If the node was reinstalled, verify the new key on its console and remove the old entry with "
        f"`ssh-keygen -R {shlex.quote(name)} -f {shlex.quote(str(path))}`; otherwise someone may be "
        f"intercepting the connection"
    )


class KnownHosts:
    """The known_hosts files of one run, loaded once and shared by all connections.

    `path` is the file to check and record into; when None, the user's
    ~/.ssh/known_hosts (recorded into) and /etc/ssh/ssh_known_hosts (read only).
    """

    def __init__(self, path: Path | None = None, *, accept_new: bool = False):
        self.accept_new = accept_new
        self.path = (path or USER_KNOWN_HOSTS).expanduser()
        self._keys = paramiko.HostKeys()
        self._lock = threading.Lock()
        sources = [self.path] + ([SYSTEM_KNOWN_HOSTS] if path is None else [])
        for src in sources:
            if src.is_file():
                try:
                    self._keys.load(str(src))
                except InvalidHostKey as e:
                    raise ConfigError(f"{src}: bad known_hosts line {e.line.strip()!r}: {e.exc}") from None
                except (OSError, ValueError, paramiko.SSHException) as e:
                    raise ConfigError(f"{src}: unreadable known_hosts file: {e}") from None
            elif path is not None and not accept_new:
                raise ConfigError(f"{src}: known_hosts file not found (pass --accept-new-host-keys to create it)")

    def prepare(self, client: paramiko.SSHClient, name: str) -> None:
        """Give `client` this host's known keys and the policy for unknown ones."""
        with self._lock:
            entry = self._keys.lookup(name)
            known = dict(entry.items()) if entry else {}
        for keytype, key in known.items():
            client.get_host_keys().add(name, keytype, key)
        client.set_missing_host_key_policy(_Policy(self))

    def record(self, name: str, key: paramiko.PKey) -> None:
        """Append the key to the known_hosts file (the explicit opt-in only)."""
        line = f"{name} {key.get_name()} {key.get_base64()}\n"
        with self._lock:
            if self._keys.check(name, key):
                return
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(line)
            self._keys.add(name, key.get_name(), key)


class _Policy(paramiko.MissingHostKeyPolicy):
    def __init__(self, store: KnownHosts):
        self.store = store

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if not self.store.accept_new:
            raise UnknownHostKey(hostname, key, self.store.path)
        self.store.record(hostname, key)
