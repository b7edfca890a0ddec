"""The NVIDIA software stack a node has installed and loaded (probe `stack.versions`).

Input: `dpkg-query -W -f='${Package}\\t${Version}\\t${db:Status-Status}\\n' <patterns>` lines, and a
`loaded<TAB>nvidia<TAB><version>` line from /sys/module/nvidia/version (no version: not loaded). Package versions are
reduced to the upstream version the version table uses ("1:4.2.3-1" -> "4.2.3").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clusterkit.evidence.kinds import declare
from clusterkit.parsers import ParseError

# Always prints the `loaded` line (empty version: no driver loaded), so a node without any
# package still leaves evidence (a node not provisioned yet, or not a dpkg system).
_SCRIPT = (
    "dpkg-query -W -f='${Package}\\t${Version}\\t${db:Status-Status}\\n' 'nvidia-driver*' "
    "'nvidia-fabricmanager*' 'libnvidia-nscq*' libnccl2 'datacenter-gpu-manager*' doca-ofed "
    "nvidia-container-toolkit 2>/dev/null; "
    "printf 'loaded\\tnvidia\\t%s\\n' \"$(cat /sys/module/nvidia/version 2>/dev/null)\""
)
STACK_VERSIONS = declare("stack-versions", "stack/versions.txt", command=("sh", "-c", _SCRIPT),
                         description="installed NVIDIA stack packages (dpkg-query) and loaded driver")
PATH = STACK_VERSIONS.path
# Package name -> stack component (see playbooks/vars/versions.yml).
_COMPONENTS = (
    (re.compile(r"^nvidia-driver(-\d+)?(-open|-server|-server-open)?$"), "driver"),
    (re.compile(r"^nvidia-fabricmanager(-\d+)?$"), "fabric_manager"),
    (re.compile(r"^libnccl2$"), "nccl"),
    (re.compile(r"^datacenter-gpu-manager(-\d+-core)?$"), "dcgm"),
    (re.compile(r"^doca-ofed$"), "doca"),
    (re.compile(r"^nvidia-container-toolkit$"), "container_toolkit"),
)
_LINE = re.compile(r"^(\S+)\t(\S*)\t(\S*)$")
_LOADED = re.compile(r"^loaded\tnvidia\t(\d+(?:\.\d+)+)?$")
_UPSTREAM = re.compile(r"^(?:\d+:)?(\d+(?:\.\d+)*)")


@dataclass
class StackVersions:
    components: dict[str, str] = field(default_factory=dict)   # component -> upstream version
    packages: dict[str, str] = field(default_factory=dict)     # installed package -> full version
    nccl_cuda: str | None = None                               # "12.8" from libnccl2's +cuda12.8
    loaded_driver: str | None = None


@STACK_VERSIONS.recognizer
def is_stack_versions(text: str) -> bool:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return bool(lines) and all(_LINE.match(ln) or _LOADED.match(ln) for ln in lines) and any(
        ln.startswith(("nvidia-", "libnccl", "datacenter-gpu-manager", "doca-ofed", "libnvidia-", "loaded\t"))
        for ln in lines)


@STACK_VERSIONS.parser
def parse_stack_versions(text: str) -> StackVersions:
    out = StackVersions()
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        m = _LOADED.match(line)
        if m:
            out.loaded_driver = m.group(1)   # None: no nvidia module loaded
            continue
        m = _LINE.match(line)
        if not m:
            raise ParseError(f"not a dpkg-query package line: {line[:80]!r}")
        pkg, version, status = m.groups()
        if status != "installed" or not version:
            continue   # removed packages leave config-files entries
        out.packages[pkg] = version
        up = _UPSTREAM.match(version)
        for pattern, comp in _COMPONENTS:
            if pattern.match(pkg) and up:
                out.components[comp] = up.group(1)
                if comp == "nccl":
                    cuda = re.search(r"\+cuda(\d+\.\d+)", version)
                    out.nccl_cuda = cuda.group(1) if cuda else None
    return out
