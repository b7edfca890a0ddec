"""Evidence bundles: one directory per node holding what its tools printed.

Layout (a contract): `bundle.json` plus files such as `host/uname.txt`,
`gpu/nvidia-smi-q.txt`, `nccl/all_reduce_perf.txt`, `fabric/ibstat.txt`.
A run directory holds one bundle per node, and `_cluster/` for evidence that
belongs to the whole cluster (multi-node tests).

Bundles come from colleagues and vendors as well as from `collect`, so reading
one trusts nothing in it: every file is opened relative to the bundle without
following a symbolic link at any level, only regular files are read (a FIFO,
device or socket is refused unopened), sizes are bounded, and `bundle.json` is
size- and shape-checked; a bad one makes that node `error`, never the run.
Bundles are written private (directories 0700, files 0600): they hold root-only
logs (dmesg, the BMC event log).
"""

from __future__ import annotations

import errno
import fnmatch
import json
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, get_args

from clusterkit import __version__
from clusterkit.results import Outcome, now_iso

if TYPE_CHECKING:
    from clusterkit.evidence.kinds import Kind

META = "bundle.json"
CLUSTER_DIR = "_cluster"
# Larger files are refused unread: no tool output of interest is this big, and
# reading one would blow the analyzer's memory.
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_META_BYTES = 16 * 1024 * 1024     # bundle.json: commands and their stderr tails, far below this
MAX_META_DEPTH = 32                   # nesting of bundle.json; ours is 4 deep
MAX_BUNDLE_ENTRIES = 20_000           # files listed in one bundle; a real one has ~60
OUTCOMES: tuple[str, ...] = get_args(Outcome)
DIR_MODE, FILE_MODE = 0o700, 0o600
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


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


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def _read_fd(fd: int, name: str, limit: int) -> bytes:
    """At most `limit` bytes of a regular file, refusing a larger one unread."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise EvidenceError(f"{name}: {_kind_of(st.st_mode)}, not a regular file; refused")
    if st.st_size > limit:
        raise EvidenceError(f"{name}: {st.st_size / 2**20:.0f} MiB is larger than the {limit // 2**20} MiB limit "
                            f"for one tool output")
    chunks, got = [], 0
    while True:   # the size may change while read: never read past the limit
        b = os.read(fd, min(1 << 20, limit + 1 - got))
        if not b:
            return b"".join(chunks)
        chunks.append(b)
        got += len(b)
        if got > limit:
            raise EvidenceError(f"{name}: grew past the {limit // 2**20} MiB limit while read")


def _safe_parts(rel: str) -> list[str]:
    parts = rel.split("/")
    if not rel or rel.startswith("/") or "\x00" in rel or any(p in ("", ".", "..") for p in parts):
        raise EvidenceError(f"{rel!r}: not a path inside the bundle")
    return parts


def read_bundle_file(root: Path, rel: str, limit: int = MAX_FILE_BYTES) -> bytes | None:
    """The bytes of `root/rel`, None when absent. Every component is opened relative to
    its directory without following links, and only a regular file is opened at all."""
    parts = _safe_parts(rel)
    try:
        dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise EvidenceError(f"{root}: cannot open the bundle ({e.strerror})") from None
    try:
        for i, p in enumerate(parts[:-1]):
            try:
                nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, dir_fd=dfd)
            except FileNotFoundError:
                return None
            except OSError as e:
                where = "/".join(parts[:i + 1])
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise EvidenceError(f"{where}: not a directory of the bundle (a symbolic link or a file); "
                                        f"{rel} refused, links are never followed") from None
                raise EvidenceError(f"{rel}: unreadable ({e.strerror})") from None
            os.close(dfd)
            dfd = nfd
        try:
            st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):   # refused unopened: opening a FIFO or a device can block or act
            what = _kind_of(st.st_mode)
            extra = "; links are never followed" if what == "a symbolic link" else ""
            raise EvidenceError(f"{rel}: {what}, not a regular file of the bundle; refused{extra}")
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | _NOFOLLOW, dir_fd=dfd)
        except OSError as e:
            raise EvidenceError(f"{rel}: unreadable ({e.strerror})") from None
        try:
            return _read_fd(fd, rel, limit)
        except OSError as e:
            raise EvidenceError(f"{rel}: unreadable ({e.strerror})") from None
        finally:
            os.close(fd)
    finally:
        os.close(dfd)


def read_evidence_file(path: Path) -> str:
    """A loose file named by the user (links to it are followed, as `cat` would): regular
    files only, opened without blocking, bounded."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise EvidenceError(f"{path}: unreadable ({e.strerror})") from None
    try:
        return decode_evidence(_read_fd(fd, str(path), MAX_FILE_BYTES), str(path))
    finally:
        os.close(fd)


