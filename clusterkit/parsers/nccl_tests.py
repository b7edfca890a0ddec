"""nccl-tests output (all_reduce_perf and friends) -> one `NcclRun` record.

Reads every layout seen in the wild, by looking at each row's tokens rather than
at fixed columns:
- current (2.13+): size count type redop root, then time algbw busbw #wrong twice;
- older 2.x: no `root` column; oldest: an `error` column (max delta, e.g. 0e+00)
  instead of `#wrong`;
- `#wrong` as a number or `N/A` (validation off), in-place only rows (trace replay),
  a trailing timestamp column;
- srun ` 0: ` and mpirun `[1,0]<stdout>:` prefixes, NCCL INFO/WARN lines, MPI and
  ssh warnings and shell prompts interleaved anywhere; missing header or trailer;
- `Out of bounds values : N FAILED`, `Test failure`, `Test CUDA failure ...`;
- nccl-tests' JSON report (`-J file`), also when it was cut off mid-write;
- the output of clusterkit's torch.distributed fallback, which prints this format.

Pure: no I/O, no thresholds. Unusable text raises ParseError.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from typing import Any

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import normalize
from clusterkit.parsers import ParseError

GIB = 1 << 30

_PREFIX = re.compile(r"^\s*\d+:\s?")
# mpirun --tag-output marks each chunk it reads, so a tag can also land mid-line or at its end.
_MPI_TAG = re.compile(r"\[\d+,\d+\]<std(?:out|err)>:")
_ROW_START = re.compile(r"^\s*\d+\s+\d+\s+[A-Za-z][\w]*\s+[A-Za-z]\w*\s")
_DEVICE = re.compile(
    r"^#\s*Rank\s+(\d+)\s+(?:Group\s+(\d+)\s+)?Pid\s+(\d+)\s+on\s+(\S+)\s+device\s+(\d+)\s+\[([^\]]*)\]\s*(.*?)\s*$")
_PARAMS = re.compile(r"^#\s*nThread\s+(\d+)\s+nGpus\s+(\d+)\s+minBytes\s+(\d+)\s+maxBytes\s+(\d+)(.*)$")
_OOB = re.compile(r"Out of bounds values\s*:\s*(\d+)\s*(OK|FAILED)?", re.I)
_AVG = re.compile(r"Avg bus bandwidth\s*:\s*([-+0-9.eE]+|nan|inf)", re.I)
_VERSION_TESTS = re.compile(r"#\s*nccl-tests version\s+(\S+)(?:.*nccl-library=(\d+))?")
_NCCL_VERSION = re.compile(r"NCCL version\s+(\d+\.\d+\.\d+)")
_TEST_NAME = re.compile(r"#\s*Collective test (starting|concluded):\s*(\S+)")
_ENV_SET = re.compile(r"NCCL INFO\s+(NCCL_[A-Z0-9_]+) set by environment to\s+(\S+?)\.?\s*$")
_ENV_EXPORT = re.compile(r"(?:^|\s)(?:export\s+|-x\s+)(NCCL_[A-Z0-9_]+)=(\"[^\"]*\"|'[^']*'|\S+)")
_NET_IB = re.compile(r"NCCL INFO NET/(IB|Socket)\s*:\s*Using\s+(.*)$")
_NCCL_INFO = re.compile(r"^\S+:\d+:\d+\s+\[\d+\]\s+NCCL\s+(INFO|WARN|TRACE)\b")
_NRANKS = re.compile(r"nRanks\s+(\d+)\s+nNodes\s+(\d+)")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}$|^\d{2}:\d{2}:\d{2}$")
_BENCH_MARK = re.compile(r"#\s*clusterkit allreduce_bench\b(.*)$")
# Lines that say the test itself broke (nccl-tests, CUDA, NCCL, MPI, Slurm).
_FAILURE_PATTERNS = [
    re.compile(r"Test (?:CUDA |NCCL )?failure\b.*"),
    re.compile(r"\b(?:Cuda|CUDA|NCCL) (?:failure|error)\b.*"),
    re.compile(r"NCCL WARN\b.*"),
    re.compile(r"mpirun noticed that .*"),
    re.compile(r"srun: error: .*"),
    re.compile(r"\*\*\* Process received signal \*\*\*"),
    re.compile(r"Segmentation fault.*|Bus error.*"),
    re.compile(r"ORTE was unable to .*|Primary job\s+terminated normally, but .*"),
    re.compile(r"Invalid number of GPUs.*"),
    re.compile(r"Traceback \(most recent call last\):"),
    re.compile(r"RuntimeError: .*"),
]


# NCCL WARN lines a run survives (it falls back and goes on): a warning, never a failed test.
SURVIVABLE_WARN = [
    re.compile(r"using point-to-point network instead|fall(?:ing)? back to|will fall back", re.I),
]
_WARN_LINE = re.compile(r"\bNCCL WARN\b")


def is_fatal_nccl_line(line: str) -> bool:
    """An NCCL WARN line that means the collective failed (not one of the survivable fallbacks)."""
    return bool(_WARN_LINE.search(line)) and not any(p.search(line) for p in SURVIVABLE_WARN)


@dataclass
class Device:
    rank: int
    host: str
    device: int
    bus_id: str
    name: str
    pid: int | None = None


@dataclass
class Row:
    size_bytes: int
    count: int | None
    dtype: str | None
    redop: str | None
    root: int | None
    oop_time_us: float | None = None
    oop_algbw_gbps: float | None = None
    oop_busbw_gbps: float | None = None
    oop_wrong: float | None = None      # elements wrong (None: validation off / N/A)
    ip_time_us: float | None = None
    ip_algbw_gbps: float | None = None
    ip_busbw_gbps: float | None = None
    ip_wrong: float | None = None
    delta_format: bool = False          # oldest layout: the column is a max |error|, not a count

    @property
    def busbw_gbps(self) -> float | None:
        """The row's bus bandwidth: mean of out-of-place and in-place where both exist."""
        vals = [v for v in (self.oop_busbw_gbps, self.ip_busbw_gbps) if v is not None]
        return sum(vals) / len(vals) if vals else None

    @property
    def busbw_max_gbps(self) -> float | None:
        vals = [v for v in (self.oop_busbw_gbps, self.ip_busbw_gbps) if v is not None]
        return max(vals) if vals else None

    @property
    def wrong(self) -> float:
        if self.delta_format:
            return 0.0  # a delta is judged by the summary's out-of-bounds count
        return sum(v for v in (self.oop_wrong, self.ip_wrong) if v is not None and v == v)


