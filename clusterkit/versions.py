"""Version coherence: which driver, CUDA, fabric manager, DCGM, network stack and NCCL belong together.

The table is data (`playbooks/vars/versions.yml`), shared with the playbooks: site.yml loads it and
each role pins its packages from the host's stack. This module applies the rules to an
inventory (`clusterkit inventory check`) and, through the playbooks' filter plugin, to the
preflight role, so both reject the same incoherent sets with the same words.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from clusterkit.errors import ConfigError
from clusterkit.inventory import HostSpec, Problem
from clusterkit.paths import data_dir

# Stack component -> the role variable that overrides it for a host or group.
COMPONENT_VARS: dict[str, str] = {
    "driver": "nvidia_driver_version",
    "cuda": "nccl_cuda_version",
    "fabric_manager": "fabric_manager_version",
    "dcgm": "dcgm_version",
    "doca": "network_stack_doca_version",
    "nccl": "nccl_version",
    "nccl_tests": "nccl_tests_version",
    "container_toolkit": "container_toolkit_version",
    "nvidia_ml_py": "node_tools_nvml_version",
}
STACK_VAR = "clusterkit_stack"
KERNEL_MODULES_VAR = "nvidia_driver_kernel_modules"
NETWORK_FLAVOR_VAR = "network_stack_flavor"
KERNEL_MODULE_CHOICES = ("auto", "open", "proprietary")
NETWORK_FLAVORS = ("doca", "inbox")
# Components every node of one cluster must share: NCCL jobs span nodes.
CLUSTER_WIDE = ("driver", "cuda", "nccl")

_VERSION_RE = re.compile(r"^\d+(\.\d+)*$")


def default_path() -> Path:
    return data_dir("playbooks") / "vars" / "versions.yml"


def version_key(v: str) -> tuple[int, ...]:
    """'570.172.08' -> (570, 172, 8); the caller has checked the syntax."""
    return tuple(int(p) for p in str(v).split("."))


def _is_version(v: Any) -> bool:
    return isinstance(v, str) and bool(_VERSION_RE.match(v))


@dataclass(frozen=True)
class VersionTable:
    path: str
    default_stack: str
    stacks: dict[str, dict[str, Any]]
    cuda_min_driver: dict[str, str]
    dcgm_cuda_majors: dict[str, list[int]]
    gpu_models: dict[str, dict[str, Any]]
    nvswitch_pci_ids: list[str]

    def model_for_pci_id(self, pci_id: str) -> str | None:
        pci_id = pci_id.lower()
        for name, m in self.gpu_models.items():
            if pci_id in (p.lower() for p in m.get("pci_ids", [])):
                return name
        return None


def _validate(path: str, doc: Any) -> VersionTable:
    def bad(msg: str) -> ConfigError:
        return ConfigError(f"{path}: {msg}")

    if not isinstance(doc, dict):
        raise bad("not a YAML mapping")
    for key in ("clusterkit_default_stack", "clusterkit_stacks", "clusterkit_cuda_min_driver",
                "clusterkit_dcgm_cuda_majors", "clusterkit_gpu_models", "clusterkit_nvswitch_pci_ids"):
        if key not in doc:
            raise bad(f"missing '{key}'")
    stacks = doc["clusterkit_stacks"]
    if not isinstance(stacks, dict) or not stacks:
        raise bad("'clusterkit_stacks' must map stack names to their versions")
    for name, stack in stacks.items():
        if not isinstance(stack, dict):
            raise bad(f"stack '{name}' must be a mapping")
        for comp in COMPONENT_VARS:
            if not _is_version(stack.get(comp)):
                raise bad(f"stack '{name}': '{comp}' must be a quoted version like \"12.8\", got {stack.get(comp)!r}")
        if not isinstance(stack.get("os", []), list):
            raise bad(f"stack '{name}': 'os' must be a list like [ubuntu-22.04]")
        sources = stack.get("sources")
        unsourced = [c for c in COMPONENT_VARS if not (isinstance(sources, dict) and str(sources.get(c) or "").strip())]
        if unsourced:
            raise bad(f"stack '{name}': 'sources' must say where each version comes from; missing: {', '.join(unsourced)}")
    if doc["clusterkit_default_stack"] not in stacks:
        raise bad(f"clusterkit_default_stack '{doc['clusterkit_default_stack']}' is not in clusterkit_stacks")
    for cuda, drv in (doc["clusterkit_cuda_min_driver"] or {}).items():
        if not (_is_version(str(cuda)) and _is_version(drv)):
            raise bad(f"clusterkit_cuda_min_driver: '{cuda}: {drv}' must map quoted versions")
    for model, m in (doc["clusterkit_gpu_models"] or {}).items():
        if not isinstance(m, dict) or not m.get("pci_ids") or not _is_version(m.get("min_driver")):
            raise bad(f"GPU model '{model}' needs pci_ids and a quoted min_driver")
        if m.get("kernel_modules", "any") not in ("any", "open"):
            raise bad(f"GPU model '{model}': kernel_modules must be 'any' or 'open'")
    return VersionTable(
        path=path,
        default_stack=str(doc["clusterkit_default_stack"]),
        stacks={str(k): v for k, v in stacks.items()},
        cuda_min_driver={str(k): str(v) for k, v in doc["clusterkit_cuda_min_driver"].items()},
        dcgm_cuda_majors={str(k): [int(x) for x in v] for k, v in doc["clusterkit_dcgm_cuda_majors"].items()},
        gpu_models={str(k): v for k, v in doc["clusterkit_gpu_models"].items()},
        nvswitch_pci_ids=[str(p).lower() for p in doc["clusterkit_nvswitch_pci_ids"]],
    )


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> VersionTable:
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(e).split())}") from None
    return _validate(path, doc)


def load_table(path: str | Path | None = None) -> VersionTable:
    p = Path(path) if path else default_path()
    if not p.is_file():
        raise ConfigError(f"{p}: version table not found")
    return _load_cached(str(p), p.stat().st_mtime_ns)


def effective_versions(host_vars: Mapping[str, Any], table: VersionTable) -> tuple[str, dict[str, str]]:
    """The host's stack name and its versions after per-host overrides (unknown stack: empty)."""
    stack = str(host_vars.get(STACK_VAR) or table.default_stack)
    versions = {k: str(v) for k, v in table.stacks.get(stack, {}).items() if k in COMPONENT_VARS}
    for comp, var in COMPONENT_VARS.items():
        if host_vars.get(var) not in (None, ""):
            versions[comp] = str(host_vars[var]).strip()
    return stack, versions


