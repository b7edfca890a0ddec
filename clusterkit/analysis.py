"""Analysis: bundles + profile + suite -> results. Pure: reads evidence only.

`verify`, `analyze` and the simulator all end here, so a bundle analyzed on a
laptop gives the same verdict as on the cluster.
"""

from __future__ import annotations

import fnmatch
import functools
import gc
import logging
import math
import os
import pickle
import signal
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from clusterkit.checks.registry import CHECKS, CheckSpec
from clusterkit.errors import ConfigError
from clusterkit.evidence.bundle import Bundle, EvidenceError, decode_evidence
from clusterkit.evidence.kinds import Kind, kind_of_path
from clusterkit.inventory import HostSpec
from clusterkit.parsers import ParseError
from clusterkit.plugins import load_all
from clusterkit.profiles import Profile, load_profile
from clusterkit.results import CheckResult, NodeResult, RunResult, now_iso
from clusterkit.suites import Suite

log = logging.getLogger(__name__)

KEEP_PARSED_MAX_CHARS = 64 * 1024   # parses of larger files (power traces) are dropped after the node's checks


@dataclass
class NodeContext:
    """What a node check sees: one node's evidence, declaration and profile."""

    host: str
    bundle: Bundle
    profile: Profile
    spec: HostSpec | None = None
    params: dict[str, Any] = field(default_factory=dict)
    loose: bool = False           # a single pasted file, not a full bundle
    _cache: dict[tuple[str, Any], Any] = field(default_factory=dict, repr=False)
    _large: set[tuple[str, Any]] = field(default_factory=set, repr=False)

    @property
    def declared(self) -> dict[str, Any]:
        """Hardware declaration: the inventory's, else what the bundle recorded."""
        if self.spec is not None:
            return self.spec.declared()
        return dict(self.bundle.meta.get("declared") or {})

    def text(self, what: Kind | str) -> str | None:
        return self.bundle.text(what.path if isinstance(what, Kind) else what)

    def exists(self, what: Kind | str) -> bool:
        return self.bundle.exists(what.path if isinstance(what, Kind) else what)

    def glob(self, what: Kind | str) -> list[str]:
        """Bundle paths matching a glob, or every file of a kind (templated kinds: one per interface...)."""
        return self.bundle.glob(what.glob if isinstance(what, Kind) else what)

    def parsed(self, what: Kind | str, parser: Callable[[str], Any] | None = None) -> Any:
        """Parse a file once per analysis, whichever checks ask for it (None if absent).

        `what` is a kind (its path and parser) or a bundle path (parsed by `parser`, else by
        the parser of the kind the path belongs to)."""
        path = what.path if isinstance(what, Kind) else what
        if parser is None:
            k = what if isinstance(what, Kind) else kind_of_path(path)
            if k is None or k.parse is None:
                raise TypeError(f"no parser known for {path}")
            parser = k.parse
        key = (path, parser)
        if key not in self._cache:
            t = self.bundle.text(path)
            self._cache[key] = None if t is None else parser(t)
            # a compact file may parse into a lot (a power trace's columns): such parses say so
            if t is not None and (len(t) > KEEP_PARSED_MAX_CHARS
                                  or not getattr(self._cache[key], "keep_after_node", True)):
                self._large.add(key)
        return self._cache[key]

    def drop_large(self) -> None:
        """Forget what was parsed from large files (power traces): memory stays flat
        with fleet size, while cluster checks reuse the small parses instead of redoing them."""
        for key in self._large:
            self._cache.pop(key, None)
        self._large.clear()


@dataclass
class ClusterContext:
    """What a cluster check sees: every reachable node, and `_cluster/` evidence."""

    nodes: list[NodeContext]
    cluster_bundle: Bundle | None
    profile: Profile
    params: dict[str, Any] = field(default_factory=dict)
    node_results: dict[str, NodeResult] = field(default_factory=dict)


def _missing(spec: CheckSpec, bundle: Bundle) -> list[str]:
    paths = bundle.paths()
    have = [n for n in spec.needs if any(fnmatch.fnmatchcase(p, n) for p in paths)]
    if spec.needs_any:
        return [] if have or not spec.needs else list(spec.needs)
    return [n for n in spec.needs if n not in have]


def _why_missing(bundle: Bundle, missing: list[str]) -> list[str]:
    """Each missing path, with the reason collection recorded for it (hung, skipped, not run)."""
    out = []
    for path in missing:
        c = bundle.command(path)
        why = c.get("message") if c and c.get("status") in ("timeout", "skipped", "not_run") else None
        out.append(f"{path} ({why})" if why else path)
    return out