@dataclass
class NcclRun:
    test: str | None = None                 # all_reduce_perf, ...
    tool: str = "nccl-tests"                # or "clusterkit-torch" (the fallback benchmark)
    tests_version: str | None = None
    nccl_version: str | None = None
    params: dict[str, Any] = field(default_factory=dict)   # nThread, nGpus, minBytes, maxBytes, validation
    devices: list[Device] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    oob_values: int | None = None
    oob_failed: bool = False
    avg_busbw_gbps: float | None = None
    failures: list[str] = field(default_factory=list)       # lines that say the test broke
    env: dict[str, str] = field(default_factory=dict)       # NCCL_* seen in the output
    nics: list[str] = field(default_factory=list)           # from NCCL INFO NET/IB lines
    info_ranks: int | None = None                           # from NCCL INFO "nRanks N nNodes M"
    info_nodes: int | None = None
    validation: bool | None = None
    has_header: bool = False
    has_trailer: bool = False
    unreadable_rows: list[str] = field(default_factory=list)  # row-like lines that could not be read
    source_format: str = "text"                              # text | json

    # ---- derived figures -------------------------------------------------------------
    @property
    def hosts(self) -> list[str]:
        seen: list[str] = []
        for d in self.devices:
            if d.host not in seen:
                seen.append(d.host)
        return seen

    @property
    def ranks(self) -> int | None:
        if self.devices:
            return len(self.devices)
        if self.info_ranks:
            return self.info_ranks
        return None

    @property
    def nodes(self) -> int | None:
        if self.devices:
            return len(self.hosts)
        return self.info_nodes

    @property
    def gpu_names(self) -> list[str]:
        out: list[str] = []
        for d in self.devices:
            if d.name and d.name not in out:
                out.append(d.name)
        return out

    @property
    def wrong_total(self) -> float:
        return sum(r.wrong for r in self.rows)

    @property
    def max_size_bytes(self) -> int | None:
        return max((r.size_bytes for r in self.rows), default=None)

    @property
    def busbw_peak_gbps(self) -> float | None:
        vals = [r.busbw_max_gbps for r in self.rows if r.busbw_max_gbps is not None]
        return max(vals) if vals else None

    def gate_rows(self, min_size_bytes: int = GIB) -> list[Row]:
        """Rows the gate is computed on: sizes >= 1 GiB, else the largest sizes present
        (the top factor-of-8 band of the sweep)."""
        rows = [r for r in self.rows if r.busbw_gbps is not None]
        big = [r for r in rows if r.size_bytes >= min_size_bytes]
        if big or not rows:
            return big
        top = max(r.size_bytes for r in rows)
        return [r for r in rows if r.size_bytes * 8 > top]

    def busbw_large_gbps(self, min_size_bytes: int = GIB) -> float | None:
        """The gate value: median busbw over the large sizes (never the Avg line)."""
        rows = self.gate_rows(min_size_bytes)
        if not rows:
            return None
        return float(statistics.median(r.busbw_gbps for r in rows))  # type: ignore[misc]

    @property
    def completed(self) -> bool:
        return self.has_trailer

    def metrics(self, min_size_bytes: int = GIB) -> dict[str, Any]:
        m: dict[str, Any] = {}
        for k, v in (("busbw_peak_gbps", self.busbw_peak_gbps),
                     ("busbw_large_gbps", self.busbw_large_gbps(min_size_bytes)),
                     ("busbw_avg_gbps", self.avg_busbw_gbps),
                     ("ranks", self.ranks), ("nodes", self.nodes)):
            if v is not None:
                m[k] = round(v, 3) if isinstance(v, float) else v
        return m


