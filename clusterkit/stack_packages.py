"""Which apt packages each provisioning role installs for a stack: names by driver branch, version pins.

One implementation for the roles (the playbooks' `clusterkit_apt_packages` filter) and for the test that
resolves every row of playbooks/vars/versions.yml against real package indexes, so a name or version that
NVIDIA's repository does not have fails a test instead of a node.

A pin is an apt version pattern as Ansible's apt module reads it (`fnmatch` against the versions the index
offers): `570.172.08-*` matches the CUDA repository's `570.172.08-0ubuntu1`. No pin: the newest candidate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clusterkit.errors import ConfigError

# The CUDA repository drops the branch suffix from the fabric manager packages from branch 580
# (nvidia-fabricmanager_580.65.06-1, beside nvidia-fabricmanager-570_570.172.08-1 in the same
# repository listing) and from the Ubuntu driver packages from branch 590 (NVIDIA driver installation
# guide, "Ubuntu 590 and later packages": nvidia-dkms-580-open -> nvidia-dkms-open).
FABRIC_MANAGER_UNSUFFIXED_FROM = 580
DRIVER_UNSUFFIXED_FROM = 590

# The four NVIDIA Container Toolkit packages move together (the toolkit's install guide pins all four).
CONTAINER_TOOLKIT_PACKAGES = ("nvidia-container-toolkit", "nvidia-container-toolkit-base",
                              "libnvidia-container-tools", "libnvidia-container1")
# What `clusterkit verify --suite full` runs on a node (probes): IPMI, SMBIOS, InfiniBand tools, lspci, ethtool.
VERIFY_TOOLS = ("ipmitool", "dmidecode", "infiniband-diags", "pciutils", "ethtool", "python3-pip")
NCCL_TESTS_BUILD = ("openmpi-bin", "libopenmpi-dev", "make", "g++")
INBOX_RDMA = ("rdma-core", "ibverbs-utils", "infiniband-diags", "perftest")
DOCA_PACKAGES = ("doca-ofed",)


@dataclass(frozen=True)
class AptPackage:
    name: str
    pin: str = ""        # apt version pattern; "" = whatever the index offers
    hold: bool = False   # dpkg hold after install (pinned NVIDIA packages)

    @property
    def spec(self) -> str:
        return f"{self.name}={self.pin}" if self.pin else self.name

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "pin": self.pin, "hold": self.hold, "spec": self.spec}


def branch(version: str) -> int:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        raise ConfigError(f"'{version}' is not a driver version like 570.172.08") from None


def cuda_suffix(cuda: str) -> str:
    """'12.8' -> '12-8', the suffix of the CUDA toolkit's package names (cuda-nvcc-12-8)."""
    return str(cuda).replace(".", "-")


def driver(version: str, flavor: str) -> list[AptPackage]:
    """The driver metapackage and its DKMS module package (Ubuntu, CUDA repository)."""
    if flavor not in ("open", "proprietary"):
        raise ConfigError(f"kernel module flavor '{flavor}' is not open or proprietary")
    b = branch(version)
    tail = "-open" if flavor == "open" else ""
    names = ([f"nvidia-driver{tail}", f"nvidia-dkms{tail}"] if b >= DRIVER_UNSUFFIXED_FROM
             else [f"nvidia-driver-{b}{tail}", f"nvidia-dkms-{b}{tail}"])
    return [AptPackage(n, f"{version}-*", hold=True) for n in names]


def fabric_manager(version: str) -> list[AptPackage]:
    b = branch(version)
    names = (["nvidia-fabricmanager", "libnvidia-nscq"] if b >= FABRIC_MANAGER_UNSUFFIXED_FROM
             else [f"nvidia-fabricmanager-{b}", f"libnvidia-nscq-{b}"])
    return [AptPackage(n, f"{version}-*", hold=True) for n in names]


def dcgm(version: str, cuda: str) -> list[AptPackage]:
    """DCGM 3.x is one package (epoch 1, no revision); 4.x a core package plus the build for a CUDA major."""
    major = str(version).split(".")[0]
    if major == "3":
        return [AptPackage("datacenter-gpu-manager", f"1:{version}", hold=True)]
    names = [f"datacenter-gpu-manager-{major}-core", f"datacenter-gpu-manager-{major}-cuda{str(cuda).split('.')[0]}"]
    return [AptPackage(n, f"1:{version}-*", hold=True) for n in names]


def cuda_build_tools(cuda: str, *, cublas: bool = False) -> list[AptPackage]:
    """nvcc and the runtime headers of one CUDA release (the package name carries the release)."""
    s = cuda_suffix(cuda)
    names = [f"cuda-nvcc-{s}", f"cuda-cudart-dev-{s}"] + ([f"libcublas-dev-{s}", f"cuda-driver-dev-{s}"] if cublas else [])
    return [AptPackage(n) for n in names]


def nccl(version: str, cuda: str) -> list[AptPackage]:
    """NCCL built for the stack's CUDA release, and what building nccl-tests with MPI needs."""
    pinned = [AptPackage(n, f"{version}-*+cuda{cuda}", hold=True) for n in ("libnccl2", "libnccl-dev")]
    return pinned + cuda_build_tools(cuda) + [AptPackage(n) for n in NCCL_TESTS_BUILD]


def container_toolkit(version: str) -> list[AptPackage]:
    return [AptPackage(n, f"{version}-*", hold=True) for n in CONTAINER_TOOLKIT_PACKAGES]


def network_stack(flavor: str) -> list[AptPackage]:
    """DOCA-OFED from the version-pinned DOCA repository (the URL pins the release), or the inbox stack."""
    return [AptPackage(n) for n in (DOCA_PACKAGES if flavor == "doca" else INBOX_RDMA)]


def node_tools(cuda: str = "") -> list[AptPackage]:
    """What verify's probes call on a node; on a GPU node (a CUDA release given) also what building
    gpu-burn with that CUDA needs."""
    tools = [AptPackage(n) for n in VERIFY_TOOLS]
    return tools + (cuda_build_tools(cuda, cublas=True) + [AptPackage(n) for n in ("make", "g++")] if cuda else [])


def select(component: str, **kw: Any) -> list[AptPackage]:
    """Dispatch by role name (the filter's entry point); unknown component -> ConfigError."""
    table = {
        "nvidia_driver": lambda: driver(kw["version"], kw.get("flavor", "open")),
        "fabric_manager": lambda: fabric_manager(kw["version"]),
        "dcgm": lambda: dcgm(kw["version"], kw["cuda"]),
        "nccl": lambda: nccl(kw["version"], kw["cuda"]),
        "container_toolkit": lambda: container_toolkit(kw["version"]),
        "network_stack": lambda: network_stack(kw.get("flavor", "doca")),
        "node_tools": lambda: node_tools(kw.get("cuda") or ""),
    }
    if component not in table:
        raise ConfigError(f"no package selection for '{component}' (known: {', '.join(table)})")
    return table[component]()


def for_stack(stack: dict[str, Any], *, flavor: str = "open", network: str = "doca") -> dict[str, list[AptPackage]]:
    """Every role's selection for one row of versions.yml (what the index test resolves)."""
    return {
        "network_stack": network_stack(network),
        "nvidia_driver": driver(stack["driver"], flavor),
        "fabric_manager": fabric_manager(stack["fabric_manager"]),
        "dcgm": dcgm(stack["dcgm"], stack["cuda"]),
        "nccl": nccl(stack["nccl"], stack["cuda"]),
        "node_tools": node_tools(stack["cuda"]),
        "container_toolkit": container_toolkit(stack["container_toolkit"]),
    }