def host_version_problems(host_vars: Mapping[str, Any], table: VersionTable,
                          gpu_model: str | None = None) -> list[tuple[str, str]]:
    """(variable, message) for every rule one host's versions break."""
    out: list[tuple[str, str]] = []
    stack, v = effective_versions(host_vars, table)
    if stack not in table.stacks:
        out.append((STACK_VAR, f"unknown stack '{stack}' (known: {', '.join(table.stacks)}; {table.path})"))
    for comp, var in COMPONENT_VARS.items():
        if comp in v and not _is_version(v[comp]):
            out.append((var, f"'{v[comp]}' is not a version number"))
    if out:
        return out
    drv = version_key(v["driver"])
    if v["fabric_manager"] != v["driver"]:
        out.append((COMPONENT_VARS["fabric_manager"],
                    f"fabric manager {v['fabric_manager']} must equal the driver version {v['driver']} exactly "
                    "(a mismatch leaves NVSwitch systems in 'system not yet initialized')"))
    need = table.cuda_min_driver.get(v["cuda"])
    if need is None:
        out.append((COMPONENT_VARS["cuda"], f"CUDA {v['cuda']} is not in clusterkit_cuda_min_driver "
                                            f"(known: {', '.join(table.cuda_min_driver)}; {table.path})"))
    elif drv < version_key(need):
        out.append((COMPONENT_VARS["driver"], f"driver {v['driver']} is older than {need}, "
                                              f"the minimum for CUDA {v['cuda']} (stack {stack})"))
    cuda_major = version_key(v["cuda"])[0]
    dcgm_major = v["dcgm"].split(".")[0]
    if cuda_major not in table.dcgm_cuda_majors.get(dcgm_major, []):
        out.append((COMPONENT_VARS["dcgm"], f"DCGM {v['dcgm']} has no build for CUDA {cuda_major} "
                                            f"(DCGM {dcgm_major}.x: CUDA {table.dcgm_cuda_majors.get(dcgm_major, [])})"))
    model = table.gpu_models.get(gpu_model or "")
    modules = str(host_vars.get(KERNEL_MODULES_VAR) or "auto")
    if modules not in KERNEL_MODULE_CHOICES:
        out.append((KERNEL_MODULES_VAR, f"'{modules}' is not one of {', '.join(KERNEL_MODULE_CHOICES)}"))
    if model:
        if drv < version_key(model["min_driver"]):
            out.append((COMPONENT_VARS["driver"], f"driver {v['driver']} is older than {model['min_driver']}, "
                                                  f"the first driver for {model['name']}"))
        if model.get("kernel_modules") == "open" and modules == "proprietary":
            out.append((KERNEL_MODULES_VAR, f"{model['name']} nodes use the open GPU kernel modules; "
                                            "set it to 'open' or 'auto'"))
    flavor = str(host_vars.get(NETWORK_FLAVOR_VAR) or "doca")
    if flavor not in NETWORK_FLAVORS:
        out.append((NETWORK_FLAVOR_VAR, f"'{flavor}' is not one of {', '.join(NETWORK_FLAVORS)}"))
    elif flavor == "inbox" and modules == "proprietary":
        out.append((KERNEL_MODULES_VAR, "the inbox RDMA stack has no nvidia-peermem; GPUDirect RDMA then needs "
                                        "dma-buf, which needs the open kernel modules"))
    return out


