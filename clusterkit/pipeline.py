"""The verbs' library side: simulate, verify an inventory, analyze paths -> RunResult."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from clusterkit.analysis import ProfileResolver, analyze_bundles, open_paths
from clusterkit.evidence.bundle import CLUSTER_DIR, Bundle, find_bundles, fresh_run_dir
from clusterkit.inventory import HostSpec, Inventory, load_inventory
from clusterkit.results import NodeResult, RunResult, now_iso
from clusterkit.suites import Suite, load_suite

NodeSink = Callable[[NodeResult], None]


@contextmanager
def _evidence_dir(keep: Path | None, under: Path | None = None) -> Iterator[Path]:
    """The run's evidence directory: a fresh one under `keep` when that already holds
    something (another run's bundles are never mixed in), else a private temporary one
    (under `under`: srun's nodes write to a shared file system)."""
    if keep is not None:
        yield fresh_run_dir(keep)
        return
    d = Path(tempfile.mkdtemp(prefix="clusterkit-evidence-", dir=under))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _suite(suite: "str | Suite") -> Suite:
    return suite if isinstance(suite, Suite) else load_suite(suite)


def recorded_suite(bundles: list[Bundle]) -> Suite | None:
    """The suite the bundles were collected with (their recorded checks), None when they say nothing;
    a config error when they disagree."""
    from clusterkit.checks.registry import CHECKS
    from clusterkit.errors import ConfigError

    said = [b.meta for b in bundles if isinstance(b.meta.get("suite"), str) and b.meta["suite"]]
    names = sorted({m["suite"] for m in said})
    if not names:
        return None
    if len(names) > 1:
        raise ConfigError(f"the bundles were collected with different suites ({', '.join(names)}): give --suite")
    try:
        base = load_suite(names[0])
    except ConfigError:
        raise ConfigError(f"the bundles were collected with suite '{names[0]}', which is not available here: "
                          "give --suite") from None
    # bundles collected with other --checks of the same suite: every check one of them was collected for
    picked = {c for m in said for c in (m.get("checks") or base.check_ids)}
    known = [c for c in base.check_ids if c in picked] + [c for c in CHECKS if c in picked and c not in base.check_ids]
    return dataclasses.replace(base, check_ids=known or base.check_ids)


def _analyze_run_dir(dirs: list[Path], suite: Suite, profile: str | None, specs: dict[str, HostSpec] | None,
                     started_at: str, on_node: NodeSink | None = None) -> RunResult:
    """Analyze exactly these bundle directories (this run's), `_cluster/` among them."""
    bundles, cluster = [], None
    for d in dirs:
        b = Bundle.open(d)
        if d.name == CLUSTER_DIR:
            cluster = b
        else:
            bundles.append(b)
    return analyze_bundles(bundles, suite, profiles=ProfileResolver(profile), specs=specs,
                           cluster_bundle=cluster, started_at=started_at, on_node=on_node)


def simulate_run(*, nodes: int = 8, seed: int = 0, suite: "str | Suite" = "quick", profile: str | None = None,
                 evidence_dir: Path | None = None, gpu_model: str | None = None,
                 on_node: NodeSink | None = None) -> RunResult:
    """Generate a simulated cluster's bundles and analyze them like real ones."""
    from clusterkit.sim.cluster import DEFAULT_MODEL, generate

    started = now_iso()
    s = _suite(suite)  # config errors before any work
    with _evidence_dir(evidence_dir) as d:
        generate(d, nodes=nodes, seed=seed, gpu_model=gpu_model or DEFAULT_MODEL, meta=s.bundle_meta())
        run = _analyze_run_dir(find_bundles(d), s, profile, None, started, on_node)
    run.simulated = True
    return run


def verify_inventory(inventory_path: "str | Path | Inventory", *, suite: "str | Suite" = "quick", profile: str | None = None,
                     limit: str | None = None, evidence_dir: Path | None = None, fleet_options: Any = None,
                     progress: Callable | None = None, stop: Any = None,
                     on_node: NodeSink | None = None, srun: Any = None) -> RunResult:
    """Collect evidence from every host of the inventory over SSH (or with one srun step when `srun`,
    a clusterkit.fleet.srun.SrunOptions, is given), then analyze it.

    `stop` (a clusterkit.fleet.collect.StopRequest) cuts SSH collection short: what was
    collected is still analyzed, and the result says the run was interrupted."""
    from clusterkit.fleet.collect import FleetOptions, collect_bundles, safe_progress

    started = now_iso()
    hosts = target_hosts(inventory_path, limit, srun)
    s = _suite(suite)
    resolver = ProfileResolver(profile)
    for h in hosts:  # unknown profiles are config errors before any SSH
        resolver.get(resolver.name_for(h))
    with _evidence_dir(evidence_dir, srun.shared_dir if srun is not None else None) as d:
        if srun is not None:
            from clusterkit.fleet.srun import collect_srun

            # the nodes collect for the suite by name (--checks/--skip narrow the analysis here)
            dirs = collect_srun(hosts, s.source or s.name, profile, d, srun, progress)
        else:
            dirs = collect_bundles(hosts, s, resolver, d, fleet_options or FleetOptions(), progress=progress,
                                   stop=stop)
        safe_progress(progress)("", "phase", "analyzing")
        run = _analyze_run_dir(dirs, s, profile, {h.name: h for h in hosts}, started, on_node)
    if stop is not None and stop.requested:
        run.interrupted = stop.reason
    return run


def target_hosts(inventory: "str | Path | Inventory | None", limit: str | None, srun: Any) -> list[HostSpec]:
    """The inventory's hosts (--limit applied); with srun, narrowed to (or, without an inventory,
    taken from) the Slurm nodes it names."""
    inv = None if inventory is None else inventory if isinstance(inventory, Inventory) else \
        load_inventory(inventory)[0]
    if inv is not None:
        inv = inv.limit(limit)
    if srun is not None:
        from clusterkit.fleet.srun import select_hosts

        return select_hosts(inv, srun)
    assert inv is not None, "an inventory is needed without srun"
    return inv.targets()


def analyze_paths(paths: list[Path], *, suite: "str | Suite | None" = None, profile: str | None = None,
                  kind: str | None = None, stdin_text: str | bytes | None = None,
                  select: Callable[[Suite], Suite] | None = None) -> RunResult:
    """Bundles, run directories and loose files (`-` is `stdin_text`) -> results.

    `suite` None: the suite the bundles were collected with (full for loose files and bundles that do
    not say); `select` narrows the suite chosen (`--checks`/`--skip`)."""
    started = now_iso()
    bundles, cluster, errors, loose = open_paths(paths, kind, stdin_text)
    s = _suite(suite) if suite is not None else recorded_suite(bundles) or load_suite("full")
    if select is not None:
        s = select(s)
    return analyze_bundles(bundles, s, profiles=ProfileResolver(profile), cluster_bundle=cluster,
                           loose=loose, started_at=started, extra_nodes=errors)
