"""Every row of playbooks/vars/versions.yml resolves with apt against package indexes.

The NVIDIA side is tests/fixtures/apt-index/ (see its README for where each entry comes from),
served as file:// repositories; the distribution side is this machine's own Debian index
(/var/lib/apt/lists, as `apt-get update` left it), a stand-in for Ubuntu's for the libraries the
NVIDIA packages and the build tools depend on. apt runs in a private root: its own sources, lists,
dpkg status (nothing installed) and configuration (APT_CONFIG), no lock, no sandbox user, so it
needs neither root nor the _apt user, and it changes nothing on this machine.

Each role's selection comes from clusterkit/stack_packages.py, the code the roles use; a pin is
expanded the way Ansible's apt module does (fnmatch against the versions the index offers).
"""

from __future__ import annotations

import fnmatch
import getpass
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from clusterkit import stack_packages
from clusterkit.versions import load_table, version_key

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "apt-index"
HOST_LISTS = Path("/var/lib/apt/lists")
HOST_SOURCES = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]


class PrivateApt:
    """apt-get/apt-cache against the fixture repositories plus this machine's Debian index."""

    def __init__(self, root: Path, doca: str):
        self.root = root
        dirs = {d: root / d for d in ("parts", "sourceparts", "prefparts", "lists", "cache", "dpkg")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        (dirs["lists"] / "partial").mkdir(exist_ok=True)
        (dirs["cache"] / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        (dirs["dpkg"] / "status").touch()
        repos = ["cuda-ubuntu2204-x86_64", f"doca-{doca}-ubuntu22.04-x86_64", "libnvidia-container-stable-deb-amd64"]
        missing = [r for r in repos if not (FIXTURE / r / "Packages").is_file()]
        if missing:
            raise AssertionError(f"no fixture index for {missing} in {FIXTURE}")
        self.sources = root / "fixture.list"
        self.sources.write_text("".join(f"deb [trusted=yes] file:{FIXTURE / r} ./\n" for r in repos))
        self.config = root / "apt.conf"
        self.config.write_text("\n".join([
            f'Dir::Etc::Parts "{dirs["parts"]}";',
            f'Dir::Etc::sourcelist "{self.sources}";',
            f'Dir::Etc::sourceparts "{dirs["sourceparts"]}";',
            f'Dir::Etc::preferences "{root / "no-preferences"}";',
            f'Dir::Etc::preferencesparts "{dirs["prefparts"]}";',
            f'Dir::State::Lists "{dirs["lists"]}";',
            f'Dir::State::status "{dirs["dpkg"] / "status"}";',
            f'Dir::Cache "{dirs["cache"]}";',
            'Debug::NoLocking "1";',
            f'APT::Sandbox::User "{getpass.getuser()}";',
            'APT::Architecture "amd64";',
            'APT::Architectures { "amd64"; };',
            'Acquire::Languages "none";',
            "",
        ]))
        # the fixture repositories are fetched (copied) with only them as sources: no network
        r = self.run("apt-get", "update", "-q")
        assert r.returncode == 0, r.stdout + r.stderr
        # then the machine's Debian sources and their lists, already fetched, join them
        for src in HOST_SOURCES:
            if src.is_file():
                shutil.copy(src, dirs["sourceparts"] / (src.name if src.name != "sources.list" else "host.list"))
        for f in HOST_LISTS.iterdir():
            if f.is_file() and ("_Packages" in f.name or f.name.endswith("Release")):
                shutil.copy(f, dirs["lists"] / f.name)

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "APT_CONFIG": str(self.config), "LC_ALL": "C"}
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=120, env=env)

    def versions(self, name: str) -> list[str]:
        r = self.run("apt-cache", "madison", name)
        return [line.split("|")[1].strip() for line in r.stdout.splitlines() if line.count("|") >= 2]

    def spec(self, pkg: stack_packages.AptPackage) -> str:
        """name=VERSION the way Ansible's apt module expands name=PATTERN: the newest match."""
        if not pkg.pin:
            return pkg.name
        found = [v for v in self.versions(pkg.name) if fnmatch.fnmatch(v, pkg.pin)]
        assert found, f"{pkg.spec}: no version of {pkg.name} in the index matches (index has: {self.versions(pkg.name)})"
        return f"{pkg.name}={found[0]}"   # madison lists newest first


def _host_debian_index() -> bool:
    return any("_Packages" in f.name for f in HOST_LISTS.glob("*debian*"))


@pytest.fixture(scope="module")
def apt_roots(tmp_path_factory):
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get not installed")
    if not _host_debian_index():
        pytest.skip("no Debian package index in /var/lib/apt/lists (run apt-get update)")
    roots: dict[str, PrivateApt] = {}

    def get(doca: str) -> PrivateApt:
        if doca not in roots:
            roots[doca] = PrivateApt(tmp_path_factory.mktemp(f"apt-doca-{doca}"), doca)
        return roots[doca]
    return get


def _flavors(driver: str) -> list[str]:
    # auto picks open from 560 on (and always for H100); below that A100 nodes get the proprietary modules
    return ["open"] if version_key(driver) >= (560,) else ["open", "proprietary"]


ROWS = sorted(load_table().stacks)


@pytest.mark.parametrize("row", ROWS)
def test_every_role_selection_of_the_row_resolves(apt_roots, row):
    stack = load_table().stacks[row]
    apt = apt_roots(stack["doca"])
    for flavor in _flavors(stack["driver"]):
        selection = stack_packages.for_stack(stack, flavor=flavor)
        pinned = {p.name: p for pkgs in selection.values() for p in pkgs if p.pin}
        specs = [apt.spec(p) for pkgs in selection.values() for p in pkgs] + ["dkms"]
        r = apt.run("apt-get", "install", "--simulate", "-q", *specs)
        assert r.returncode == 0, f"{row} ({flavor}): apt cannot install {' '.join(specs)}\n{r.stdout[-3000:]}{r.stderr}"
        installed = dict(re.findall(r"^Inst (\S+) \((\S+) ", r.stdout, re.M))
        for name, pkg in pinned.items():
            assert name in installed, f"{row}: {name} is not installed by the transaction"
            assert fnmatch.fnmatch(installed[name], pkg.pin), (row, name, installed[name], pkg.pin)
        # the four container-toolkit packages land on one version (a partial pin lets apt mix them)
        toolkit = {installed[n] for n in stack_packages.CONTAINER_TOOLKIT_PACKAGES}
        assert toolkit == {f"{stack['container_toolkit']}-1"}, toolkit


def test_a_selection_the_index_does_not_have_fails(apt_roots):
    """The check can fail: a branch-suffixed r580 fabric manager, NCCL 2.21.5 built for CUDA 12.2 (what
    r535-cuda12.2 asked for before), and the container toolkit pinned alone."""
    apt = apt_roots("3.1.0")
    assert apt.versions("nvidia-fabricmanager-580") == []
    with pytest.raises(AssertionError, match="no version of libnccl2 in the index matches"):
        apt.spec(stack_packages.AptPackage("libnccl2", "2.21.5-*+cuda12.2"))
    # one pin of the toolkit's four: apt takes the newest -base, which the pinned toolkit refuses
    r = apt.run("apt-get", "install", "--simulate", "-q", "nvidia-container-toolkit=1.17.8-1")
    assert r.returncode != 0
    assert "nvidia-container-toolkit-base (= 1.17.8-1) but 1.18.0-1 is to be installed" in r.stdout
