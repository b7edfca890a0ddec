"""What NVIDIA stack a node runs: installed package versions and the loaded driver."""

from __future__ import annotations

from clusterkit.parsers.stack_versions import PATH
from clusterkit.probes.registry import simple_probe

# Exit 0 even where nothing matches (a node not provisioned yet, or not a dpkg system): the
# empty output is the evidence.
_SCRIPT = (
    "dpkg-query -W -f='${Package}\\t${Version}\\t${db:Status-Status}\\n' 'nvidia-driver*' "
    "'nvidia-fabricmanager*' 'libnvidia-nscq*' libnccl2 'datacenter-gpu-manager*' doca-ofed "
    "nvidia-container-toolkit 2>/dev/null; "
    "v=$(cat /sys/module/nvidia/version 2>/dev/null) && printf 'loaded\\tnvidia\\t%s\\n' \"$v\"; true"
)
simple_probe("host.stack_versions", PATH, ["sh", "-c", _SCRIPT], timeout_s=20)