def cluster_drift(per_host: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """host -> message, for hosts whose driver/CUDA/NCCL differ from the majority of the inventory."""
    sig = {h: tuple(v.get(c, "?") for c in CLUSTER_WIDE) for h, v in per_host.items()}
    if len(set(sig.values())) <= 1:
        return {}
    (common, n), = Counter(sig.values()).most_common(1)
    fmt = lambda s: ", ".join(f"{c} {x}" for c, x in zip(CLUSTER_WIDE, s))  # noqa: E731
    return {h: f"{fmt(s)} differs from {n} other host(s) on {fmt(common)}; NCCL jobs across nodes need one stack"
            for h, s in sig.items() if s != common}


def is_skipped(h: HostSpec) -> bool:
    """Jump hosts and `clusterkit_skip=true` hosts are not provisioned (site.yml excludes them too)."""
    return "bastion" in h.groups or str(h.vars.get("clusterkit_skip", "")).lower() in ("1", "true", "yes")


def coherence_problems(hosts: list[HostSpec], *, table: VersionTable | None = None,
                       source: str = "inventory") -> list[Problem]:
    """Every host's incoherent versions, then drift between hosts (for `inventory check`)."""
    table = table or load_table()
    problems: list[Problem] = []
    per_host: dict[str, dict[str, str]] = {}
    for h in hosts:
        if is_skipped(h):
            continue
        found = host_version_problems(h.vars, table, h.gpu_model)
        problems += [Problem(source, h.name, var, msg) for var, msg in found]
        if not found:
            per_host[h.name] = effective_versions(h.vars, table)[1]
    problems += [Problem(source, h, "clusterkit_stack", msg) for h, msg in cluster_drift(per_host).items()]
    return problems