# One check's time budget. Parsers and rules are linear, so a check takes well under a
# second on real evidence; the budget stops whatever a hostile or broken file still finds.
CHECK_BUDGET_S = 60.0
BUDGET_ENV = "CLUSTERKIT_CHECK_BUDGET_S"   # override (seconds); worker processes inherit it
CLUSTER_BUDGET_NODES = 256                 # a cluster check gets one budget per this many nodes


class CheckOvertime(BaseException):
    """Raised into a check when its budget runs out. A BaseException, like KeyboardInterrupt,
    so that a check's own `except Exception` cannot swallow it."""


def check_budget_s() -> float:
    try:
        v = float(os.environ.get(BUDGET_ENV) or CHECK_BUDGET_S)
    except ValueError:
        v = CHECK_BUDGET_S
    return v if math.isfinite(v) and v > 0 else CHECK_BUDGET_S


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """SIGALRM after `seconds` raises CheckOvertime in the code running (regex matching
    included: the re module checks for signals). Only the main thread receives signals;
    elsewhere the caller compares the elapsed time afterwards."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def fire(_sig: int, _frame: Any) -> None:
        raise CheckOvertime

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _overtime(check_id: str, budget: float) -> CheckResult:
    return CheckResult.error(check_id, f"took longer than {budget:g} s and was stopped", code="CHECK_TIMEOUT",
                             component="clusterkit",
                             action="look for an oversized or garbled file among the evidence this check reads, "
                                    "and report it as a clusterkit bug with the bundle")


def _run(spec: CheckSpec, ctx: Any, *args: Any) -> Any:
    budget = check_budget_s()
    if isinstance(ctx, ClusterContext):   # a cluster check reads every node: its budget grows with them
        budget *= max(1.0, len(ctx.nodes) / CLUSTER_BUDGET_NODES)
    t0 = time.perf_counter()
    try:
        with _alarm(budget):
            try:
                out = spec.func(ctx, *args)
            except (EvidenceError, ParseError) as e:
                out = CheckResult.error(spec.id, str(e))
            except Exception as e:  # a bug in one check must not lose the others' results
                log.debug("check %s crashed:\n%s", spec.id, traceback.format_exc())
                out = CheckResult.error(spec.id, f"internal error in check {spec.id}: {type(e).__name__}: {e}",
                                        code="CHECK_CRASHED", component="clusterkit",
                                        action="report this as a clusterkit bug, with the evidence bundle")
    except CheckOvertime:
        out = _overtime(spec.id, budget)
    dt = time.perf_counter() - t0
    if dt > budget:   # where no alarm could fire (not the main thread): the same verdict, afterwards
        out = _overtime(spec.id, budget)
    for r in out if isinstance(out, list) else [out] if out is not None else []:
        r.duration_s = dt
    return out


def _node_checks(ctx: NodeContext, node_specs: list[CheckSpec], suite: Suite, loose: bool) -> list[CheckResult]:
    out: list[CheckResult] = []
    if ctx.bundle.meta.get("unrecognized"):
        out.append(_unrecognized(str(ctx.bundle.meta["unrecognized"])))
    for cs in node_specs:
        if cs.after_others:
            continue
        missing = _missing(cs, ctx.bundle)
        if loose and (not cs.needs or len(missing) == len(cs.needs) and not cs.needs_any or cs.needs_any and missing):
            continue  # a loose file only answers the checks that read its kind
        if missing:
            out.append(CheckResult.skip(cs.id, f"not collected: {', '.join(_why_missing(ctx.bundle, missing))}"))
            continue
        ctx.params = suite.params_for(cs.id)
        out.append(_run(cs, ctx))
    for cs in node_specs:   # e.g. the fatal-signature scan, which reads what the others reported
        if cs.after_others:
            ctx.params = suite.params_for(cs.id)
            out.extend(r for r in [_run(cs, ctx, out)] if r is not None)
    ctx.drop_large()
    return out


# Node checks are independent per node, so large fleets are analyzed on every core,
# in fresh worker processes (clusterkit/workers.py says why not multiprocessing).
# Nodes a worker did not deliver are analyzed here: verdicts never depend on them.
PARALLEL_MIN_NODES = 64
STALL_S = 120.0   # no result from any worker for this long: finish here


def _workers(n_nodes: int) -> int:
    import os

    env = os.environ.get("CLUSTERKIT_ANALYSIS_WORKERS")
    want = int(env) if env and env.isdigit() else min(os.cpu_count() or 1, 8)
    return 1 if n_nodes < PARALLEL_MIN_NODES or want <= 1 else want


class ShippedParses(dict):  # type: ignore[type-arg]
    """A node's parses as a worker sent them back: each kept pickled until a cluster check asks for it,
    and dropped again after that check (`release`). A node's parses take about 5x their pickled size
    as objects: decoded all at once, 10,000 nodes' parses alone would fill 2.7 GB."""

    def __init__(self, packed: dict[Any, bytes]):
        super().__init__()
        self._packed = packed

    def _load(self, key: Any) -> None:
        if not dict.__contains__(self, key) and key in self._packed:
            dict.__setitem__(self, key, pickle.loads(self._packed[key]))

    def __getitem__(self, key: Any) -> Any:
        self._load(key)
        return dict.__getitem__(self, key)

    def get(self, key: Any, default: Any = None) -> Any:
        self._load(key)
        return dict.get(self, key, default)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self._packed

    def release(self) -> None:
        for key in [k for k in self if k in self._packed]:
            dict.__delitem__(self, key)


