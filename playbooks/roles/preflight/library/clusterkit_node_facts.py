#!/usr/bin/python
"""Read what the node's hardware is from sysfs (no lspci needed): NVIDIA and Mellanox PCI
functions, InfiniBand devices, network interfaces with their RDMA devices, loaded GPU kernel
modules and free disk space. Read-only; `sysfs_root` lets tests point it at a fake tree."""

from __future__ import annotations

DOCUMENTATION = r"""
module: clusterkit_node_facts
short_description: Detect GPUs, NVSwitches, RDMA NICs and free space from sysfs
description:
  - Read-only. Reports NVIDIA (10de) and Mellanox/NVIDIA networking (15b3) PCI functions,
    InfiniBand devices, network interfaces and the RDMA devices behind them, loaded kernel
    modules relevant to GPUs, and free space of the given paths.
options:
  sysfs_root:
    description: Where sysfs is mounted (a fake tree in tests).
    type: path
    default: /sys
  paths:
    description: Paths whose free space is reported, in GiB.
    type: list
    elements: path
    default: ["/"]
author: clusterkit
"""

RETURN = r"""
pci_devices:
  description: NVIDIA and Mellanox PCI functions (address, id as vendor:device, class).
  type: list
  returned: always
infiniband:
  description: Names under class/infiniband.
  type: list
  returned: always
net:
  description: Interface name -> {pci, rdma} (rdma lists the RDMA devices of its PCI function).
  type: dict
  returned: always
modules:
  description: nouveau and nvidia_peermem loaded (bool), nvidia (loaded version or null).
  type: dict
  returned: always
free_gib:
  description: Path -> free GiB (null when the path does not exist).
  type: dict
  returned: always
secure_boot:
  description: true/false from the SecureBoot EFI variable, null on a BIOS boot or where efivars is not mounted.
  type: bool
  returned: always
ib_ports:
  description: InfiniBand device -> [{port, state, sm_lid}] from sysfs (what ibstat/sminfo would say about the SM).
  type: dict
  returned: always
"""

import os

from ansible.module_utils.basic import AnsibleModule

VENDORS = ("0x10de", "0x15b3")
# The UEFI global variable GUID; the variable's data is 4 attribute bytes then one byte, 1 = enabled.
SECURE_BOOT_VAR = "SecureBoot-8be4df61-93ca-11d2-aa0d-e2a14f7a0da2"


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def pci_devices(root):
    base = os.path.join(root, "bus", "pci", "devices")
    out = []
    for addr in _listdir(base):
        vendor = _read(os.path.join(base, addr, "vendor"))
        if vendor not in VENDORS:
            continue
        device = _read(os.path.join(base, addr, "device")) or ""
        out.append({"address": addr, "id": "%s:%s" % (vendor[2:], device.lower().replace("0x", "")),
                    "class": (_read(os.path.join(base, addr, "class")) or "").lower()})
    return out


def net_interfaces(root):
    base = os.path.join(root, "class", "net")
    out = {}
    for name in _listdir(base):
        dev = os.path.join(base, name, "device")
        pci = os.path.basename(os.path.realpath(dev)) if os.path.exists(dev) else None
        out[name] = {"pci": pci, "rdma": _listdir(os.path.join(dev, "infiniband")) if pci else []}
    return out


def secure_boot(root):
    try:
        with open(os.path.join(root, "firmware", "efi", "efivars", SECURE_BOOT_VAR), "rb") as f:
            data = f.read()
    except OSError:
        return None
    return len(data) >= 5 and data[4] == 1


def ib_ports(root):
    base = os.path.join(root, "class", "infiniband")
    out = {}
    for dev in _listdir(base):
        ports = []
        for port in _listdir(os.path.join(base, dev, "ports")):
            p = os.path.join(base, dev, "ports", port)
            ports.append({"port": port, "state": _read(os.path.join(p, "state")) or "",
                          "sm_lid": _read(os.path.join(p, "sm_lid")) or ""})
        out[dev] = ports
    return out


def main():
    module = AnsibleModule(argument_spec={"sysfs_root": {"type": "path", "default": "/sys"},
                                          "paths": {"type": "list", "elements": "path", "default": ["/"]}},
                           supports_check_mode=True)
    root = module.params["sysfs_root"]
    mod = os.path.join(root, "module")
    free = {}
    for p in module.params["paths"]:
        try:
            st = os.statvfs(p)
            free[p] = round(st.f_bavail * st.f_frsize / 2**30, 1)
        except OSError:
            free[p] = None
    module.exit_json(changed=False, pci_devices=pci_devices(root),
                     infiniband=_listdir(os.path.join(root, "class", "infiniband")),
                     net=net_interfaces(root),
                     modules={"nouveau": os.path.isdir(os.path.join(mod, "nouveau")),
                              "nvidia": _read(os.path.join(mod, "nvidia", "version")),
                              "nvidia_peermem": os.path.isdir(os.path.join(mod, "nvidia_peermem"))},
                     free_gib=free, secure_boot=secure_boot(root), ib_ports=ib_ports(root))


if __name__ == "__main__":
    main()
