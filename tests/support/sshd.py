"""Real OpenSSH `sshd` servers on 127.0.0.1 to stand in for cluster nodes in tests.

Each node is its own `/usr/sbin/sshd -D -e -f <cfg>` with a generated host key,
listening on an ephemeral port of 127.0.0.1; all nodes accept one generated
client key (ed25519) for the current user (root here).

    from tests.support.sshd import SshdCluster

    cluster = SshdCluster(tmp_path)              # a directory of its own
    nodes = cluster.start(3)                     # [SshdNode(name="node01", port=..., user=..., key=...)]
    cluster.known_hosts                          # a known_hosts file with every started node's host key
    cluster.write_inventory(tmp_path / "hosts.ini", nodes,
                            host_vars={"node02": {"gpu_count": 0}})   # Ansible INI, one line per node
    cluster.stop()                               # also done by the fixtures

- `start(n, prefix="node", extra_config="")` starts n more nodes (names continue
  the count); `extra_config` lines override the defaults of their sshd_config.
- `write_known_hosts(path, nodes, wrong_key_for=("node02",))` writes another
  known_hosts file; nodes named in `wrong_key_for` get a different key (a
  "changed host key"), nodes left out of `nodes` are unknown.
- `closed_port()` is a 127.0.0.1 port nothing listens on (connection refused).
- `write_inventory(..., known_hosts=path)` adds `-o UserKnownHostsFile=...
  -o StrictHostKeyChecking=yes` to ansible_ssh_common_args so that `ansible`
  (OpenSSH) verifies against the same file clusterkit does; `common_args`
  gives more arguments per host (e.g. `{"node02": "-o ProxyJump=root@127.0.0.1:PORT"}`).

pytest fixtures (tests/integration/conftest.py): `sshd_cluster` (session scope,
3 nodes), and `sshd_available` (skips the test with a reason when
/usr/sbin/sshd or ssh-keygen are missing: apt-get install openssh-server).
"""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def have_sshd() -> str | None:
    """None when real sshd servers can be started here, else why not."""
    if not os.path.exists(SSHD):
        return f"{SSHD} not installed (apt-get install openssh-server)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen not installed (apt-get install openssh-client)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, comment: str = "clusterkit-test") -> Path:
    """An ed25519 key pair without passphrase at `path` (+ `.pub`)."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True)
    return path


@dataclass
class SshdNode:
    name: str
    port: int
    user: str
    key: Path                      # the client's private key for this node
    host_key_pub: str              # "ssh-ed25519 AAAA..." of the node's host key
    directory: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)
    address: str = "127.0.0.1"

    @property
    def known_hosts_name(self) -> str:
        return f"[{self.address}]:{self.port}"

    @property
    def log(self) -> str:
        p = self.directory / "sshd.log"
        return p.read_text(errors="replace") if p.exists() else ""


CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {hostkey}
PidFile {pidfile}
AuthorizedKeysFile {authorized_keys}
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
AcceptEnv LANG LC_*
MaxStartups 200:30:400
MaxSessions 32
UseDNS no
PrintMotd no
LogLevel ERROR
Subsystem sftp internal-sftp
"""


class SshdCluster:
    """Real sshd processes, one per node, all under `root` (a directory)."""

    def __init__(self, root: Path, user: str | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.user = user or getpass.getuser()
        self.nodes: list[SshdNode] = []
        self.client_key = self.root / "id_ed25519"
        if not self.client_key.exists():
            keygen(self.client_key, "clusterkit-test-client")
        self.authorized_keys = self.root / "authorized_keys"
        self.authorized_keys.write_text((self.root / "id_ed25519.pub").read_text())
        self.known_hosts = self.root / "known_hosts"
        self.known_hosts.touch()

    def start(self, n: int, prefix: str = "node", extra_config: str = "") -> list[SshdNode]:
        """Start n more nodes; `extra_config` lines override the defaults of
        their sshd_config (e.g. "AllowTcpForwarding no")."""
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # sshd's privilege separation directory
        new = [self._spawn(f"{prefix}{len(self.nodes) + i + 1:02d}", extra_config) for i in range(n)]
        for node in new:
            self._wait_ready(node)
        self.nodes += new
        self.write_known_hosts(self.known_hosts, self.nodes)
        return new

    def _spawn(self, name: str, extra_config: str = "") -> SshdNode:
        d = self.root / name
        d.mkdir(exist_ok=True)
        hostkey = d / "ssh_host_ed25519_key"
        if not hostkey.exists():
            keygen(hostkey, f"{name}-host")
        port = free_port()
        cfg = d / "sshd_config"
        # sshd keeps the first value of a keyword: the extra lines go first to override
        cfg.write_text(extra_config + "\n" + CONFIG.format(port=port, hostkey=hostkey, pidfile=d / "sshd.pid",
                                                           authorized_keys=self.authorized_keys))
        log = open(d / "sshd.log", "ab")
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        log.close()
        return SshdNode(name, port, self.user, self.client_key,
                        " ".join((d / "ssh_host_ed25519_key.pub").read_text().split()[:2]), d, proc)

    def _wait_ready(self, node: SshdNode, timeout_s: float = 10.0) -> None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if node.proc is not None and node.proc.poll() is not None:
                raise RuntimeError(f"sshd for {node.name} exited ({node.proc.returncode}): {node.log}")
            try:
                with socket.create_connection((node.address, node.port), timeout=1) as s:
                    s.settimeout(2)
                    if s.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"sshd for {node.name} did not answer on port {node.port}: {node.log}")

    def node(self, name: str) -> SshdNode:
        return next(n for n in self.nodes if n.name == name)

    def write_known_hosts(self, path: Path, nodes: list[SshdNode] | None = None,
                          wrong_key_for: tuple[str, ...] | list[str] = ()) -> Path:
        lines = []
        for n in self.nodes if nodes is None else nodes:
            key = n.host_key_pub
            if n.name in wrong_key_for:
                other = keygen(self.root / f"other-{n.name}-{time.monotonic_ns()}", "not-the-node")
                key = " ".join(Path(f"{other}.pub").read_text().split()[:2])
            lines.append(f"{n.known_hosts_name} {key}\n")
        Path(path).write_text("".join(lines))
        return Path(path)

    @staticmethod
    def closed_port() -> int:
        return free_port()

    def write_inventory(self, path: Path, nodes: list[SshdNode] | None = None, *,
                        host_vars: dict[str, dict[str, object]] | None = None,
                        common_args: dict[str, str] | None = None, known_hosts: Path | None = None,
                        group: str = "gpu") -> Path:
        """An Ansible INI inventory: one line per node under `[group]`."""
        lines = [f"[{group}]"]
        for n in self.nodes if nodes is None else nodes:
            hv: dict[str, object] = {"ansible_host": n.address, "ansible_port": n.port,
                                     "ansible_user": n.user, "ansible_ssh_private_key_file": str(n.key)}
            args = (common_args or {}).get(n.name, "")
            if known_hosts is not None:
                args = f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes {args}".strip()
            if args:
                hv["ansible_ssh_common_args"] = args
            hv.update((host_vars or {}).get(n.name, {}))
            lines.append(n.name + "".join(f" {k}={shlex.quote(str(v))}" for k, v in hv.items()))
        Path(path).write_text("\n".join(lines) + "\n")
        return Path(path)

    def stop(self) -> None:
        for n in self.nodes:
            if n.proc is not None and n.proc.poll() is None:
                n.proc.terminate()
        for n in self.nodes:
            if n.proc is not None:
                try:
                    n.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    n.proc.kill()
                    n.proc.wait()

    def __enter__(self) -> "SshdCluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
