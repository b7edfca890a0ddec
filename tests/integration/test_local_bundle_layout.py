"""The same commands collected over SSH (a real sshd) and on the node itself (`check --local`'s runner)
give the same bundle: the same files with the same contents, the same command records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clusterkit.fleet.collect import FleetOptions, collect_planned
from clusterkit.fleet.local import collect_local
from clusterkit.inventory import HostSpec
from clusterkit.probes.registry import PHASE_AFTER, Command

pytestmark = pytest.mark.integration

FILES_SCRIPT = b"import json\nprint(json.dumps({'gpu/a.txt': 'A\\n', 'gpu/sub/b.txt': 'B\\n'}))\n"
PLAN = [
    Command("host/args.txt", ["printf", "%s|", "a b", "it's", "$(id)"], timeout_s=10),
    Command("host/fails.txt", ["sh", "-c", "echo partial; echo bad >&2; exit 2"], timeout_s=10),
    Command("gpu/nvidia-smi.txt", ["clusterkit-no-such-tool", "-q"], timeout_s=10),
    Command("host/required.txt", ["clusterkit-required-tool"], timeout_s=10, optional=False),
    Command("gpu/files.json", ["python3", "-"], stdin=FILES_SCRIPT, output="files-json", timeout_s=20),
    Command("host/empty.txt", ["true"], timeout_s=10),
    Command("host/hangs.txt", ["sleep", "30"], timeout_s=1, phase=PHASE_AFTER),
]
SAME = ("path", "exit_code", "status", "not_installed", "files", "phase", "stderr")


def _files(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): p.read_text() for p in sorted(d.rglob("*")) if p.is_file() and p.name != "bundle.json"}


def _records(d: Path) -> list[dict]:
    meta = json.loads((d / "bundle.json").read_text())
    return [{k: c.get(k) for k in SAME} for c in meta["commands"]]


def test_local_and_ssh_collection_write_the_same_bundle(sshd_cluster, tmp_path):
    n = sshd_cluster.nodes[0]
    spec = HostSpec("n", n.address, port=n.port, user=n.user, private_key_file=str(n.key), rack="r1")
    ssh = collect_planned([spec], {"n": PLAN}, tmp_path / "ssh",
                          FleetOptions(known_hosts=sshd_cluster.known_hosts, connect_timeout_s=5))[0]
    local = collect_local(spec, PLAN, tmp_path / "local").root
    assert _files(local) == _files(ssh)
    assert _files(local)["host/args.txt"] == "a b|it's|$(id)|"
    got, want = _records(local), _records(ssh)
    # the tool-not-found wording is the shell's over SSH, clusterkit's locally: both say "command not found"
    for g, w in zip(got, want):
        if g["exit_code"] == 127:
            assert "command not found" in g.pop("stderr") and "command not found" in w.pop("stderr")
    assert got == want
    assert json.loads((local / "bundle.json").read_text())["declared"]["rack"] == "r1"
