"""Package names and pins per driver branch (clusterkit/stack_packages.py, what the roles install)."""

from __future__ import annotations

import pytest

from clusterkit.errors import ConfigError
from clusterkit.stack_packages import (CONTAINER_TOOLKIT_PACKAGES, container_toolkit, dcgm, driver, fabric_manager,
                                       for_stack, nccl, node_tools, select)
from clusterkit.versions import load_table


def _specs(pkgs):
    return [p.spec for p in pkgs]


@pytest.mark.parametrize("version, want", [
    ("535.247.01", ["nvidia-fabricmanager-535=535.247.01-*", "libnvidia-nscq-535=535.247.01-*"]),
    ("570.172.08", ["nvidia-fabricmanager-570=570.172.08-*", "libnvidia-nscq-570=570.172.08-*"]),
    # from branch 580 the CUDA repository has no branch suffix (nvidia-fabricmanager_580.65.06-1_amd64.deb)
    ("580.95.05", ["nvidia-fabricmanager=580.95.05-*", "libnvidia-nscq=580.95.05-*"]),
])
def test_fabric_manager_names_follow_the_branch(version, want):
    assert _specs(fabric_manager(version)) == want
    assert all(p.hold for p in fabric_manager(version))


@pytest.mark.parametrize("version, flavor, want", [
    ("570.172.08", "open", ["nvidia-driver-570-open=570.172.08-*", "nvidia-dkms-570-open=570.172.08-*"]),
    ("535.247.01", "proprietary", ["nvidia-driver-535=535.247.01-*", "nvidia-dkms-535=535.247.01-*"]),
    ("580.95.05", "open", ["nvidia-driver-580-open=580.95.05-*", "nvidia-dkms-580-open=580.95.05-*"]),
    # the Ubuntu driver packages lose the suffix from 590 (driver installation guide, 590 renames)
    ("590.48.01", "open", ["nvidia-driver-open=590.48.01-*", "nvidia-dkms-open=590.48.01-*"]),
])
def test_driver_names_follow_the_branch(version, flavor, want):
    assert _specs(driver(version, flavor)) == want


def test_dcgm_3_is_one_package_and_4_is_core_plus_the_cuda_build():
    assert _specs(dcgm("3.3.9", "12.2")) == ["datacenter-gpu-manager=1:3.3.9"]
    assert _specs(dcgm("4.4.1", "13.0")) == ["datacenter-gpu-manager-4-core=1:4.4.1-*",
                                             "datacenter-gpu-manager-4-cuda13=1:4.4.1-*"]


def test_the_four_container_toolkit_packages_are_pinned_and_held_together():
    pkgs = container_toolkit("1.17.8")
    assert [p.name for p in pkgs] == list(CONTAINER_TOOLKIT_PACKAGES)
    assert {p.pin for p in pkgs} == {"1.17.8-*"} and all(p.hold for p in pkgs)


def test_nccl_is_built_for_the_stack_cuda_and_only_nccl_is_held():
    pkgs = nccl("2.26.2", "12.8")
    assert [p.spec for p in pkgs if p.hold] == ["libnccl2=2.26.2-*+cuda12.8", "libnccl-dev=2.26.2-*+cuda12.8"]
    assert "cuda-nvcc-12-8" in _specs(pkgs) and "openmpi-bin" in _specs(pkgs)


def test_node_tools_give_verify_its_tools_and_gpu_nodes_a_gpu_burn_build():
    cpu, gpu = _specs(node_tools("")), _specs(node_tools("13.0"))
    for tool in ("ipmitool", "dmidecode", "infiniband-diags", "pciutils"):
        assert tool in cpu and tool in gpu
    assert not any(s.startswith(("cuda-", "libcublas")) for s in cpu)
    assert {"cuda-nvcc-13-0", "libcublas-dev-13-0", "cuda-driver-dev-13-0"} <= set(gpu)


def test_every_stack_row_has_a_selection_for_every_role():
    for name, stack in load_table().stacks.items():
        sel = for_stack(stack)
        assert set(sel) == {"network_stack", "nvidia_driver", "fabric_manager", "dcgm", "nccl", "node_tools",
                            "container_toolkit"}, name


def test_bad_input_is_a_config_error():
    with pytest.raises(ConfigError, match="no package selection for 'nope'"):
        select("nope")
    with pytest.raises(ConfigError, match="not a driver version"):
        fabric_manager("r570")
    with pytest.raises(ConfigError, match="not open or proprietary"):
        driver("570.172.08", "closed")
