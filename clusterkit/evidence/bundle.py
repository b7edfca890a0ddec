"""Evidence bundles: one directory per node holding what its tools printed.

Layout (a contract): `bundle.json` plus files such as `host/uname.txt`,
`gpu/nvidia-smi-q.txt`, `nccl/all_reduce_perf.txt`, `fabric/ibstat.txt`.
A run directory holds one bundle per node, and `_cluster/` for evidence that
belongs to the whole cluster (multi-node tests).
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clusterkit import __version__
from clusterkit.results import now_iso

if TYPE_CHECKING:
    from clusterkit.evidence.kinds import Kind

META = "bundle.json"
CLUSTER_DIR = "_cluster"
# Larger files are refused unread: no tool output of interest is this big, and
# reading one would blow the analyzer's memory.
MAX_FILE_BYTES = 64 * 1024 * 1024


class EvidenceError(Exception):
    """A file that cannot be used as evidence (empty, binary, huge, unreadable)."""


def decode_evidence(data: bytes, name: str) -> str:
    """Bytes to text, refusing what is clearly not a tool's text output."""
    if not data.strip():
        raise EvidenceError(f"{name}: file is empty")
    head = data[:65536]
    if b"\x00" in head:
        raise EvidenceError(f"{name}: binary content (NUL bytes), not a tool's text output")
    text = data.decode("utf-8", errors="replace")
    bad = text[:65536].count("\ufffd")
    if bad > max(16, len(text[:65536]) // 20):
        raise EvidenceError(f"{name}: binary content (not UTF-8 text)")
    return text


def read_evidence_file(path: Path) -> str:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise EvidenceError(
            f"{path}: {size / 2**20:.0f} MiB is larger than the {MAX_FILE_BYTES // 2**20} MiB limit for one tool output"
        )
    return decode_evidence(path.read_bytes(), str(path))


@dataclass
class Bundle:
    """A node's evidence, on disk (`root`) or in memory (`files`, for loose files)."""

    host: str
    root: Path | None = None
    files: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    _paths: list[str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def open(cls, root: Path) -> "Bundle":
        meta_path = root / META
        meta: dict[str, Any] = {}
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError) as e:
                meta = {"outcome": "error", "message": f"{meta_path}: unreadable bundle.json ({e})"}
        host = str(meta.get("host") or root.name)
        return cls(host=host, root=root, meta=meta)

    @classmethod
    def virtual(cls, host: str, files: dict[str, str], meta: dict[str, Any] | None = None) -> "Bundle":
        return cls(host=host, files=dict(files), meta=dict(meta or {"host": host}))

    @property
    def outcome(self) -> str:
        return str(self.meta.get("outcome", "ok"))

    @property
    def simulated(self) -> bool:
        return bool(self.meta.get("simulated", False))

    def paths(self) -> list[str]:
        if self.root is None:
            return sorted(self.files)
        if self._paths is not None:  # a bundle is read-only while analyzed
            return self._paths
        out = []
        for dirpath, _dirs, names in os.walk(self.root):
            for n in names:
                rel = os.path.relpath(os.path.join(dirpath, n), self.root)
                if rel != META:
                    out.append(rel.replace(os.sep, "/"))
        self._paths = sorted(out)
        return self._paths

    def glob(self, pattern: str) -> list[str]:
        return [p for p in self.paths() if fnmatch.fnmatchcase(p, pattern)]

    def exists(self, path: str) -> bool:
        if self.root is None:
            return path in self.files
        return (self.root / path).is_file()

    def text(self, path: str) -> str | None:
        """The file's text, None when absent; EvidenceError when unusable."""
        if self.root is None:
            return self.files.get(path)
        p = self.root / path
        if not p.is_file():
            return None
        return read_evidence_file(p)

    def json(self, path: str) -> Any:
        t = self.text(path)
        if t is None:
            return None
        try:
            return json.loads(t)
        except ValueError as e:
            raise EvidenceError(f"{path}: not valid JSON ({e})") from e

    def not_installed(self, path: str) -> bool:
        """The tool that should have written `path` is not on the node (the shell's exit 127)."""
        c = self.command(path)
        return bool(c) and (bool(c.get("not_installed")) or c.get("exit_code") == 127)

    def command(self, path: str) -> dict[str, Any] | None:
        """What bundle.json recorded about the command that wrote `path`."""
        for c in self.meta.get("commands", []):
            if c.get("path") == path:
                return c
        return None


class BundleWriter:
    """Writes a bundle directory; `finish()` writes bundle.json last."""

    def __init__(self, root: Path, host: str, *, simulated: bool = False, declared: dict[str, Any] | None = None):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.meta: dict[str, Any] = {
            "host": host,
            "clusterkit_version": __version__,
            "started_at": now_iso(),
            "finished_at": None,
            "outcome": "ok",
            "simulated": simulated,
            "declared": declared or {},
            "commands": [],
            "tool_versions": {},
        }
        if simulated:
            self.meta["label"] = "SIMULATED: generated by clusterkit, not collected from hardware"

    def write(self, path: str, data: str | bytes) -> Path:
        p = self.root / path
        if ".." in Path(path).parts or Path(path).is_absolute():
            raise ValueError(f"bundle path escapes the bundle: {path}")
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            p.write_text(data)
        else:
            p.write_bytes(data)
        return p

    def record(self, path: str, command: str, exit_code: int | None, duration_s: float,
               stderr: str = "", status: str = "ok", **extra: Any) -> None:
        """`extra`: e.g. local_start_epoch/local_end_epoch (the controller's clock
        around the command), which clock-skew analysis needs."""
        self.meta["commands"].append({
            **extra,
            "path": path,
            "command": command,
            "exit_code": exit_code,
            "duration_s": round(duration_s, 3),
            "status": status,          # ok | timeout | error
            "stderr": stderr[-4000:],  # tail only: tools can be chatty
        })

    def put(self, kind: "Kind", data: str | bytes, *, exit_code: int | None = 0, duration_s: float = 0.0,
            command: str | None = None, **extra: Any) -> str:
        """Write a file of `kind` (at kind.path, or `path=` for a templated kind) and record the
        command that printed it (the kind's own, unless `command` says otherwise)."""
        path = extra.pop("path", None) or kind.path
        self.write(path, data)
        self.record(path, command or kind.command_line, exit_code, duration_s, **extra)
        return path

    def set_outcome(self, outcome: str, message: str | None = None) -> None:
        self.meta["outcome"] = outcome
        if message:
            self.meta["message"] = message

    def finish(self, **extra: Any) -> Path:
        self.meta.update(extra)
        self.meta["finished_at"] = now_iso()
        p = self.root / META
        p.write_text(json.dumps(self.meta, indent=2, sort_keys=True) + "\n")
        return p


def find_bundles(path: Path) -> list[Path]:
    """A bundle directory itself, or the bundles one level below a run directory."""
    if (path / META).is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_dir() and (p / META).is_file())
