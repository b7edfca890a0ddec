"""What NVIDIA stack a node runs: installed package versions and the loaded driver."""

from __future__ import annotations

from clusterkit.parsers.stack_versions import PATH
from clusterkit.probes.registry import simple_probe

# Always prints the `loaded` line (empty version: no driver loaded), so a node without any
# package still leaves evidence (a node not provisioned yet, or not a dpkg system).
_SCRIPT = (
    "dpkg-query -W -f='${Package}\\t${Version}\\t${db:Status-Status}\\n' 'nvidia-driver*' "
    "'nvidia-fabricmanager*' 'libnvidia-nscq*' libnccl2 'datacenter-gpu-manager*' doca-ofed "
    "nvidia-container-toolkit 2>/dev/null; "
    "printf 'loaded\\tnvidia\\t%s\\n' \"$(cat /sys/module/nvidia/version 2>/dev/null)\""
)
simple_probe("stack.versions", PATH, ["sh", "-c", _SCRIPT], timeout_s=20)
