"""The result model: findings, check results, node results and a run.

The JSON shape is a contract (see docs/results.md); tests pin it.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

from clusterkit import __version__

Status = Literal["pass", "warn", "fail", "error", "skip"]
Severity = Literal["fail", "warn", "error", "info"]
# ok: collected in full; timeout and interrupted: cut short, analyzed on what was collected;
# unreachable and error: not reached or not logged in (no evidence)
Outcome = Literal["ok", "unreachable", "timeout", "error", "interrupted"]

# Worst first: a node or run takes the worst status of its parts.
_STATUS_RANK = {"fail": 4, "error": 3, "warn": 2, "pass": 1, "skip": 0}
_SEVERITY_STATUS = {"fail": "fail", "error": "error", "warn": "warn", "info": "pass"}


def worst(statuses: Iterable[str], default: Status = "pass") -> Status:
    best: str | None = None
    for s in statuses:
        if best is None or _STATUS_RANK[s] > _STATUS_RANK[best]:
            best = s
    return best if best is not None else default  # type: ignore[return-value]


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Finding:
    """One thing a technician should know: what, where, how bad and what to do."""

    code: str
    severity: Severity
    component: str
    message: str
    observed: Any = None
    limit: Any = None
    unit: str | None = None
    action: str | None = None
    evidence: str | None = None

    def headline(self) -> str:
        """`component: message`, without the component twice where the message already starts with it."""
        if not self.component or self.message.startswith(self.component):
            return self.message
        return f"{self.component}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "component": self.component,
            "message": self.message,
            "observed": self.observed,
            "limit": self.limit,
            "unit": self.unit,
            "action": self.action,
            "evidence": self.evidence,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Finding":
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


@dataclass
class CheckResult:
    id: str
    status: Status
    summary: str
    findings: list[Finding] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    # Set by cluster-scope checks that speak about one node: the result is
    # attached to that node instead of the cluster list.
    host: str | None = None

    @classmethod
    def from_findings(
        cls,
        check_id: str,
        findings: list[Finding],
        ok_summary: str,
        metrics: dict[str, Any] | None = None,
    ) -> "CheckResult":
        """Status from the worst finding; the summary names the first bad one."""
        status = worst((_SEVERITY_STATUS[f.severity] for f in findings), "pass")
        bad = [f for f in findings if f.severity != "info"]
        if bad:
            summary = bad[0].message
            if len(bad) > 1:
                summary += f" (+{len(bad) - 1} more)"
        else:
            summary = ok_summary
        return cls(check_id, status, summary, list(findings), dict(metrics or {}))

    @classmethod
    def skip(cls, check_id: str, reason: str) -> "CheckResult":
        return cls(check_id, "skip", reason)

    @classmethod
    def error(cls, check_id: str, message: str, code: str = "INPUT_UNUSABLE",
              component: str = "evidence", action: str | None = None,
              evidence: str | None = None) -> "CheckResult":
        f = Finding(code, "error", component, message, action=action, evidence=evidence)
        return cls(check_id, "error", message, [f])

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "summary": self.summary,
            "findings": [f.to_dict() for f in self.findings],
            "metrics": self.metrics,
            "duration_s": round(self.duration_s, 4),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CheckResult":
        return cls(
            d["id"], d["status"], d.get("summary", ""),
            [Finding.from_dict(f) for f in d.get("findings", [])],
            dict(d.get("metrics", {})), float(d.get("duration_s", 0.0)),
        )


@dataclass
class NodeResult:
    host: str
    outcome: Outcome = "ok"
    checks: list[CheckResult] = field(default_factory=list)
    message: str | None = None  # why the node is unreachable/timeout/error
    simulated: bool = False

    @property
    def status(self) -> Status:
        if self.outcome != "ok":   # not collected in full: at least an error, a failed check still shows
            return worst([*(c.status for c in self.checks), "error"])
        return worst((c.status for c in self.checks), "skip" if not self.checks else "pass")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "host": self.host,
            "outcome": self.outcome,
            "status": self.status,
            "checks": [c.to_dict() for c in self.checks],
        }
        if self.message:
            d["message"] = self.message
        if self.simulated:
            d["simulated"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NodeResult":
        return cls(d["host"], d.get("outcome", "ok"),
                   [CheckResult.from_dict(c) for c in d.get("checks", [])],
                   d.get("message"), bool(d.get("simulated", False)))


@dataclass
class RunResult:
    profile: str
    suite: str
    nodes: list[NodeResult] = field(default_factory=list)
    cluster_checks: list[CheckResult] = field(default_factory=list)
    simulated: bool = False
    started_at: str = field(default_factory=now_iso)
    finished_at: str | None = None
    clusterkit_version: str = __version__
    interrupted: str | None = None      # "SIGINT"/"SIGTERM": collection was stopped, the report is partial

    @property
    def status(self) -> Status:
        return worst([n.status for n in self.nodes] + [c.status for c in self.cluster_checks], "pass")

    def failed(self) -> bool:
        """What the exit code 1 means: a check failed/errored or a node was lost."""
        return self.status in ("fail", "error")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "clusterkit_version": self.clusterkit_version,
            "profile": self.profile,
            "suite": self.suite,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "status": self.status,
            "simulated": self.simulated,
            "nodes": [n.to_dict() for n in self.nodes],
            "cluster_checks": [c.to_dict() for c in self.cluster_checks],
        }
        if self.interrupted:
            d["interrupted"] = self.interrupted
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunResult":
        return cls(
            d.get("profile", ""), d.get("suite", ""),
            [NodeResult.from_dict(n) for n in d.get("nodes", [])],
            [CheckResult.from_dict(c) for c in d.get("cluster_checks", [])],
            bool(d.get("simulated", False)), d.get("started_at", ""), d.get("finished_at"),
            d.get("clusterkit_version", __version__), d.get("interrupted"),
        )