def _depth(v: Any, limit: int) -> int:
    """Nesting depth of a JSON value, without recursion; stops past `limit`."""
    deepest, stack = 0, [(v, 1)]
    while stack:
        x, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            break
        if isinstance(x, dict):
            stack += [(y, d + 1) for y in x.values()]
        elif isinstance(x, list):
            stack += [(y, d + 1) for y in x]
    return deepest


_NUM = (int, float)
_OPT_STR = (str, type(None))
# bundle.json keys that analysis reads, with the JSON types they may have
_META_TYPES: dict[str, tuple[type, ...]] = {
    "host": _OPT_STR, "outcome": (str,), "message": _OPT_STR, "simulated": (bool,), "declared": (dict,),
    "commands": (list,), "tool_versions": (dict,), "label": _OPT_STR, "started_at": _OPT_STR,
    "finished_at": _OPT_STR, "clusterkit_version": _OPT_STR, "nodes": (list,), "note": _OPT_STR,
}
_COMMAND_TYPES: dict[str, tuple[type, ...]] = {
    "path": (str,), "command": (str,), "exit_code": (int, type(None)), "status": (str,), "stderr": (str,),
    "message": (str,), "not_installed": (bool,), "files": (list,), "duration_s": _NUM + (type(None),),
    "local_start_epoch": _NUM + (type(None),), "local_end_epoch": _NUM + (type(None),),
    "phase": (int, type(None)), "launched_on": _OPT_STR,
}
_DECLARED_TYPES: dict[str, tuple[type, ...]] = {
    "name": _OPT_STR, "gpu_model": _OPT_STR, "gpu_count": (int,), "ib_devices": (list,), "ib_rate_gbps": (int, type(None)),
    "roce_interfaces": (list,), "roce_rate_gbps": (int, type(None)), "bmc_host": _OPT_STR, "rack": _OPT_STR,
    "rail": _OPT_STR, "scheduler": _OPT_STR, "slurm_node": _OPT_STR, "groups": (list,), "become": (bool,),
}


def _typed(d: dict[str, Any], types: dict[str, tuple[type, ...]], where: str) -> str | None:
    for k, want in types.items():
        if k not in d:
            continue
        v = d[k]
        ok = isinstance(v, want) and not (isinstance(v, bool) and bool not in want)
        if ok and isinstance(v, list) and k in ("ib_devices", "roce_interfaces", "groups", "files"):
            ok = all(isinstance(x, str) for x in v)
        if not ok:
            return f"{where}'{k}' is {type(v).__name__} {json.dumps(v, default=str)[:40]}"
    return None


def meta_problem(meta: Any) -> str | None:
    """Why a loaded bundle.json cannot be used, or None."""
    if not isinstance(meta, dict):
        return f"the top level is a JSON {type(meta).__name__}, not an object"
    if _depth(meta, MAX_META_DEPTH) > MAX_META_DEPTH:
        return f"nested deeper than {MAX_META_DEPTH} levels"
    why = _typed(meta, _META_TYPES, "")
    if why:
        return why
    if "outcome" in meta and meta["outcome"] not in OUTCOMES:
        return f"'outcome' is {meta['outcome'][:40]!r}, not one of {', '.join(OUTCOMES)}"
    for i, c in enumerate(meta.get("commands", [])):
        why = "not an object" if not isinstance(c, dict) else _typed(c, _COMMAND_TYPES, "")
        if why:
            return f"commands[{i}]: {why}"
    return _typed(meta.get("declared", {}), _DECLARED_TYPES, "declared: ")


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
        """The bundle at `root`; a bundle.json that is unreadable or of the wrong shape gives a
        bundle whose outcome is `error` with the reason (never an exception)."""
        try:
            data = read_bundle_file(root, META, MAX_META_BYTES)
            meta: Any = {} if data is None else json.loads(data.decode("utf-8", errors="replace"))
            why = meta_problem(meta)
        except EvidenceError as e:
            why = str(e).removeprefix(f"{META}: ")
        except RecursionError:
            why = "nested too deep to read"
        except ValueError as e:
            why = f"not valid JSON ({e})"
        if why:
            meta = {"outcome": "error", "message": f"{root / META}: unusable bundle.json: {why}"}
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
        """Every file of the bundle (links and special files too: reading them gives an
        EvidenceError saying why); EvidenceError past MAX_BUNDLE_ENTRIES entries."""
        if self.root is None:
            return sorted(self.files)
        if self._paths is not None:  # a bundle is read-only while analyzed
            return self._paths
        out = []
        for dirpath, _dirs, names in os.walk(self.root):   # never descends into a linked directory
            for n in names:
                rel = os.path.relpath(os.path.join(dirpath, n), self.root)
                if rel != META:
                    out.append(rel.replace(os.sep, "/"))
            if len(out) > MAX_BUNDLE_ENTRIES:
                raise EvidenceError(f"{self.root}: more than {MAX_BUNDLE_ENTRIES:,} files; not an evidence bundle")
        self._paths = sorted(out)
        return self._paths

    def glob(self, pattern: str) -> list[str]:
        return [p for p in self.paths() if fnmatch.fnmatchcase(p, pattern)]

    def exists(self, path: str) -> bool:
        if self.root is None:
            return path in self.files
        return path in self.paths()

    def text(self, path: str) -> str | None:
        """The file's text, None when absent; EvidenceError when unusable."""
        if self.root is None:
            return self.files.get(path)
        data = read_bundle_file(self.root, path)
        return None if data is None else decode_evidence(data, str(self.root / path))

    def json(self, path: str) -> Any:
        t = self.text(path)
        if t is None:
            return None
        try:
            return json.loads(t)
        except RecursionError:
            raise EvidenceError(f"{path}: JSON nested too deep") from None
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


