"""Find the node(s) and NIC(s) that slow a multi-node all-reduce, in few rounds.

The algorithm only sees a `Tester`: "run these group tests concurrently, tell me the
bus bandwidth of each". The same code drives real runs (clusterkit.fleet.nccl_runner)
and the simulator (clusterkit.sim.nccl), so what the benchmark measures is what runs.

Model: a ring all-reduce runs at the pace of its slowest member, so a group test is
low when any member (or any member's NIC on a tested rail) is slow. Stages, each one
round of concurrent tests on disjoint nodes:

1. screen   disjoint groups of `group_nodes` nodes cover the cluster;
2. split    failing groups are halved and both halves tested (recursive halving),
            until a failing group has 2-3 nodes;
3. isolate  each member of a failing small group is tested with a cleared partner;
4. rails    each remaining suspect is tested per rail (one GPU per node, NCCL_IB_HCA
            set to that rail's NIC; every rail at once) with a new partner, plus one
            control pair of cleared nodes that gives the per-rail reference;
5. confirm  before accusing anyone, the suspicion is retested with a third partner:
            the slow rails alone (-> NIC/cable) or a full test (-> node). A node whose
            NICs are all fine alone but whose full tests are slow needs one more failing
            full test, and a node with several slow NICs one more low result per NIC
            (reconfirm). One noisy run therefore never drains a healthy node or NIC.

Rounds: 1 + (log2(group_nodes) - 1) + 3 (+1 reconfirm when needed), whatever the number of culprits, since all
tests of a stage run at once (group_nodes=2: 4 rounds; pure halving from the whole
cluster: log2(N) + 3).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable


@dataclass(frozen=True)
class GroupTest:
    nodes: tuple[str, ...]
    rail: int | None = None       # None: every GPU and NIC; r: one GPU per node, NIC of rail r only
    stage: str = ""


@dataclass
class TestOutcome:
    __test__ = False  # not a pytest test class
    busbw_gbps: float | None      # None: the test did not produce a figure (counts as failed)
    duration_s: float = 0.0
    raw: str | None = None        # the test's output, when real
    error: str | None = None


# One round: the tests run concurrently; outcomes in the same order.
Tester = Callable[[list[GroupTest]], list[TestOutcome]]


@dataclass
class LocalizeConfig:
    group_nodes: int = 2                      # first-round group size (2: pairs; >= N: pure halving)
    pass_fraction: float = 0.90               # a test passes at >= this fraction of the reference
    expected_full_gbps: float | None = None   # reference for full tests (None: median of measured)
    expected_rail_gbps: float | None = None   # reference for one-rail tests (None: control pair)
    rails: list[str] = field(default_factory=list)   # NIC name per rail index (mlx5_0, ...)
    node_rail_fraction: float = 0.5           # this share of rails slow or more -> the node, not a NIC


@dataclass
class Culprit:
    host: str
    part: str                      # "node" | "nic"
    rails: list[int] = field(default_factory=list)
    nics: list[str] = field(default_factory=list)
    observed_gbps: float | None = None
    reference_gbps: float | None = None
    evidence_rounds: list[int] = field(default_factory=list)
    reason: str = ""


@dataclass
class Verdict:
    status: str                    # culprits | none_reproduced | inconclusive
    culprits: list[Culprit]
    rounds: list[dict[str, Any]]
    cleared: int
    unresolved: list[str]          # suspects that could not be tested (no partner left)
    total_time_s: float
    tests: int
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        culprits = []
        for c in self.culprits:
            d = asdict(c)
            for k in ("observed_gbps", "reference_gbps"):
                d[k] = None if d[k] is None else round(d[k], 2)
            culprits.append(d)
        return {
            "status": self.status,
            "culprits": culprits,
            "rounds": self.rounds,
            "cleared_nodes": self.cleared,
            "unresolved": self.unresolved,
            "total_time_s": round(self.total_time_s, 1),
            "tests": self.tests,
            "round_count": len(self.rounds),
            "config": self.config,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def evidence_files(self, base: str = "nccl") -> dict[str, str]:
        """`<base>/localize.json` plus each real test's raw output as its own file (the JSON
        names the file instead of holding the text), for the `_cluster/` bundle."""
        doc = self.to_dict()
        files: dict[str, str] = {}
        for rd in doc["rounds"]:
            for i, t in enumerate(rd["tests"]):
                raw = t.pop("raw", None)
                if raw is not None:
                    path = f"{base}/localize/round-{rd['round']:02d}-test-{i:03d}.txt"
                    files[path] = raw
                    t["raw_path"] = path
        files[f"{base}/localize.json"] = json.dumps(doc, indent=2, sort_keys=True) + "\n"
        return files


def _halves(group: tuple[str, ...]) -> list[tuple[str, ...]]:
    mid = len(group) // 2
    return [group[:mid], group[mid:]]


def _chunks(nodes: list[str], size: int) -> list[tuple[str, ...]]:
    size = max(2, size)
    out = [tuple(nodes[i:i + size]) for i in range(0, len(nodes), size)]
    if len(out) > 1 and len(out[-1]) < 2:
        out[-2] = out[-2] + out[-1]
        out.pop()
    return out


class _Run:
    """State of one localization: rounds so far, references, cleared nodes."""

    def __init__(self, tester: Tester, cfg: LocalizeConfig, keep_raw: bool):
        self.tester = tester
        self.cfg = cfg
        self.keep_raw = keep_raw
        self.rounds: list[dict[str, Any]] = []
        self.full_values: list[float] = []
        self.rail_values: list[float] = []
        self.total_time = 0.0
        self.tests = 0

    def reference(self, rail: bool) -> float | None:
        exp = self.cfg.expected_rail_gbps if rail else self.cfg.expected_full_gbps
        if exp:
            return exp
        vals = self.rail_values if rail else self.full_values
        return statistics.median(vals) if vals else None

    def run(self, stage: str, tests: list[GroupTest]) -> list[tuple[bool, TestOutcome]]:
        if not tests:
            return []
        outcomes = self.tester(tests)
        if len(outcomes) != len(tests):
            raise ValueError(f"tester returned {len(outcomes)} outcomes for {len(tests)} tests")
        # Only screening and control tests feed the measured reference: there most groups are healthy.
        for t, o in zip(tests, outcomes):
            if o.busbw_gbps is not None and t.stage in ("screen", "control"):
                (self.rail_values if t.rail is not None else self.full_values).append(o.busbw_gbps)
        here = {kind: [o.busbw_gbps for t, o in zip(tests, outcomes)
                       if o.busbw_gbps is not None and (t.rail is not None) == kind] for kind in (True, False)}
        idx = len(self.rounds) + 1
        records = []
        judged = []
        for t, o in zip(tests, outcomes):
            ref = self.reference(t.rail is not None)
            if ref is None and here[t.rail is not None]:
                ref = statistics.median(here[t.rail is not None])  # type: ignore[type-var]
            ok = o.busbw_gbps is not None and (ref is None or o.busbw_gbps >= self.cfg.pass_fraction * ref)
            judged.append((ok, o))
            rec: dict[str, Any] = {"nodes": list(t.nodes), "rail": t.rail, "stage": t.stage,
                                   "busbw_gbps": None if o.busbw_gbps is None else round(o.busbw_gbps, 2),
                                   "reference_gbps": None if ref is None else round(ref, 2),
                                   "pass": ok}
            if t.rail is not None and t.rail < len(self.cfg.rails):
                rec["nic"] = self.cfg.rails[t.rail]
            if o.error:
                rec["error"] = o.error
            if self.keep_raw and o.raw is not None:
                rec["raw"] = o.raw
            records.append(rec)
        dur = max((o.duration_s for o in outcomes), default=0.0)
        self.total_time += dur
        self.tests += len(tests)
        self.rounds.append({"round": idx, "stage": stage, "duration_s": round(dur, 1), "tests": records})
        return judged

    @property
    def last_round(self) -> int:
        return len(self.rounds)


class _Partners:
    """Hands out cleared nodes as partners, never twice in a round, never the same twice per suspect."""

    def __init__(self, cleared: Iterable[str]):
        self.pool = list(cleared)
        self.used_by: dict[str, set[str]] = {}

    def add(self, nodes: Iterable[str]) -> None:
        for n in nodes:
            if n not in self.pool:
                self.pool.append(n)

    def assign(self, suspects: list[str]) -> dict[str, str]:
        busy: set[str] = set()
        out: dict[str, str] = {}
        for s in suspects:
            seen = self.used_by.setdefault(s, set())
            pick = next((p for p in self.pool if p not in busy and p not in seen), None)
            if pick is None:
                pick = next((p for p in self.pool if p not in busy), None)
            if pick is None:
                continue
            busy.add(pick)
            seen.add(pick)
            out[s] = pick
        return out


def localize(nodes: list[str], tester: Tester, cfg: LocalizeConfig | None = None,
             *, keep_raw: bool = False) -> Verdict:
    """Name the nodes and NICs that slow group all-reduce tests among `nodes`."""
    cfg = cfg or LocalizeConfig()
    run = _Run(tester, cfg, keep_raw)
    nodes = list(dict.fromkeys(nodes))
    cleared: list[str] = []
    suspects: list[str] = []

    # 1-2: screen, then halve failing groups.
    groups = _chunks(nodes, cfg.group_nodes)
    stage = "screen"
    while groups:
        res = run.run(stage, [GroupTest(g, None, stage) for g in groups])
        nxt: list[tuple[str, ...]] = []
        for g, (ok, _o) in zip(groups, res):
            if ok:
                cleared.extend(g)
            elif len(g) >= 4:
                nxt.extend(_halves(g))
            else:
                suspects.extend(g)
        groups, stage = nxt, "split"

    partners = _Partners(cleared)
    unresolved: list[str] = []

    def pair_round(stage: str, who: list[str], rail_sets: dict[str, list[int]] | None = None,
                   control: bool = False) -> dict[str, dict[int | None, tuple[bool, TestOutcome]]]:
        pick = partners.assign(who)
        for s in who:
            if s not in pick and s not in unresolved:
                unresolved.append(s)
        tests: list[GroupTest] = []
        owners: list[str | None] = []
        for s, p in pick.items():
            for r in (rail_sets or {}).get(s, [None]):  # type: ignore[list-item]
                tests.append(GroupTest((s, p), r, stage))
                owners.append(s)
        if control and cfg.expected_rail_gbps is None:
            free = [c for c in partners.pool if c not in pick.values()]
            if len(free) >= 2:
                for r in range(len(cfg.rails)):
                    tests.append(GroupTest((free[0], free[1]), r, "control"))
                    owners.append(None)
        out: dict[str, dict[int | None, tuple[bool, TestOutcome]]] = {}
        # Controls first so that the per-rail reference exists when suspects are judged.
        order = sorted(range(len(tests)), key=lambda i: owners[i] is not None)
        res = run.run(stage, [tests[i] for i in order])
        for i, r in zip(order, res):
            if owners[i] is not None:
                out.setdefault(owners[i], {})[tests[i].rail] = r  # type: ignore[index]
        return out

    # 3: isolate each suspect with a cleared partner.
    if suspects:
        iso = pair_round("isolate", suspects)
        still = []
        for s in suspects:
            if s in iso and not iso[s][None][0]:
                still.append(s)
            elif s in iso:
                partners.add([s])
        suspects = still

    culprits: list[Culprit] = []
    if suspects:
        isolate_round = run.last_round
        nr = len(cfg.rails)
        slow_rails: dict[str, list[int]] = {s: [] for s in suspects}
        rail_round = None
        if nr:
            rr = pair_round("rails", suspects, {s: list(range(nr)) for s in suspects}, control=True)
            rail_round = run.last_round
            for s, by_rail in rr.items():
                slow_rails[s] = sorted(r for r, (ok, _o) in by_rail.items() if r is not None and not ok)
        # 5: confirm with a third partner: the slow rails alone, or a full test.
        plan: dict[str, list[int | None]] = {}
        for s in suspects:
            bad = slow_rails.get(s, [])
            if bad and len(bad) < cfg.node_rail_fraction * nr:
                plan[s] = list(bad)
            else:
                plan[s] = [None]
        conf = pair_round("confirm", suspects, plan)  # type: ignore[arg-type]
        confirm_round = run.last_round
        weak: list[tuple[str, list[float], list[int]]] = []
        weak_nics: list[tuple[str, list[int], list[float], list[int]]] = []

        def _nic_culprit(s: str, rails: list[int], obs: list[float], rounds: list[int]) -> Culprit:
            names = [cfg.rails[r] for r in rails if r < nr]
            return Culprit(s, "nic", rails, names, min(obs) if obs else None, run.reference(True), rounds,
                           "slow only on " + ", ".join(names) + ": that NIC, its cable/optic or its switch port")
        for s in suspects:
            if s not in conf:
                continue
            results = conf[s]
            failed = [r for r, (ok, _o) in results.items() if not ok]
            if not failed:
                partners.add([s])
                continue
            obs = [o.busbw_gbps for r, (ok, o) in results.items() if not ok and o.busbw_gbps is not None]
            rounds = [isolate_round] + ([rail_round] if rail_round else []) + [confirm_round]
            if failed == [None] and nr and not slow_rails.get(s):
                # Only full tests are slow and every NIC alone is fine: the weakest evidence,
                # so it needs one more failing full test before anyone is accused.
                weak.append((s, obs, rounds))
                continue
            if failed == [None]:
                bad = slow_rails.get(s, [])
                reason = ("slow on most or all rails: the node's PCIe/GPU-NIC path or the node itself"
                          if bad else "slow in every full test (no per-rail tests: rails unknown)")
                culprits.append(Culprit(s, "node", bad, [cfg.rails[r] for r in bad if r < nr],
                                        min(obs) if obs else None, run.reference(False), rounds, reason))
            else:
                rails = sorted(r for r in failed if r is not None)
                if len(rails) > 1:
                    # Several NICs of one node: rarer than a noisy run on a healthy rail next to
                    # the bad one, so each rail needs a third low result.
                    weak_nics.append((s, rails, obs, rounds))
                else:
                    culprits.append(_nic_culprit(s, rails, obs, rounds))
        if weak or weak_nics:
            plan2: dict[str, list[int | None]] = {w[0]: [None] for w in weak}
            plan2.update({w[0]: list(w[1]) for w in weak_nics})
            again = pair_round("reconfirm", list(plan2), plan2)  # type: ignore[arg-type]
            for s, obs, rounds in weak:
                if s in again and not again[s][None][0]:
                    o = again[s][None][1]
                    culprits.append(Culprit(
                        s, "node", [], [], min(obs + [o.busbw_gbps] if o.busbw_gbps is not None else obs or [0.0]),
                        run.reference(False), rounds + [run.last_round],
                        "slow in every full test while each NIC alone is fine: intra-node path "
                        "(NVLink/NVSwitch, PCIe, GPU clocks)"))
                else:
                    partners.add([s])
            for s, rails, obs, rounds in weak_nics:
                still = [r for r in rails if s in again and r in again[s] and not again[s][r][0]]
                if still:
                    culprits.append(_nic_culprit(s, still, obs, rounds + [run.last_round]))
    status = "culprits" if culprits else ("inconclusive" if unresolved else "none_reproduced")
    return Verdict(status, culprits, run.rounds, len(set(partners.pool)), unresolved, run.total_time,
                   run.tests, {k: v for k, v in asdict(cfg).items()})


def sequential(run_one: Callable[[GroupTest], TestOutcome]) -> Tester:
    """A Tester from a one-test callable (runs a round's tests one after the other)."""

    def tester(tests: list[GroupTest]) -> list[TestOutcome]:
        return [run_one(t) for t in tests]

    return tester
