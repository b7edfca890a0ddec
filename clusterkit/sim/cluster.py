"""The simulated cluster: evidence bundles in real tools' formats, with injected faults.

Every output is labelled SIMULATED (bundle.json `simulated: true` and a
`label`; node names start with `sim-`). Families add their files through
`@node_generator` / `@cluster_generator` and their faults through `fault()`.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from clusterkit.evidence.bundle import CLUSTER_DIR, BundleWriter
from clusterkit.evidence.kinds import Kind
from clusterkit.parsers.host_facts import (CLOCK, DF, MEMINFO, OS_RELEASE, TOOL_VERSIONS, UNAME, UPTIME,
                                           parse_tool_versions)
from clusterkit.parsers.kernel_log import KERNEL_LOG
from clusterkit.parsers.stack_versions import STACK_VERSIONS
from clusterkit.plugins import load_all
from clusterkit.sim.gpu import driver_version, fabric_manager_version
from clusterkit.sim.registry import CLUSTER_GENERATORS, FAULTS, NODE_GENERATORS, SimCluster, SimNode, fault

DEFAULT_MODEL = "h100-sxm5-80gb"
_IB_RATE = {"h100": 400, "a100": 200}

fault("host.kernel_drift", "one node runs a different kernel than the fleet (warning)", order=90)
fault("host.raid_full", "a node whose /raid scratch filesystem is 99% full (core dumps, checkpoints)", order=91)
fault("stack.fabric_manager_mismatch", "a node whose fabric manager is a release behind its driver (NVSwitch "
      "systems stay 'not yet initialized'): reinstall it at the driver's exact version", order=92)


def _spec(model: str, index: int) -> dict[str, Any]:
    gpus = 8
    return {
        "gpu_model": model,
        "gpu_count": gpus,
        "ib_devices": [f"mlx5_{i}" for i in range(gpus)],
        "ib_rate_gbps": _IB_RATE.get(model[:4], 200),
        "rack": f"r{index // 4 + 1:02d}",
        "scheduler": "slurm",
    }


def assign_faults(n_nodes: int, names: list[str] | None = None) -> dict[int, list[str]]:
    """Fault k goes to node k+1 (wrapping), so node 0 stays a healthy reference."""
    ordered = sorted(names if names is not None else FAULTS, key=lambda f: (FAULTS[f].order, f))
    out: dict[int, list[str]] = {i: [] for i in range(n_nodes)}
    if n_nodes == 1:
        out[0] = ordered
        return out
    for k, name in enumerate(ordered):
        out[1 + k % (n_nodes - 1)].append(name)
    return out


def _write_host(node: SimNode, w: BundleWriter, now: float) -> None:
    f = node.facts
    kernel = f.setdefault("kernel", "5.15.0-119-generic")
    if "host.kernel_drift" in node.faults:
        kernel = "5.15.0-125-generic"
    plan: list[tuple[Kind, str]] = [
        (UNAME,
         f"Linux {node.host} {kernel} #129-Ubuntu SMP Fri Aug 2 19:25:20 UTC 2024 x86_64 x86_64 x86_64 GNU/Linux\n"),
        (OS_RELEASE,
         'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\nVERSION="22.04.4 LTS (Jammy Jellyfish)"\n'
         'VERSION_CODENAME=jammy\nID=ubuntu\nID_LIKE=debian\n'),
        (UPTIME, f"{f.setdefault('uptime_s', 86400.0 * 3):.2f} 2500000.00\n"),
        (MEMINFO,
         "MemTotal:       2113245184 kB\nMemFree:        1905000000 kB\nMemAvailable:   2010000000 kB\n"
         "Buffers:          1200000 kB\nCached:          90000000 kB\nSwapTotal:              0 kB\n"),
        (DF,
         "Filesystem     1024-blocks      Used  Available Capacity Mounted on\n"
         "/dev/md0        1844961280 412345678 1432615602      23% /\n"
         "/dev/nvme0n1p1      523248      6220     517028       2% /boot/efi\n"
         + ("/dev/md1       28125000000 27843750000 281250000     99% /raid\n" if "host.raid_full" in node.faults
            else "/dev/md1       28125000000 9876543210 18248456790     36% /raid\n")),
    ]
    plan.append((TOOL_VERSIONS,
                 f"kernel: {kernel}\nnvidia-smi: NVIDIA-SMI version  : {driver_version(node)}\n"
                 f"dcgmi: Version : {f.setdefault('dcgm', '3.3.8')}\nibstat: ibstat BUILD VERSION: 2307.0\n"
                 "ethtool: ethtool version 5.16\nmlxlink: not installed\n"
                 "all_reduce_perf: nccl-tests 2.13.10\nmpirun: mpirun (Open MPI) 4.1.5\npython3: Python 3.10.12\n"))
    plan.append((STACK_VERSIONS, _stack_versions(node)))
    t = now
    for kind, text in plan:
        w.put(kind, text, duration_s=0.012, local_start_epoch=t, local_end_epoch=t + 0.012)
        t += 0.02
    # Node clocks: a few ms of NTP noise.
    offset = node.rng.uniform(-0.004, 0.004)
    w.put(CLOCK, f"{t + 0.006 + offset:.9f}\n", duration_s=0.012, local_start_epoch=t, local_end_epoch=t + 0.012)


def _stack_versions(node: SimNode) -> str:
    """dpkg-query lines and the loaded driver, as the stack.versions probe prints them."""
    driver = driver_version(node)
    fm = fabric_manager_version(node)
    branch = driver.split(".")[0]
    return (f"nvidia-driver-{branch}-server-open\t{driver}-0ubuntu1\tinstalled\n"
            f"nvidia-fabricmanager-{branch}\t{fm}-1\tinstalled\n"
            f"libnvidia-nscq-{branch}\t{fm}-1\tinstalled\n"
            "libnccl2\t2.21.5-1+cuda12.4\tinstalled\n"
            f"datacenter-gpu-manager\t1:{node.facts.setdefault('dcgm', '3.3.8')}\tinstalled\n"
            "doca-ofed\t2.9.1-1\tinstalled\n"
            "nvidia-container-toolkit\t1.17.8-1\tinstalled\n"
            f"loaded\tnvidia\t{driver}\n")


def _write_kernel_log(node: SimNode, w: BundleWriter) -> None:
    base = [
        (0.0, f"Linux version {node.facts['kernel']} (buildd@lcy02-amd64-051) (gcc 11.4.0) #129-Ubuntu SMP"),
        (0.0, "Command line: BOOT_IMAGE=/vmlinuz root=/dev/md0 ro iommu=pt"),
        (2.51, "pci 0000:00:01.0: PCI bridge to [bus 01]"),
        (9.87, "EXT4-fs (md0): mounted filesystem with ordered data mode. Quota mode: none."),
    ]
    lines = sorted(base + list(node.facts.get("kernel_log", [])), key=lambda x: x[0])
    w.put(KERNEL_LOG, "".join(f"[{s:12.6f}] {m}\n" for s, m in lines), duration_s=0.05)


def generate(out_dir: Path, *, nodes: int = 8, seed: int = 0, gpu_model: str = DEFAULT_MODEL,
             faults: list[str] | None = None, meta: dict[str, Any] | None = None) -> Path:
    """Write a run directory of simulated bundles (one per node, plus `_cluster/`); `meta`: more for
    each node's bundle.json (the suite, as a real collection records it)."""
    load_all()
    if nodes < 1:
        raise ValueError("a simulated cluster needs at least one node")
    rng = random.Random(seed)
    placed = assign_faults(nodes, faults)
    sim_nodes = []
    for i in range(nodes):
        spec = _spec(gpu_model, i)
        sim_nodes.append(SimNode(f"sim-{gpu_model.split('-')[0]}-{i + 1:02d}", i, spec, placed[i],
                                 random.Random(rng.getrandbits(64))))
    cluster = SimCluster(sim_nodes, seed, rng)
    now = time.time()
    for node in sim_nodes:
        w = BundleWriter(out_dir / node.host, node.host, simulated=True, declared={"name": node.host, **node.spec})
        _write_host(node, w, now)
        for family in sorted(NODE_GENERATORS):
            NODE_GENERATORS[family](node, w)
        _write_kernel_log(node, w)
        w.finish(**(meta or {}), injected_faults=node.faults,
                 tool_versions=parse_tool_versions((out_dir / node.host / TOOL_VERSIONS.path).read_text()))
    if CLUSTER_GENERATORS:
        cw = BundleWriter(out_dir / CLUSTER_DIR, CLUSTER_DIR, simulated=True)
        for family in sorted(CLUSTER_GENERATORS):
            CLUSTER_GENERATORS[family](cluster, cw)
        cw.finish(nodes=[n.host for n in sim_nodes])
    return out_dir
