"""Filters that let the playbooks apply clusterkit's own rules (one implementation, in Python).

The rules live in the clusterkit package (clusterkit/versions.py, clusterkit/preflight.py); the
playbooks ship inside it, so the package is found next to them when it is not installed.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _clusterkit():
    try:
        import clusterkit.preflight  # noqa: F401
    except ImportError:
        for parent in Path(__file__).resolve().parents:
            if (parent / "clusterkit" / "versions.py").is_file():
                sys.path.insert(0, str(parent))
                break
    from clusterkit import preflight, versions

    return versions, preflight


def clusterkit_apt_packages(component, **kw):
    """[{name, pin, hold, spec}] a role installs (clusterkit/stack_packages.py decides names and pins)."""
    _clusterkit()
    from clusterkit import stack_packages

    return [p.as_dict() for p in stack_packages.select(component, **kw)]


def _plain(host_vars):
    # hostvars are lazily templated; read only the keys the rules use.
    versions, _ = _clusterkit()
    keys = set(versions.COMPONENT_VARS.values()) | {
        versions.STACK_VAR, versions.KERNEL_MODULES_VAR, versions.NETWORK_FLAVOR_VAR,
        "gpu_model", "gpu_count", "ib_devices", "roce_interfaces", "preflight_secure_boot_signed_modules"}
    return {k: host_vars[k] for k in keys if k in host_vars}


def clusterkit_version_problems(host_vars):
    """['variable: message', ...] for one host's versions (same rules as `inventory check`)."""
    versions, _ = _clusterkit()
    hv = _plain(host_vars)
    model = str(hv.get("gpu_model") or "").strip().lower() or None
    return [f"{var}: {msg}" for var, msg in versions.host_version_problems(hv, versions.load_table(), model)]


def clusterkit_hardware_problems(detected, host_vars, min_free_gib=0):
    """Declared (inventory) vs detected (clusterkit_node_facts) hardware, one message per difference."""
    versions, preflight = _clusterkit()
    return preflight.hardware_problems(detected, _plain(host_vars), versions.load_table(), float(min_free_gib))


def clusterkit_hardware_summary(detected):
    versions, preflight = _clusterkit()
    return preflight.summarize(detected, versions.load_table())


class FilterModule:
    def filters(self):
        return {
            "clusterkit_version_problems": clusterkit_version_problems,
            "clusterkit_hardware_problems": clusterkit_hardware_problems,
            "clusterkit_hardware_summary": clusterkit_hardware_summary,
            "clusterkit_apt_packages": clusterkit_apt_packages,
        }
