"""Declared vs detected hardware, for the preflight role.

`detected` is what the role's `clusterkit_node_facts` module read from sysfs; `declared` is the
host's inventory variables (gpu_model, gpu_count, ib_devices, roce_interfaces). Each message says
what differs and where to look, so a failed preflight is a work order, not a puzzle.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Mapping

from clusterkit.inventory import _as_int, _as_list
from clusterkit.versions import VersionTable

# PCI class codes: 0x0300 VGA, 0x0302 3D controller (datacenter GPUs). Audio/USB functions are ignored.
_GPU_CLASSES = ("0x0300", "0x0302")
# Set true on a node whose DKMS signing key (MOK) is enrolled, so Secure Boot accepts the modules.
SECURE_BOOT_SIGNED_VAR = "preflight_secure_boot_signed_modules"


def _sm_answers(port: Mapping[str, Any]) -> bool:
    """A port is ACTIVE only once a subnet manager configured it, and then it knows the SM's LID."""
    try:
        lid = int(str(port.get("sm_lid") or "0"), 0)
    except ValueError:
        lid = 0
    return "ACTIVE" in str(port.get("state", "")).upper() and lid != 0


def boot_and_fabric_problems(detected: Mapping[str, Any], declared: Mapping[str, Any], gpus: int) -> list[str]:
    """Secure Boot refusing unsigned DKMS modules; a declared InfiniBand port no subnet manager answers."""
    out: list[str] = []
    ib = _as_list(declared.get("ib_devices"))
    rdma = bool(ib or _as_list(declared.get("roce_interfaces")))
    signed = str(declared.get(SECURE_BOOT_SIGNED_VAR, "")).lower() in ("1", "true", "yes")
    if detected.get("secure_boot") and (gpus > 0 or rdma) and not signed:
        out.append("Secure Boot is on: the NVIDIA and DOCA kernel modules are built by DKMS and unsigned, so they "
                   "would not load; turn Secure Boot off in the firmware setup, or enroll the DKMS signing key (MOK) "
                   f"and set {SECURE_BOOT_SIGNED_VAR}=true")
    ports = detected.get("ib_ports") or {}
    for dev in ib:
        if ports.get(dev) and not any(_sm_answers(p) for p in ports[dev]):
            seen = ", ".join(f"port {p.get('port')} {p.get('state') or '?'}, SM lid {p.get('sm_lid') or '?'}"
                             for p in ports[dev])
            out.append(f"no InfiniBand subnet manager answers on {dev} ({seen}): start opensm or the fabric's SM, "
                       f"check the cable and the switch port (`sminfo -C {dev}` on the node)")
    return out


def summarize(detected: Mapping[str, Any], table: VersionTable) -> dict[str, Any]:
    """GPU models and NVSwitches found on the PCI bus."""
    gpus: Counter[str] = Counter()
    unknown: list[str] = []
    nvswitches = 0
    for d in detected.get("pci_devices") or []:
        pid = str(d.get("id", "")).lower()
        if not pid.startswith("10de:"):
            continue
        if pid in table.nvswitch_pci_ids:
            nvswitches += 1
        elif str(d.get("class", ""))[:6] in _GPU_CLASSES:
            model = table.model_for_pci_id(pid)
            if model:
                gpus[model] += 1
            else:
                unknown.append(f"{pid} at {d.get('address')}")
    return {"gpus": dict(gpus), "gpu_count": sum(gpus.values()) + len(unknown), "unknown_gpus": unknown,
            "nvswitch_count": nvswitches}


def _describe(gpus: Mapping[str, int], table: VersionTable) -> str:
    return ", ".join(f"{n} x {table.gpu_models[m]['name']} ({'/'.join(table.gpu_models[m]['pci_ids'])})"
                     for m, n in sorted(gpus.items())) or "none"


def hardware_problems(detected: Mapping[str, Any], declared: Mapping[str, Any], table: VersionTable,
                      min_free_gib: float = 0) -> list[str]:
    """One line per difference between the inventory's declaration and the node (and short disks)."""
    out: list[str] = []
    for path, free in (detected.get("free_gib") or {}).items():
        if free is None:
            out.append(f"{path} does not exist on the node (preflight_free_space_paths)")
        elif free < min_free_gib:
            out.append(f"{path} has {free} GiB free, less than the {min_free_gib:g} GiB needed "
                       "(drivers, DKMS builds, nccl-tests): free space or grow the filesystem")
    s = summarize(detected, table)
    model = str(declared.get("gpu_model") or "").strip().lower() or None
    try:
        want = _as_int(declared.get("gpu_count") or 0)
    except ValueError as e:
        return [f"gpu_count: {e}"]
    found = s["gpu_count"]
    for u in s["unknown_gpus"]:
        out.append(f"unknown NVIDIA GPU {u}: add its PCI id to clusterkit_gpu_models in playbooks/vars/versions.yml")
    if want > 0 and found == 0:
        out.append(f"no NVIDIA GPU detected: the inventory declares {want} x {model} but the PCI bus shows none "
                   "(check that the GPU baseboard is powered and seated; `lspci -nn -d 10de:` on the node)")
    elif want == 0 and found > 0:
        out.append(f"detected {_describe(s['gpus'], table)} but the inventory declares no GPU: "
                   "set gpu_model and gpu_count for this host")
    elif want > 0:
        if model and model not in table.gpu_models:
            out.append(f"gpu_model {model} is not in clusterkit_gpu_models of playbooks/vars/versions.yml")
        other = {m: n for m, n in s["gpus"].items() if m != model}
        if other:
            out.append(f"detected {_describe(other, table)} but the inventory declares {model}")
        if found != want:
            present = sorted(d["address"] for d in detected.get("pci_devices") or []
                             if table.model_for_pci_id(str(d.get("id", ""))))
            hint = ("a GPU is missing from the PCI bus: reseat it or check its riser/baseboard power"
                    if found < want else "fix gpu_count in the inventory")
            out.append(f"detected {found} GPU(s), the inventory declares {want}: {hint} "
                       f"(present at {', '.join(present) or 'none'})")
        spec = table.gpu_models.get(model or "", {})
        if spec.get("nvswitch") and want >= 8 and s["nvswitch_count"] == 0:
            out.append(f"no NVSwitch detected on an {want}-GPU {spec['name']} board "
                       f"(PCI ids {', '.join(table.nvswitch_pci_ids)}): check the baseboard before installing "
                       "the fabric manager")
    out += boot_and_fabric_problems(detected, declared, want)
    ib_present = list(detected.get("infiniband") or [])
    for dev in _as_list(declared.get("ib_devices")):
        if dev not in ib_present:
            out.append(f"InfiniBand device {dev} is declared but not present (present: {', '.join(ib_present) or 'none'}; "
                       "check the HCA is seated and the network stack is installed)")
    net = detected.get("net") or {}
    for ifname in _as_list(declared.get("roce_interfaces")):
        if ifname not in net:
            out.append(f"RoCE interface {ifname} is declared but not present (interfaces: {', '.join(sorted(net))})")
        elif not net[ifname].get("rdma"):
            out.append(f"RoCE interface {ifname} has no RDMA device behind it (not an RDMA NIC, or the "
                       "mlx5_ib module is not loaded)")
    return out