# ---- recognizer -------------------------------------------------------------------------


def _strip_prefix(line: str) -> str:
    if "]<std" in line:
        line = _MPI_TAG.sub("", line)
    return _PREFIX.sub("", line, count=1)


ALL_REDUCE = declare("nccl.all_reduce_perf", "nccl/all_reduce_perf.txt", priority=60,
                     description="nccl-tests all_reduce_perf output (text or JSON), or clusterkit's torch fallback")
# The localization rounds' record (written by clusterkit.fleet.localize into `_cluster/`).
NCCL_LOCALIZE = declare("nccl-localize", "nccl/localize.json", description="clusterkit NCCL localization rounds")


@ALL_REDUCE.recognizer
def is_nccl_tests(text: str) -> bool:
    head = text[:200000]
    if _looks_json(head):
        return '"results"' in head and ('"bus_bw"' in head or '"nccl_version"' in head)
    lines = [_strip_prefix(x) for x in head.split("\n")]
    if any(_PARAMS.match(x.strip()) for x in lines):
        return True
    if any(x.lstrip().startswith("#") and re.search(r"\bsize\b.*\bcount\b.*\bbusbw\b", x) for x in lines):
        return True
    return sum(1 for x in lines if _parse_row(x) is not None) >= 2 and any(_AVG.search(x) for x in lines)


def _looks_json(text: str) -> bool:
    return text.lstrip().startswith("{")


# ---- rows --------------------------------------------------------------------------------


