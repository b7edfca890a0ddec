"""The installed NVIDIA stack per node: fabric manager vs driver, a driver waiting for a reboot,
and drift between nodes (the provisioning playbooks pin one stack; this checks it stayed so)."""

from __future__ import annotations

from clusterkit.analysis import ClusterContext
from clusterkit.checks.host import _majority
from clusterkit.checks.registry import check
from clusterkit.parsers import ParseError
from clusterkit.parsers.stack_versions import PATH, STACK_VERSIONS, StackVersions
from clusterkit.results import CheckResult, Finding

CID = "stack.versions"
# Components compared across nodes; NCCL jobs span nodes, so these must agree.
DRIFT_COMPONENTS = ("driver", "fabric_manager", "nccl", "nccl_cuda", "dcgm", "doca")


def _values(s: StackVersions) -> dict[str, str]:
    v = dict(s.components)
    if s.nccl_cuda:
        v["nccl_cuda"] = s.nccl_cuda
    return v


@check(CID, needs=(STACK_VERSIONS,), scope="cluster")
def stack_versions(ctx: ClusterContext) -> list[CheckResult]:
    """Installed driver, fabric manager, NCCL, DCGM and DOCA versions: coherent on the node and across nodes."""
    parsed: dict[str, StackVersions] = {}
    out: list[CheckResult] = []
    for n in ctx.nodes:
        try:
            got = n.parsed(STACK_VERSIONS)
        except ParseError as e:
            r = CheckResult.error(CID, f"package list unusable: {e}", evidence=PATH)
        else:
            if got is not None:
                parsed[n.host] = got
                continue
            r = CheckResult.skip(CID, f"not collected: {PATH}")   # an older bundle, or a loose file
        r.host = n.host
        out.append(r)
    values = {h: _values(s) for h, s in parsed.items()}
    fleet = {c: _majority({h: v[c] for h, v in values.items() if c in v}) for c in DRIFT_COMPONENTS}
    for host, s in parsed.items():
        v = values[host]
        if not v and not s.loaded_driver:
            r = CheckResult.skip(CID, "no NVIDIA stack package installed (not provisioned, or not a dpkg system)")
            r.host = host
            out.append(r)
            continue
        fs: list[Finding] = []
        driver = s.loaded_driver or v.get("driver")
        fm = v.get("fabric_manager")
        if fm and driver and fm != driver:
            fs.append(Finding("GPU_FABRIC_MANAGER_VERSION_MISMATCH", "fail", "nvidia-fabricmanager",
                              f"fabric manager {fm} does not match driver {driver}: NVSwitch systems stay "
                              "'system not yet initialized' and CUDA sees no GPU",
                              observed=fm, limit=driver,
                              action="install the fabric manager at exactly the driver version "
                                     f"(clusterkit provision -l {host} --tags fabric_manager), then restart nvidia-fabricmanager",
                              evidence=PATH))
        if s.loaded_driver and v.get("driver") and s.loaded_driver != v["driver"]:
            fs.append(Finding("STACK_DRIVER_NOT_LOADED", "warn", "NVIDIA driver",
                              f"driver {v['driver']} is installed but {s.loaded_driver} is loaded",
                              observed=s.loaded_driver, limit=v["driver"],
                              action="drain the node and reboot it so the installed driver (and nvidia-peermem) load",
                              evidence=PATH))
        if len(parsed) > 1:
            for comp in DRIFT_COMPONENTS:
                common = fleet.get(comp)
                if common and v.get(comp) and v[comp] != common:
                    fs.append(Finding("STACK_VERSION_DRIFT", "warn", comp.replace("_", " "),
                                      f"{comp.replace('_', ' ')} {v[comp]} differs from the fleet's {common}",
                                      observed=v[comp], limit=common,
                                      action=f"reprovision with the fleet's stack (clusterkit provision -l {host}); "
                                             "check that unattended upgrades are off and the packages are held",
                                      evidence=PATH))
        summary = ", ".join(f"{c} {v[c]}" for c in ("driver", "fabric_manager", "nccl", "dcgm", "doca") if c in v)
        r = CheckResult.from_findings(CID, fs, summary or f"driver {s.loaded_driver} loaded",
                                      {"loaded_driver": s.loaded_driver} if s.loaded_driver else {})
        r.host = host
        out.append(r)
    return out
