"""What NVIDIA stack a node runs: installed package versions and the loaded driver."""

from __future__ import annotations

from clusterkit.parsers.stack_versions import STACK_VERSIONS
from clusterkit.probes.registry import simple_probe

simple_probe("stack.versions", STACK_VERSIONS, timeout_s=20)