def _num(tok: str) -> float | None:
    """A table number; None for N/A. Raises ValueError for anything else."""
    if tok.upper() == "N/A":
        return None
    v = float(tok)
    if v != v and tok.lower() != "nan":
        raise ValueError(tok)
    return v


def _is_delta_token(tok: str) -> bool:
    """`%5.0le` deltas of the oldest layout (0e+00, 1e-05) vs `%6g` counts (0, 12, 1e+06)."""
    m = re.fullmatch(r"[-+]?\d+(?:\.\d*)?[eE]([-+]\d+)", tok)
    return bool(m) and float(tok) < 1e6


def _parse_row(line: str, delta_header: bool | None = None) -> Row | None:
    s = line.strip()
    if not s or s.startswith("#") or not _ROW_START.match(line if line[:1].isspace() else " " + line):
        return None
    toks = s.split()
    while toks and _TIMESTAMP.match(toks[-1]):
        toks.pop()
    if len(toks) < 8:
        return None
    try:
        size, count = int(toks[0]), int(toks[1])
    except ValueError:
        return None
    dtype, redop = toks[2], toks[3]
    rest = toks[4:]
    root: int | None = None
    if len(rest) in (5, 9) and re.fullmatch(r"-?\d+", rest[0]):
        root = int(rest[0])
        rest = rest[1:]
    if len(rest) not in (4, 8):
        return None
    try:
        nums = [_num(t) for t in rest]
    except ValueError:
        return None
    if any(nums[i] is None for i in range(len(nums)) if i % 4 != 3):
        return None  # only the validation column may be N/A
    delta = delta_header if delta_header is not None else any(_is_delta_token(rest[i]) for i in range(3, len(rest), 4))
    row = Row(size, count, dtype, redop, root, delta_format=bool(delta))
    if len(nums) == 8:
        row.oop_time_us, row.oop_algbw_gbps, row.oop_busbw_gbps, row.oop_wrong = nums[:4]
        row.ip_time_us, row.ip_algbw_gbps, row.ip_busbw_gbps, row.ip_wrong = nums[4:]
    else:
        row.ip_time_us, row.ip_algbw_gbps, row.ip_busbw_gbps, row.ip_wrong = nums
    if any(v is not None and (v < 0 or v != v or v == float("inf"))
           for v in (row.oop_busbw_gbps, row.ip_busbw_gbps, row.oop_time_us, row.ip_time_us)):
        return None
    return row


# ---- text --------------------------------------------------------------------------------


@ALL_REDUCE.parser
def parse(text: str) -> NcclRun:
    """Parse nccl-tests output (text or JSON). Raises ParseError when nothing usable is in it."""
    if not isinstance(text, str):
        raise ParseError("nccl-tests output must be text")
    t = normalize(text)
    if _looks_json(t):
        return _parse_json(t)
    run = NcclRun()
    delta_header: bool | None = None
    for raw in t.split("\n"):
        line = _strip_prefix(raw)
        s = line.strip()
        if not s:
            continue
        _scan_side_info(run, s)
        if s.startswith("#") or _OOB.search(s) or _AVG.search(s):
            _scan_comment(run, s)
            if "busbw" in s and "size" in s:
                run.has_header = True
                delta_header = bool(re.search(r"\berror\b", s)) and "#wrong" not in s
            continue
        row = _parse_row(line, delta_header)
        if row is not None:
            run.rows.append(row)
        elif _ROW_START.match(line if line[:1].isspace() else " " + line) and not _NCCL_INFO.match(s):
            run.unreadable_rows.append(s[:200])
    _finish(run)
    return run