def node_checks_in_worker(job: tuple[list[CheckSpec], Suite, bool], ctx: NodeContext
                          ) -> tuple[list[CheckResult], dict[Any, bytes], list[str] | None]:
    """In a worker: the node's results, its small parses for the cluster checks (each pickled, see
    ShippedParses), and its bundle's file list (walking 10,000 bundle directories again in the main
    process costs a quarter minute)."""
    load_all()
    node_specs, suite, loose = job
    results = _node_checks(ctx, node_specs, suite, loose)
    packed = {k: pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL) for k, v in ctx._cache.items()}
    return results, packed, ctx.bundle._paths


def _node_checks_all(contexts: list[NodeContext], node_specs: list[CheckSpec], suite: Suite, loose: bool,
                     on_done: Callable[[int, list[CheckResult]], None]) -> None:
    """Every node's checks; `on_done(i, results)` as each node's are known (in any order)."""
    from clusterkit import workers

    n = _workers(len(contexts))
    done: dict[int, Any] = {}
    if n > 1:
        done = workers.run(node_checks_in_worker, (node_specs, suite, loose), contexts, n, stall_s=STALL_S,
                           on_result=lambda i, res: on_done(i, res[0]))
    for i, ctx in enumerate(contexts):
        if i in done:
            ctx._cache = ShippedParses(done[i][1])
            if ctx.bundle._paths is None:
                ctx.bundle._paths = done[i][2]
        else:
            on_done(i, _node_checks(ctx, node_specs, suite, loose))


def _unusable(b: Bundle, spec: HostSpec | None, profiles: "ProfileResolver") -> str | None:
    """Why this node's bundle cannot be analyzed at all (listed, profiled), or None. A profile
    named by the bundle itself that does not exist is that node's error; one named by the
    user (--profile, the inventory) is the run's ConfigError."""
    try:
        b.paths()
    except (EvidenceError, OSError) as e:
        return f"evidence bundle unusable: {e}"
    if profiles.override is None and spec is None:
        name = profiles.name_for(None, b)
        try:
            profiles.get(name)
        except ConfigError as e:
            return f"bundle.json declares gpu_model {name[:80]!r}: {e}"
    return None


class ProfileResolver:
    """The profile of a host: --profile, else its gpu_model, else `base`. Cached."""

    def __init__(self, override: str | None = None, default: str = "base"):
        self.override = override
        self.default = default
        self._cache: dict[str, Profile] = {}

    def name_for(self, spec: HostSpec | None, bundle: Bundle | None = None) -> str:
        if self.override:
            return self.override
        if spec is not None and spec.gpu_model:
            return spec.gpu_model
        if bundle is not None and (bundle.meta.get("declared") or {}).get("gpu_model"):
            return str(bundle.meta["declared"]["gpu_model"])
        return self.default

    def get(self, name: str) -> Profile:
        if name not in self._cache:
            self._cache[name] = load_profile(name)
        return self._cache[name]


