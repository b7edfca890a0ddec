"""`clusterkit check --local`: one node checks itself (Slurm health check, prolog, epilog, srun task).

Exit codes fit Slurm: 0 the node is healthy (warnings, and checks that could not judge,
do not fail it); 1 a check failed on the node's own hardware or software, which fails a
prolog (Slurm drains the node and requeues the job) and is what a health check drains
for (`--drain`); 2 a usage or configuration error.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional

import typer

from clusterkit.cli.common import FormatOpt, OutputOpt, ProfileOpt, checked_number, emit, env_inventory
from clusterkit.errors import ConfigError
from clusterkit.results import NodeResult, RunResult

EXIT_HEALTHY, EXIT_FAILED = 0, 1


def _summary(run: RunResult, node: NodeResult, elapsed: float, over_budget: list[str], budget: float) -> list[str]:
    bad = [c for c in node.checks if c.status in ("fail", "error", "warn")]
    head = (f"clusterkit check {node.host}: {node.status.upper()} ({len(node.checks)} checks in {elapsed:.1f} s"
            + (f"; {len(bad)} not passing" if bad else "") + ")")
    lines = [head]
    for c in sorted(bad, key=lambda c: ("fail", "error", "warn").index(c.status)):
        f = next((f for f in c.findings if f.severity == c.status), None)
        lines.append(f"  {c.status:<5} {c.id}: " + (f"{f.code} {f.headline()}" if f else c.summary))
    if over_budget:
        lines.append(f"  skipped over the {budget:g} s budget: {', '.join(over_budget)}")
    return lines


def register(app: typer.Typer) -> None:
    @app.command()
    def check(
        local: bool = typer.Option(False, "--local", help="Check the node this runs on, without SSH (the fleet: "
                                                           "`clusterkit verify`)."),
        inventory: Optional[Path] = typer.Option(None, "--inventory", "-i", help="Inventory declaring this node's "
                                                 "hardware (default: $ANSIBLE_INVENTORY); the node is found by Slurm "
                                                 "node name or host name."),
        node: Optional[str] = typer.Option(None, "--node", help="This node's name (default: $SLURMD_NODENAME, "
                                                                "else `hostname -s`)."),
        suite: str = typer.Option("node", "--suite", help="Suite (default: node, sized for a prolog or health "
                                                          "check; verify's quick and full include load tests)."),
        profile: Optional[str] = ProfileOpt,
        budget: float = typer.Option(20.0, "--budget", help="Seconds for all probes; those that do not fit are "
                                                            "skipped and reported (0: no budget)."),
        drain: bool = typer.Option(False, "--drain", help="Drain this node in Slurm when a check fails (reason "
                                                          "'clusterkit: CODE ...'); resume it when it passes, if "
                                                          "clusterkit drained it."),
        keep_evidence: Optional[Path] = typer.Option(None, "--keep-evidence", help="Keep the bundle under this "
                                                     "directory (DIR/<node>/)."),
        collect_only: Optional[Path] = typer.Option(None, "--collect-only", help="Write the bundle under DIR/<node>/ "
                                                    "and stop, without analysis (the srun launcher's step)."),
        fmt: Optional[str] = FormatOpt,
        output: Optional[Path] = OutputOpt,
    ) -> None:
        """Run the suite's probes on this node and analyze them here (Slurm health check, prolog, epilog)."""
        from clusterkit.analysis import ProfileResolver, analyze_bundles
        from clusterkit.evidence.bundle import Bundle
        from clusterkit.fleet.collect import plan_commands
        from clusterkit.fleet.local import collect_local, node_spec
        from clusterkit.suites import load_suite

        if not local:
            raise ConfigError("check runs on the node itself: give --local (to check the fleet, use verify)")
        checked_number("--budget", budget, unit="(seconds; 0: none)")
        if collect_only is not None and (drain or keep_evidence is not None):
            raise ConfigError("--collect-only writes the bundle only: it takes neither --drain nor --keep-evidence")
        if fmt is not None and fmt not in ("table", "json", "junit"):
            raise ConfigError(f"unknown --format '{fmt}' (table, json, junit)")
        t0 = time.monotonic()
        spec = node_spec(node, env_inventory(inventory))
        s = load_suite(suite)
        resolver = ProfileResolver(profile)
        resolver.get(resolver.name_for(spec))            # an unknown profile is a config error before any probe
        slurm_node = spec.slurm_node or spec.name
        slurm = _slurm(slurm_node) if drain else None     # so is a Slurm that cannot be reached
        out_dir = collect_only or keep_evidence or Path(tempfile.mkdtemp(prefix="clusterkit-check-"))
        try:
            local_run = collect_local(spec, plan_commands([spec], s, resolver)[spec.name], out_dir,
                                      budget_s=budget or None)
            if collect_only is not None:
                typer.echo(f"{spec.name}: {local_run.ran} commands -> {local_run.root}"
                           + (f"; skipped over the {budget:g} s budget: {', '.join(local_run.over_budget)}"
                              if local_run.over_budget else ""))
                raise typer.Exit(EXIT_HEALTHY)
            run = analyze_bundles([Bundle.open(local_run.root)], s, profiles=resolver, specs={spec.name: spec})
        finally:
            if collect_only is None and keep_evidence is None:
                shutil.rmtree(out_dir, ignore_errors=True)
        result = run.nodes[0]
        failing = _failing(result)
        lines = _summary(run, result, time.monotonic() - t0, local_run.over_budget, budget)
        if slurm is not None:
            lines += _settle(slurm, slurm_node, failing)
        if fmt is not None:
            from clusterkit.render import render

            emit(render(run, fmt, to_terminal=None if output is None else False), output)
            typer.echo("\n".join(lines), err=True)
        else:
            emit("\n".join(lines), output)
        raise typer.Exit(EXIT_FAILED if failing else EXIT_HEALTHY)


def _failing(node: NodeResult) -> str | None:
    """The drain reason for a node whose own checks failed; None when it is healthy."""
    from clusterkit.burnin import failing_codes
    from clusterkit.slurm import drain_reason

    codes, detail = failing_codes(node)   # own verdicts only: a check that could not judge never drains
    return drain_reason(codes, detail) if codes else None


def _slurm(node: str):
    from clusterkit.slurm import Slurm, SlurmError

    s = Slurm(timeout_s=10.0)
    try:
        s.nodes(node)     # ConfigError (exit 2) when sinfo is missing
    except SlurmError as e:
        raise ConfigError(f"--drain: Slurm cannot be asked about {node}: {e}") from None
    return s


def _settle(slurm, slurm_node: str, reason: str | None) -> list[str]:
    from clusterkit.slurm import SlurmError, settle_own_node

    try:
        done = settle_own_node(slurm, slurm_node, reason)
    except SlurmError as e:
        return [f"  slurm: could not read {slurm_node}'s state: {e}"]
    return [f"  slurm: {a.action} {a.node}: {err or a.reason}" for a, err in done if a.action != "keep" or err]