def _scan_comment(run: NcclRun, s: str) -> None:
    m = _PARAMS.match(s)
    if m:
        run.params.update(nThread=int(m[1]), nGpus=int(m[2]), minBytes=int(m[3]), maxBytes=int(m[4]))
        v = re.search(r"validation:\s*(\d+)", m[5])
        if v:
            run.params["validation"] = int(v[1])
            run.validation = bool(int(v[1]))
        return
    m = _DEVICE.match(s)
    if m:
        run.devices.append(Device(int(m[1]), m[4], int(m[5]), m[6], m[7], int(m[3])))
        return
    m = _OOB.search(s)
    if m:
        run.oob_values = int(m[1])
        run.oob_failed = (m[2] or "").upper() == "FAILED" or int(m[1]) > 0
        run.has_trailer = True
        return
    m = _AVG.search(s)
    if m:
        try:
            run.avg_busbw_gbps = float(m[1])
        except ValueError:
            pass
        if run.avg_busbw_gbps is not None and run.avg_busbw_gbps != run.avg_busbw_gbps:
            run.avg_busbw_gbps = None
        run.has_trailer = True
        return
    m = _VERSION_TESTS.match(s)
    if m:
        run.tests_version = m[1]
        return
    m = _TEST_NAME.match(s)
    if m:
        run.test = m[2]
        return
    m = _BENCH_MARK.match(s)
    if m:
        run.tool = "clusterkit-torch"
        run.test = run.test or "all_reduce_perf"


def _scan_side_info(run: NcclRun, s: str) -> None:
    """Facts from command lines, NCCL INFO lines and failure messages."""
    if run.test is None:
        m = re.search(r"\b(all_reduce_perf(?:_mpi)?|all_gather_perf|reduce_scatter_perf|alltoall_perf|"
                      r"broadcast_perf|reduce_perf|sendrecv_perf)\b", s)
        if m:
            run.test = m[1].removesuffix("_mpi")
    if "NCCL" in s:
        m = _NCCL_VERSION.search(s)
        if m and run.nccl_version is None:
            run.nccl_version = m[1]
        m = _ENV_SET.search(s)
        if m:
            run.env.setdefault(m[1], m[2])
        for m in _ENV_EXPORT.finditer(s):
            run.env.setdefault(m[1], m[2].strip("\"'"))
        m = _NET_IB.search(s)
        if m:
            for dev in re.findall(r"\[\d+\]([A-Za-z0-9_.-]+?)(?::\d+)?(?:/|\s|$)", m[2]):
                if dev not in run.nics:
                    run.nics.append(dev)
        m = _NRANKS.search(s)
        if m:
            run.info_ranks = max(run.info_ranks or 0, int(m[1]))
            run.info_nodes = max(run.info_nodes or 0, int(m[2]))
    for p in _FAILURE_PATTERNS:
        m = p.search(s)
        if m:
            msg = s if len(s) < 300 else s[:300]
            if "NCCL WARN" in msg and "NCCL_" in msg and "set by environment" in msg:
                break
            if msg not in run.failures:
                run.failures.append(msg)
            break


def _finish(run: NcclRun) -> None:
    if run.validation is None and run.rows:
        wrongs = [r.oop_wrong for r in run.rows] + [r.ip_wrong for r in run.rows]
        if all(w is None for w in wrongs):
            run.validation = False
    if not run.rows and not run.failures and not run.devices and not run.params:
        raise ParseError("no nccl-tests content: no result rows, header, devices or failure messages")


# ---- JSON (nccl-tests -J) -----------------------------------------------------------------


def _salvage_json(t: str) -> dict[str, Any]:
    """A report cut off mid-write: keep the complete result records and what precedes them."""
    doc: dict[str, Any] = {"results": [], "_truncated": True}
    dec = json.JSONDecoder()
    m = re.search(r'"results"\s*:\s*\[', t)
    head = t[: m.start()] if m else t
    for key in ("nccl_version",):
        km = re.search(rf'"{key}"\s*:\s*(\d+)', head)
        if km:
            doc[key] = int(km[1])
    cm = re.search(r'"config"\s*:\s*\{', head)
    if cm:
        try:
            doc["config"], _ = dec.raw_decode(head, cm.end() - 1)
        except ValueError:
            pass
    if m:
        i = m.end()
        while True:
            while i < len(t) and t[i] in " \t\r\n,":
                i += 1
            if i >= len(t) or t[i] != "{":
                break
            try:
                obj, i = dec.raw_decode(t, i)
            except ValueError:
                break
            doc["results"].append(obj)
    return doc