def make_private_dir(path: Path) -> Path:
    """`path` and missing parents, created 0700 (existing ones are left as they are)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass
    return path


class BundleWriter:
    """Writes a bundle directory (0700, files 0600); `finish()` writes bundle.json last."""

    def __init__(self, root: Path, host: str, *, simulated: bool = False, declared: dict[str, Any] | None = None):
        self.root = root
        make_private_dir(root)
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

    def _target(self, path: str) -> Path:
        if ".." in Path(path).parts or Path(path).is_absolute() or "\x00" in path:
            raise ValueError(f"bundle path escapes the bundle: {path}")
        p = self.root / path
        make_private_dir(p.parent)
        return p

    def write(self, path: str, data: str | bytes) -> Path:
        p = self._target(path)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        return p

    def spool(self) -> IO[bytes]:
        """A new private file in the bundle for output still arriving (exclusively created);
        `adopt()` puts it at its path, `discard()` removes it."""
        return tempfile.NamedTemporaryFile("w+b", prefix=".spool-", dir=self.root, delete=False)

    def adopt(self, spool: IO[bytes], path: str) -> Path:
        p = self._target(path)
        spool.close()
        os.replace(spool.name, p)
        return p

    @staticmethod
    def discard(spool: IO[bytes]) -> None:
        spool.close()
        Path(spool.name).unlink(missing_ok=True)

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
        return self.write(META, json.dumps(self.meta, indent=2, sort_keys=True) + "\n")


def bundle_name_problem(name: str) -> str | None:
    """Why `name` cannot be a bundle directory of a run directory, or None: it must be one
    path component that is neither hidden nor reserved (`_cluster`, `bundle.json`)."""
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        return "not a single path component"
    if name in (CLUSTER_DIR, META) or name[0] in "._":
        return f"reserved: names starting with '.' or '_' (such as {CLUSTER_DIR}) are clusterkit's own"
    return None


def bundle_dir(run_dir: Path, name: str) -> Path:
    """`run_dir/name`, refusing any name that would leave run_dir or take a reserved place."""
    why = bundle_name_problem(name)
    if why:
        raise ValueError(f"host name {name!r} cannot name a bundle directory: {why}")
    return run_dir / name


def fresh_run_dir(path: Path) -> Path:
    """Where a new run's bundles go: `path` itself when it is new or empty, else a new
    `run-<UTC time>` directory inside it, so that one run never reads another's bundles."""
    from clusterkit.errors import ConfigError

    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: not a directory")
    if not path.exists() or not any(path.iterdir()):
        return make_private_dir(path)
    stamp = now_iso().replace(":", "").replace("+0000", "Z")
    for n in range(1, 1000):
        d = path / (f"run-{stamp}" + (f"-{n}" if n > 1 else ""))
        try:
            d.mkdir(mode=DIR_MODE)
            return d
        except FileExistsError:
            continue
    raise ConfigError(f"{path}: cannot create a new run directory in it")


def find_bundles(path: Path) -> list[Path]:
    """A bundle directory itself, or the bundles one level below a run directory
    (real directories only: a link in a run directory is not followed)."""
    if (path / META).is_file():
        return [path]
    return sorted(p for p in path.iterdir()
                  if not p.is_symlink() and p.is_dir() and os.path.lexists(p / META))
