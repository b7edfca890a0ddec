"""The inventory: Ansible INI/YAML, loaded by Ansible's own inventory machinery.

Groups, `[group:vars]`, ranges like `gpu[01:16]`, group_vars/host_vars and
`ansible_host/ansible_port/ansible_user` therefore mean exactly what they mean
to `ansible-playbook`. Host variables declare the hardware (see HostSpec).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clusterkit.errors import ConfigError

# Only these two parsers: a file that is neither gets a clear error instead of
# being silently read as an empty inventory by another plugin. YAML first, as in Ansible's
# default order: it takes only .yml/.yaml/.json files, and the INI parser reads an indented
# JSON file as hosts named `{` and `"all":`.
os.environ.setdefault("ANSIBLE_INVENTORY_ENABLED", "yaml,ini")
os.environ.setdefault("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
os.environ.setdefault("ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED", "true")
os.environ.setdefault("ANSIBLE_LOCALHOST_WARNING", "false")

# Names from the inventory become directory names (bundles), argv elements (mlxlink -d DEV,
# ethtool IFACE, scontrol nodename=NODE) and report labels, so each is checked against what
# it names. Host: a DNS name or an address (IPv6 included); never a path, never hidden or
# reserved (clusterkit's own `_cluster` bundle).
_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,252}")
# The kernel's rules for a network interface (dev_valid_name: at most 15 bytes, no '/', ':'
# or blank, not '.'/'..') and for an RDMA device (at most 63), and no leading '-', which a
# tool would read as an option.
_NETDEV = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,14}")
_RDMA_DEV = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,63}")
# Slurm node names: one node, never a hostlist expression (`gpu[01-64]`) or a list.
_SLURM_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

KNOWN_GPU_MODELS = ("a100-sxm4-40gb", "a100-sxm4-80gb", "a100-pcie-80gb", "h100-sxm5-80gb", "h100-pcie-80gb")


@dataclass
class HostSpec:
    """One node: how to reach it and what hardware it should have."""

    name: str
    address: str
    port: int = 22
    user: str | None = None
    groups: list[str] = field(default_factory=list)
    gpu_model: str | None = None
    gpu_count: int = 0
    ib_devices: list[str] = field(default_factory=list)
    ib_rate_gbps: int | None = None
    roce_interfaces: list[str] = field(default_factory=list)
    roce_rate_gbps: int | None = None
    bmc_host: str | None = None
    rack: str | None = None
    rail: str | None = None
    ssh_common_args: list[str] = field(default_factory=list)
    private_key_file: str | None = None
    become: bool = False
    scheduler: str | None = None        # "slurm" when nodes are drained/launched through Slurm
    slurm_node: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)

    @property
    def jump_host(self) -> str | None:
        """ProxyJump target from `ansible_ssh_common_args` (-J or -o ProxyJump=)."""
        args = self.ssh_common_args
        for i, a in enumerate(args):
            if a == "-J" and i + 1 < len(args):
                return args[i + 1]
            if a.startswith("-J") and len(a) > 2:
                return a[2:]
            opt = a[2:] if a.startswith("-o") and len(a) > 2 else (args[i + 1] if a == "-o" and i + 1 < len(args) else None)
            if opt and opt.lower().startswith("proxyjump"):
                return opt.split("=", 1)[1].strip() if "=" in opt else opt.split(None, 1)[1].strip()
        return None

    def declared(self) -> dict[str, Any]:
        """The hardware declaration, as recorded in a bundle."""
        d = asdict(self)
        for k in ("vars", "ssh_common_args", "private_key_file", "address", "port", "user"):
            d.pop(k, None)
        return d


@dataclass
class Problem:
    file: str
    host: str
    variable: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: host {self.host}: {self.variable}: {self.message}"


@dataclass
class Inventory:
    source: str
    hosts: list[HostSpec]

    def targets(self) -> list[HostSpec]:
        """The hosts to verify: all but those marked `clusterkit_skip` (a bastion, say)."""
        return [h for h in self.hosts if not _bool(h.vars.get("clusterkit_skip", False))]

    def limit(self, pattern: str | None) -> "Inventory":
        if not pattern:
            return self
        import fnmatch

        pats = limit_patterns(pattern)
        keep = [h for h in self.hosts
                if any(fnmatch.fnmatchcase(h.name, p) or p in h.groups for p in pats)]
        if not keep:
            raise ConfigError(f"{self.source}: --limit '{pattern}' matches no host")
        return Inventory(self.source, keep)


def limit_patterns(pattern: str) -> list[str]:
    """`--limit` as Ansible takes it: patterns separated by `,` or `:`, and `@FILE` for the host names in
    a file, one a line (what a run writes to failed.txt, as ansible's retry files)."""
    out: list[str] = []
    for item in (x.strip() for x in pattern.split(",")):
        if item.startswith("@"):
            path = Path(item[1:]).expanduser()
            try:
                names = [l.strip() for l in path.read_text().splitlines()]
            except OSError as e:
                raise ConfigError(f"--limit {item}: cannot read {path}: {e.strerror}") from None
            names = [n for n in names if n and not n.startswith("#")]
            if not names:
                raise ConfigError(f"--limit {item}: {path} lists no host (nothing failed?)")
            out += names
        else:
            out += [p.strip() for p in item.split(":") if p.strip()]
    return out


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    s = str(value).strip()
    if not s.lstrip("-").isdigit():
        raise ValueError(f"expected a whole number, got {value!r}")
    return int(s)


def _bool(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def host_name_problem(name: str) -> str | None:
    """Why `name` cannot be an inventory host name for clusterkit, or None."""
    from clusterkit.evidence.bundle import bundle_name_problem

    if not _HOST_NAME.fullmatch(name) or name in (".", ".."):
        return ("not a host name: use letters, digits and . _ : @ + - (starting with a letter or digit), "
                "at most 253 characters; set ansible_host for the address")
    why = bundle_name_problem(name)
    return f"reserved name ({why})" if why else None


def device_name_problem(name: str, rdma: bool) -> str | None:
    pat, most = (_RDMA_DEV, 63) if rdma else (_NETDEV, 15)
    if name in (".", "..") or not pat.fullmatch(name):
        return (f"'{name[:80]}' is not a valid {'RDMA device' if rdma else 'network interface'} name "
                f"(at most {most} of letters, digits, _ . @ + -, not starting with '-')")
    return None


def _spec(name: str, hv: dict[str, Any], groups: list[str], file: str, problems: list[Problem]) -> HostSpec:
    def bad(var: str, msg: str) -> None:
        problems.append(Problem(file, name, var, msg))

    why = host_name_problem(name)
    if why:
        bad("host name", why)

    spec = HostSpec(name=name, address=str(hv.get("ansible_host") or name), groups=groups)
    spec.vars = {k: v for k, v in hv.items() if not k.startswith("ansible_") or k in (
        "ansible_host", "ansible_port", "ansible_user")}
    for var, attr, conv in (("ansible_port", "port", _as_int), ("gpu_count", "gpu_count", _as_int),
                            ("ib_rate_gbps", "ib_rate_gbps", _as_int), ("roce_rate_gbps", "roce_rate_gbps", _as_int)):
        if var in hv and hv[var] not in (None, ""):
            try:
                setattr(spec, attr, conv(hv[var]))
            except ValueError as e:
                bad(var, str(e))
    spec.user = str(hv["ansible_user"]) if hv.get("ansible_user") else None
    if not 0 < spec.port < 65536:
        bad("ansible_port", f"port {spec.port} out of range 1-65535")
    if spec.gpu_count < 0 or spec.gpu_count > 16:
        bad("gpu_count", f"{spec.gpu_count} is not a plausible GPU count per node (0-16)")
    model = hv.get("gpu_model")
    if model:
        spec.gpu_model = str(model).strip().lower()
        from clusterkit.profiles import available_profiles

        if spec.gpu_model not in available_profiles():
            bad("gpu_model", f"unknown GPU model '{model}' (profiles: {', '.join(available_profiles())})")
        if spec.gpu_count == 0 and "gpu_count" not in hv:
            bad("gpu_count", f"gpu_model is {model} but gpu_count is not set")
    elif spec.gpu_count > 0:
        bad("gpu_model", f"gpu_count is {spec.gpu_count} but gpu_model is not set")
    spec.ib_devices = _as_list(hv.get("ib_devices"))
    spec.roce_interfaces = _as_list(hv.get("roce_interfaces"))
    for var, devs, rdma in (("ib_devices", spec.ib_devices, True), ("roce_interfaces", spec.roce_interfaces, False)):
        for d in devs:
            why = device_name_problem(d, rdma)
            if why:
                bad(var, why)
    for rate_var, devs, label in (("ib_rate_gbps", spec.ib_devices, "ib_devices"),
                                  ("roce_rate_gbps", spec.roce_interfaces, "roce_interfaces")):
        rate = getattr(spec, rate_var)
        if devs and rate is None:
            bad(rate_var, f"{label} are declared but their expected rate is not")
        if rate is not None and rate not in (10, 25, 40, 50, 56, 100, 200, 400, 800):
            bad(rate_var, f"{rate} Gb/s is not a link rate (10/25/40/50/56/100/200/400/800)")
    for var in ("bmc_host", "rack", "rail", "scheduler", "slurm_node"):
        if hv.get(var) not in (None, ""):
            setattr(spec, var, str(hv[var]))
    if spec.slurm_node is not None and not _SLURM_NODE.fullmatch(spec.slurm_node):
        bad("slurm_node", f"'{spec.slurm_node[:80]}' is not one Slurm node name (letters, digits, . _ -; "
                          f"no hostlist or list)")
    if spec.scheduler not in (None, "slurm"):
        bad("scheduler", f"unknown scheduler '{spec.scheduler}' (supported: slurm)")
    common = " ".join(str(hv.get(k) or "") for k in ("ansible_ssh_common_args", "ansible_ssh_extra_args"))
    try:
        spec.ssh_common_args = shlex.split(common)
    except ValueError as e:
        bad("ansible_ssh_common_args", f"cannot be split like a shell would: {e}")
    key = hv.get("ansible_ssh_private_key_file") or hv.get("ansible_private_key_file")
    spec.private_key_file = str(key) if key else None
    spec.become = _bool(hv.get("ansible_become", False)) or _bool(hv.get("clusterkit_become", False))
    return spec


def load_inventory(source: str | os.PathLike[str], *, strict: bool = True) -> tuple[Inventory, list[Problem]]:
    """Parse with Ansible and type every host; problems are returned, not raised.

    A file Ansible cannot parse at all is a ConfigError naming the file.
    """
    src = str(source)
    if not Path(src).exists():
        raise ConfigError(f"{src}: inventory not found")
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    chatter = io.StringIO()  # Ansible prints its parse warnings itself; we fold them into one line
    try:
        with contextlib.redirect_stderr(chatter), contextlib.redirect_stdout(chatter):
            im = InventoryManager(loader=loader, sources=[src])
    except AnsibleError:
        why = re.findall(r"Failed to parse inventory: (.*)", chatter.getvalue()) or \
            re.findall(r"\[WARNING\]: (.*)", chatter.getvalue())
        detail = why[0].strip() if why else "neither INI nor YAML inventory syntax"
        raise ConfigError(f"{src}: not a valid Ansible inventory: {detail}") from None
    vm = VariableManager(loader=loader, inventory=im)
    problems: list[Problem] = []
    hosts: list[HostSpec] = []
    for h in im.get_hosts():
        if h.name in ("localhost",) and not h.vars:
            continue
        hv = vm.get_vars(host=h, include_hostvars=False)
        hv = {k: v for k, v in hv.items() if k not in ("groups", "group_names", "inventory_hostname")}
        groups = sorted(g.name for g in h.get_groups() if g.name not in ("all", "ungrouped"))
        hosts.append(_spec(h.name, dict(hv), groups, src, problems))
    if not hosts:
        problems.append(Problem(src, "-", "hosts", "the inventory defines no host"))
    inv = Inventory(src, hosts)
    if strict and problems:
        raise ConfigError(str(problems[0]) + (f" (+{len(problems) - 1} more problems; run 'clusterkit inventory check')" if len(problems) > 1 else ""))
    return inv, problems