def _json_float(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def _parse_json(t: str) -> NcclRun:
    try:
        doc = json.loads(t)
    except ValueError:
        doc = _salvage_json(t)
    if not isinstance(doc, dict):
        raise ParseError("nccl-tests JSON report: top level is not an object")
    run = NcclRun(source_format="json", has_header=True)
    nv = doc.get("nccl_version")
    if isinstance(nv, int) and nv > 0:
        major, rest = divmod(nv, 10000)
        run.nccl_version = f"{major}.{rest // 100}.{rest % 100}"
    for e in doc.get("env") or []:
        if isinstance(e, str) and e.startswith("NCCL_") and "=" in e:
            k, v = e.split("=", 1)
            run.env[k] = v
    args = [a for a in doc.get("args") or [] if isinstance(a, str)]
    if args:
        run.test = args[0].rsplit("/", 1)[-1].removesuffix("_mpi")
    cfg = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    for src, dst in (("nthreads", "nThread"), ("ngpus", "nGpus"), ("minimum_bytes", "minBytes"),
                     ("maximum_bytes", "maxBytes"), ("validation", "validation")):
        if isinstance(cfg.get(src), int):
            run.params[dst] = cfg[src]
    if "validation" in run.params:
        run.validation = bool(run.params["validation"])
    for d in cfg.get("devices") or []:
        if isinstance(d, dict) and isinstance(d.get("rank"), int):
            run.devices.append(Device(d["rank"], str(d.get("hostname", "")), int(d.get("device") or 0),
                                      str(d.get("device_hex", "")), str(d.get("device_info", "")).strip(),
                                      d.get("pid") if isinstance(d.get("pid"), int) else None))
    results = doc.get("results")
    if not isinstance(results, list):
        results = []
    for r in results:
        if not isinstance(r, dict) or not isinstance(r.get("size"), int):
            continue
        root = r.get("root")
        try:
            root_i = int(str(root).strip()) if root is not None else None
        except ValueError:
            root_i = None
        row = Row(r["size"], r.get("count") if isinstance(r.get("count"), int) else None,
                  str(r.get("type")) if r.get("type") is not None else None,
                  str(r.get("redop")) if r.get("redop") is not None else None, root_i)
        for side, pre in (("out_of_place", "oop"), ("in_place", "ip")):
            body = r.get(side)
            if isinstance(body, dict):
                setattr(row, f"{pre}_time_us", _json_float(body.get("time", body.get("cpu_time"))))
                setattr(row, f"{pre}_algbw_gbps", _json_float(body.get("alg_bw")))
                setattr(row, f"{pre}_busbw_gbps", _json_float(body.get("bus_bw")))
                setattr(row, f"{pre}_wrong", _json_float(body.get("nwrong")))
        if row.busbw_gbps is not None:
            run.rows.append(row)
    oob = doc.get("out_of_bounds")
    if isinstance(oob, dict) and isinstance(oob.get("count"), int):
        run.oob_values = oob["count"]
        run.oob_failed = oob["count"] > 0
        run.has_trailer = True
    avg = doc.get("average_bus_bandwidth")
    if isinstance(avg, dict):
        run.avg_busbw_gbps = _json_float(avg.get("bandwidth"))
    for e in doc.get("errors") or []:
        if isinstance(e, str) and e.strip():
            run.failures.append(e.strip()[:300])
    if doc.get("_truncated") and not run.rows and not run.devices:
        raise ParseError("nccl-tests JSON report is cut off before any result record")
    if run.validation is None and run.rows and all(
            w is None for r in run.rows for w in (r.oop_wrong, r.ip_wrong)):
        run.validation = False
    if not run.rows and not run.failures and not run.devices:
        raise ParseError("nccl-tests JSON report holds no results, devices or errors")
    return run