def _without_cyclic_gc(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run `func` with Python's cycle collector off: a large fleet's analysis holds millions of small
    objects (every node's results and parses), which each collection would walk again; what the
    analysis allocates holds no cycles to find. The collector comes back on afterwards."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        was = gc.isenabled()
        gc.disable()
        try:
            return func(*args, **kwargs)
        finally:
            if was:
                gc.enable()
    return wrapper


@_without_cyclic_gc
def analyze_bundles(
    bundles: list[Bundle],
    suite: Suite,
    *,
    profiles: ProfileResolver | None = None,
    specs: dict[str, HostSpec] | None = None,
    cluster_bundle: Bundle | None = None,
    loose: bool = False,
    started_at: str | None = None,
    extra_nodes: list[NodeResult] | None = None,
    on_node: Callable[[NodeResult], None] | None = None,
) -> RunResult:
    """Run the suite's checks over every bundle; never raises for bad evidence.

    `on_node(node)` is called once per node as soon as its node checks are done (a
    burn-in stores them at once); cluster checks may add results to it afterwards."""
    load_all()
    profiles = profiles or ProfileResolver()
    specs = specs or {}
    tell = on_node or (lambda _n: None)
    selected = [CHECKS[c] for c in suite.check_ids if c in CHECKS]
    node_results: list[NodeResult] = list(extra_nodes or [])
    contexts: list[NodeContext] = []
    profile_names: set[str] = set()
    jobs: list[NodeResult] = []
    for b in bundles:
        spec = specs.get(b.host)
        nr = NodeResult(b.host, simulated=b.simulated)
        node_results.append(nr)
        # a bundle that cannot be listed, or names a profile that does not exist, is that
        # node's error (never the run's); one cut short is analyzed on what it has
        unusable = _unusable(b, spec, profiles) if b.outcome == "ok" or b.meta.get("commands") else None
        if b.outcome != "ok" or unusable:
            nr.outcome = "error" if b.outcome == "ok" else b.outcome  # type: ignore[assignment]
            said = str(b.meta.get("message") or b.outcome)
            nr.message = (unusable if b.outcome == "ok" else f"{said}; {unusable}") if unusable else said
            if unusable or not b.meta.get("commands"):
                tell(nr)
                continue  # never reached, or nothing readable: nothing to analyze
            # cut short (a hung command, the deadline, an interrupt): analyzed on what it has
        pname = profiles.name_for(spec, b)
        profile_names.add(pname)
        contexts.append(NodeContext(b.host, b, profiles.get(pname), spec, loose=loose))
        jobs.append(nr)
    node_specs = [cs for cs in selected if cs.scope == "node"]

    def node_done(i: int, checks: list[CheckResult]) -> None:
        jobs[i].checks.extend(checks)
        tell(jobs[i])

    _node_checks_all(contexts, node_specs, suite, loose, node_done)
    cluster_results: list[CheckResult] = []
    by_host = {n.host: n for n in node_results}
    cluster_specs = [cs for cs in selected if cs.scope == "cluster"]
    if cluster_specs and (contexts or cluster_bundle is not None):
        default_profile = profiles.get(sorted(profile_names)[0] if len(profile_names) == 1 else profiles.name_for(None))
        cctx = ClusterContext(contexts, cluster_bundle, default_profile, node_results=by_host)
        for cs in cluster_specs:
            if loose and cluster_bundle is None:
                continue
            cctx.params = suite.params_for(cs.id)
            out = _run(cs, cctx)
            for c in contexts:      # what this check decoded of the shipped parses
                if isinstance(c._cache, ShippedParses):
                    c._cache.release()
            for r in out if isinstance(out, list) else [out]:
                if r.host and r.host in by_host:
                    by_host[r.host].checks.append(r)
                else:
                    cluster_results.append(r)
    for nr in node_results:
        nr.checks.sort(key=lambda c: c.id)
    profile_label = profiles.override or (sorted(profile_names)[0] if len(profile_names) == 1 else
                                          "per-host" if profile_names else profiles.default)
    run = RunResult(profile_label, suite.name, node_results, cluster_results,
                    simulated=any(b.simulated for b in bundles), started_at=started_at or now_iso())
    run.finished_at = now_iso()
    return run


STDIN = Path("-")


def open_paths(paths: list[Path], kind_override: str | None = None,
               stdin_text: str | bytes | None = None) -> tuple[list[Bundle], Bundle | None, list[NodeResult], bool]:
    """Bundles, run directories and loose files (`-`: standard input) -> bundles (+ error results
    for unusable files). A paste of several hosts' output (pdsh/clush) becomes one node per host,
    and files of one host are that host's bundle.

    Returns (bundles, cluster bundle, error node results, loose?)."""
    from clusterkit.evidence.bundle import CLUSTER_DIR, MAX_FILE_BYTES, find_bundles, read_evidence_file
    from clusterkit.evidence.kinds import KINDS
    from clusterkit.errors import ConfigError

    load_all()
    bundles: list[Bundle] = []
    errors: list[NodeResult] = []
    cluster: Bundle | None = None
    loose = False
    pasted = _Pasted(kind_override)
    if kind_override and kind_override not in KINDS:
        raise ConfigError(f"unknown --kind '{kind_override}' (known: {', '.join(sorted(KINDS))})")
    for p in paths:
        if p == STDIN:
            loose = True
            data = stdin_text.encode() if isinstance(stdin_text, str) else stdin_text or b""
            try:
                if len(data) > MAX_FILE_BYTES:   # bounded like any evidence file (the CLI reads one byte more)
                    raise EvidenceError(f"standard input: more than the {MAX_FILE_BYTES // 2**20} MiB limit for one "
                                        f"tool output")
                pasted.add("stdin", decode_evidence(data, "standard input"), "standard input")
            except EvidenceError as e:
                errors.append(_file_error("stdin", str(e)))
            continue
        if not p.exists():
            raise ConfigError(f"{p}: no such file or directory")
        if p.is_dir():
            found = find_bundles(p)
            if not found:
                raise ConfigError(f"{p}: not an evidence bundle (no bundle.json here or one level below)")
            for d in found:
                b = Bundle.open(d)
                if d.name == CLUSTER_DIR:
                    cluster = b
                else:
                    bundles.append(b)
            continue
        loose = True
        try:
            text = read_evidence_file(p)
        except (EvidenceError, OSError) as e:
            errors.append(_file_error(p.name, str(e)))
            continue
        pasted.add(p.name, text, str(p))
    return bundles + pasted.bundles(), cluster, errors, loose


class _Pasted:
    """Loose files -> virtual bundles: one per host of a pdsh/clush paste, else one per file."""

    def __init__(self, kind_override: str | None):
        self.kind_override = kind_override
        self.files: dict[str, dict[str, str]] = {}    # node -> {bundle path: text}
        self.meta: dict[str, dict[str, Any]] = {}

    def add(self, name: str, text: str, source: str) -> None:
        from clusterkit.evidence.kinds import KINDS, sniff_document
        from clusterkit.evidence.normalize import command_sections, normalize_document

        doc = normalize_document(text)
        for host in doc.hosts:
            node = host or name
            if self.kind_override is None:      # several commands' outputs in one paste (or one host's)
                parts = command_sections(doc, host)
                if parts is not None and self._add_commands(node, parts, source):
                    continue
            part = doc.for_host(host) if host is not None else doc
            k = KINDS[self.kind_override] if self.kind_override else sniff_document(part)
            path = k.loose_path if k is not None else f"unrecognized/{name}"
            node = self._free(node, path, f"{node} ({name})")
            self._put(node, path, part.inner_text() if host is not None else text, source, k)
            if k is None:
                self.meta[node]["unrecognized"] = (f"{source}: unrecognized content (not a known tool output); "
                                                   f"name its kind with --kind ({', '.join(sorted(KINDS))})")

    def _add_commands(self, node: str, parts: list[str], source: str) -> bool:
        """Several commands' outputs pasted together: each read as its own file of the paste's node (a
        second output of the same kind, e.g. `ethtool -S` of another port, is its own node, named by its
        command). Unrecognized parts stay in the bundle, for the fatal-signature scan, without making the
        node unusable. False when no part is recognized: the paste is then read whole."""
        from clusterkit.evidence.kinds import sniff_document
        from clusterkit.evidence.normalize import normalize_document

        docs = [normalize_document(p) for p in parts]
        kinds = [sniff_document(d) for d in docs]
        if not any(kinds):
            return False
        for i, (part, d, k) in enumerate(zip(parts, docs, kinds), 1):
            if k is not None:
                named = f"{node} ({d.commands[0] if d.commands else i})"[:200]
                self._put(self._free(node, k.loose_path, named), k.loose_path, part, source, k)
            elif d.text.strip():
                self._put(node, f"unrecognized/{node}.{i}", part, source, None)
        return True

    def _free(self, node: str, path: str, other: str) -> str:
        """`node`, or `other` when `node` already has a file at `path` (a second file of one kind: its own node)."""
        return other if path in self.files.get(node, {}) else node

    def _put(self, node: str, path: str, text: str, source: str, kind: Kind | None) -> None:
        self.files.setdefault(node, {})[path] = text
        meta = self.meta.setdefault(node, {"host": node, "source": source})
        if kind is not None:
            meta.setdefault("loose_kinds", []).append(kind.name)
            meta.setdefault("loose_kind", kind.name)

    def bundles(self) -> list[Bundle]:
        return [Bundle.virtual(node, files, self.meta[node]) for node, files in self.files.items()]


def _unrecognized(message: str) -> CheckResult:
    return CheckResult.error("evidence.read", message, code="EVIDENCE_UNUSABLE", component="file",
                             action="pass the tool's text output as printed, or name its kind with --kind")


def _file_error(host: str, message: str) -> NodeResult:
    return NodeResult(host, "ok", [_unrecognized(message)])
