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
from clusterkit.evidence.normalize import normalize_document
from clusterkit.parsers import ParseError

GIB = 1 << 30

_PREFIX = re.compile(r"^\s*\d+:\s?")
# mpirun --tag-output marks each chunk it reads, so a tag can also land mid-line or at its end.
_MPI_TAG = re.compile(r"\[\d+,\d+\]<std(?:out|err)>:")
# Some launchers tag every chunk with a bare '[rank]', so a row reads '[0]  1048576 ... -1[0]  1626.5 ...'.
_RANK_TAG_ROW = re.compile(r"^\s*\[\d+\]\s+\d")
_RANK_TAG = re.compile(r"\[\d+\]")
_ROW_START = re.compile(r"^\s*\d+\s+\d+\s+[A-Za-z]\w*(?:\s|$)")
_DEVICE = re.compile(r"^#\s*Rank\s+(\d+)\s+(?:Group\s+(\d+)\s+)?(?:Pid\s+(\d+)\s+)?on\s+(\S+)\s+device\s+(\d+)\s+"
                     r"\[([^\]]*)\]\s*(.*?)\s*$")
# The parameter line; pastes sometimes lose its '#'.
_PARAMS = re.compile(r"^#?\s*nThread\s+(\d+)\s+nGpus\s+(\d+)\s+minBytes\s+(\d+)\s+maxBytes\s+(\d+)(.*)$")
_STEP = re.compile(r"step:\s*(\d+)\((factor|bytes)\)")
# The column titles, with or without '#': `size count type ...` (NCCL 1.x: `bytes N type op ...`).
_HEADER = re.compile(r"^#?\s*(?:size|bytes)\s+(?:count|N)\s+type\b.*\bbusbw\b")
_OOB = re.compile(r"Out of bounds values\s*:\s*(\d+)\s*(OK|FAILED)?", re.I)
_AVG = re.compile(r"Avg bus bandwidth\s*:\s*([-+0-9.eE]+|nan|inf)", re.I)
_VERSION_TESTS = re.compile(r"#\s*nccl-tests version\s+(\S+)(?:.*nccl-library=(\d+))?")
_NCCL_VERSION = re.compile(r"NCCL version\s+(\d+\.\d+\.\d+)|compiled with NCCL (\d+\.\d+)")
_TEST_NAME = re.compile(r"#\s*Collective test (starting|concluded):\s*(\S+)")
_BINARY = re.compile(r"\b(all_reduce|all_gather|reduce_scatter|alltoall|broadcast|reduce|sendrecv|gather|scatter|"
                     r"hypercube)_perf(?:_mpi)?\b")
_ENV_SET = re.compile(r"NCCL INFO\s+(NCCL_[A-Z0-9_]+) set by environment to\s+(\S+?)\.?\s*$")
_ENV_EXPORT = re.compile(r"(?:^|\s)(?:export\s+|-x\s+)?(NCCL_[A-Z0-9_]+)=(\"[^\"]*\"|'[^']*'|\S+)")
_NET_IB = re.compile(r"NCCL INFO NET/(IB|Socket)\s*:\s*Using\s+(.*)$")
# NCCL's own debug-log prefix, 'host:pid:tid [dev] [file.cc:line] NCCL INFO|WARN ...', anywhere in a line
# (a paste may put a timestamp or a stray backtick before it).
_NCCL_LOG = re.compile(r"(?:^|[\s`\]])(?P<host>[A-Za-z0-9][\w.-]*):\d+:\d+\s+\[\d+\]\s+(?:\S+:\d+\s+)?"
                       r"NCCL\s+(?P<level>INFO|WARN|TRACE)\b")
_NRANKS = re.compile(r"nRanks\s+(\d+)\s+nNodes\s+(\d+)")
_COMM_NRANKS = re.compile(r"NCCL INFO\s+comm\s+\S+\s+rank\s+\d+\s+nranks\s+(\d+)\b")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}$|^\d{2}:\d{2}:\d{2}$")
_BENCH_MARK = re.compile(r"#\s*clusterkit allreduce_bench\b(.*)$")
# NCCL's data types and their sizes in bytes (nccl-tests' `-d` names).
DTYPE_BYTES = {"int8": 1, "char": 1, "uint8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "half": 2, "float16": 2,
               "bfloat16": 2, "int32": 4, "int": 4, "uint32": 4, "float": 4, "float32": 4, "int64": 8,
               "uint64": 8, "double": 8, "float64": 8}
# nccl-tests' DeltaMaxValue(): the largest max-deviation ('error' column) a data type may show, times
# (nranks - 1); integer types must be exact (common.cu: 1e-200).
DELTA_TOLERANCE = {"half": 5e-2, "float16": 5e-2, "bfloat16": 1e-2, "float": 1e-5, "float32": 1e-5,
                   "double": 1e-12, "float64": 1e-12}
EXACT_TYPES = frozenset({"int8", "char", "uint8", "int32", "int", "uint32", "int64", "uint64"})


# ---- failure and warning lines -----------------------------------------------------------


@dataclass(frozen=True)
class SurvivableWarn:
    """An `NCCL WARN` after which NCCL carries on (it falls back or skips one part)."""

    pattern: re.Pattern[str]
    meaning: str
    action: str


_COLLNET_ACTION = ("In-network reduction is off, so large all-reduces can be slower. Check the SHARP aggregation "
                   "manager (sharp_am) is running and has resources (a SHARP 'No resource' error means its job "
                   "quota or trees are used up), or set NCCL_COLLNET_ENABLE=0 to stop trying.")
# The survivable NCCL WARN lines, as data in one place: the parser, the nccl checks and the fatal-signature
# scan of every input (`is_fatal_nccl_line`) read this list. Each entry was checked against NCCL's source:
# the WARN is followed by a fallback or a `continue`, not by an error return that ends the run.
SURVIVABLE_WARNS: tuple[SurvivableWarn, ...] = (
    SurvivableWarn(re.compile(r"Cannot initialize CollNet, using point-to-point network instead"),
                   "CollNet (SHARP in-network reduction) could not start; NCCL carries on over point-to-point",
                   _COLLNET_ACTION),
    SurvivableWarn(re.compile(r"SHARP coll init error"),
                   "the SHARP plugin could not create a SHARP job; NCCL falls back to point-to-point",
                   _COLLNET_ACTION),
    SurvivableWarn(re.compile(r"NET/IB\s*:\s*Unable to open device"),
                   "NCCL could not open one HCA and skipped it; it uses the others",
                   "Check that HCA on the node: `ibstat`/`ibv_devinfo`, mlx5_core messages in dmesg, and that "
                   "NCCL_IB_HCA names only devices the node has; fewer rails mean lower multi-node bandwidth."),
    SurvivableWarn(re.compile(r"defaulting to|is being ignored"),
                   "NCCL ignored a setting and used its default",
                   "Fix or remove the NCCL_* variable the line names."),
)

# Lines by which NCCL or nccl-tests say a run failed (an NCCL WARN only when it is not survivable).
NCCL_FATAL_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\bTest (?:CUDA |NCCL )?failure\b"),
    re.compile(r"\bNCCL (?:failure|error)\b"),
    re.compile(r"\bNCCL WARN\b"),
)
# Further lines that end a run inside an nccl-tests output: CUDA, the launcher (MPI, UCX, Slurm), a crash.
_RUN_FAILURE_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\b(?:Cuda|CUDA) (?:failure|error)\b"),
    re.compile(r"mpirun noticed that |MPI_ABORT was invoked|\bMPI_Abort\b"),
    re.compile(r"\bUCX\s+ERROR\b"),
    re.compile(r"srun: error: "),
    re.compile(r"\*\*\* Process received signal \*\*\*"),
    re.compile(r"Segmentation fault|\bBus error\b"),
    re.compile(r"ORTE was unable to |PRTE has lost communication|Primary job\s+terminated normally, but "),
    re.compile(r"Invalid number of GPUs"),
    re.compile(r"Traceback \(most recent call last\):"),
    re.compile(r"RuntimeError: "),
)
# The host a failure line names: NCCL's prefix, nccl-tests' 'host: Test ... failure' and ' .. host pid N:'.
_FAIL_HOST = re.compile(r"(?:^|\s)(?P<host>[A-Za-z][\w.-]*): Test (?:CUDA |NCCL )?failure\b|"
                        r"^\s*\.\.\s+(?P<host2>\S+) pid \d+:|"
                        r"^(?:\[[\d.]+\]\s*)?\[(?P<host3>[A-Za-z][\w.-]*):\d+(?:\s*:\d+)?\]")  # UCX/Open MPI


def survivable_warn(line: str) -> SurvivableWarn | None:
    """The survivable-WARN entry an `NCCL WARN` line matches, or None."""
    if "WARN" not in line:
        return None
    return next((w for w in SURVIVABLE_WARNS if w.pattern.search(line)), None)


def is_fatal_nccl_line(line: str) -> bool:
    """Whether a line says an NCCL run (or nccl-tests) failed: a failure line, or an NCCL WARN the run
    does not survive. For the fatal-signature scan of any input; launcher and CUDA lines are not included."""
    if not any(p.search(line) for p in NCCL_FATAL_PATTERNS):
        return False
    return survivable_warn(line) is None


def line_host(line: str) -> str | None:
    """The host a failure or NCCL log line names, if any."""
    m = _NCCL_LOG.search(line)
    if m:
        return m["host"]
    m = _FAIL_HOST.search(line)
    if m:
        return m["host"] or m["host2"] or m["host3"]
    return None


def _is_run_failure(line: str) -> bool:
    return is_fatal_nccl_line(line) or any(p.search(line) for p in _RUN_FAILURE_PATTERNS)


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
        """Wrong elements (`#wrong`); 0 for the oldest layout, whose deltas `wrong_sides` judges."""
        if self.delta_format:
            return 0.0
        return sum(v for v in (self.oop_wrong, self.ip_wrong) if v is not None and v == v)

    def wrong_sides(self, ranks: int | None) -> int:
        """Oldest layout: how many of out-of-place/in-place show a max deviation above nccl-tests' own
        tolerance (DeltaMaxValue(type) x (nranks - 1); integer types must be exact). Unknown ranks:
        assume many, so a float rounding error is never called wrong."""
        if not self.delta_format:
            return 0
        dtype = (self.dtype or "").lower()
        tol = DELTA_TOLERANCE.get(dtype, 0.0 if dtype in EXACT_TYPES else 5e-2)
        n = ranks if ranks and ranks > 1 else 1024
        return sum(1 for v in (self.oop_wrong, self.ip_wrong) if v is not None and v == v and v > tol * (n - 1))


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
    warnings: list[str] = field(default_factory=list)       # NCCL WARN lines the run survives
    env: dict[str, str] = field(default_factory=dict)       # NCCL_* seen in the output
    nics: list[str] = field(default_factory=list)           # from NCCL INFO NET/IB lines
    info_ranks: int | None = None                           # from NCCL INFO "nRanks N nNodes M"
    info_nodes: int | None = None
    info_hosts: list[str] = field(default_factory=list)     # hosts of NCCL's own log lines
    comm_nranks: list[int] = field(default_factory=list)    # NCCL INFO "comm ... rank R nranks N" values
    sizes_repeated: int = 0                                  # rows whose size was already printed
    validation: bool | None = None
    has_header: bool = False
    has_trailer: bool = False
    unreadable_rows: list[str] = field(default_factory=list)  # row-like lines that could not be read
    source_format: str = "text"                              # text | json
    concluded: bool = False                                  # '# Collective test concluded' printed
    # one run per collective test when the text holds several run back to back (empty otherwise)
    collectives: list["NcclRun"] = field(default_factory=list)
    _hosts: tuple[tuple[int, int], list[str]] | None = field(default=None, repr=False, compare=False)

    # ---- derived figures -------------------------------------------------------------
    @property
    def hosts(self) -> list[str]:
        """Hosts of the devices, in order of first appearance (a fleet-wide run: 80,000 devices on 10,000
        hosts, asked once per node, so worked out once per device count)."""
        stamp = (id(self.devices), len(self.devices))
        if self._hosts is None or self._hosts[0] != stamp:
            self._hosts = (stamp, list(dict.fromkeys(d.host for d in self.devices)))
        return list(self._hosts[1])

    @property
    def ranks(self) -> int | None:
        if self.devices:
            return len({d.rank for d in self.devices})
        if self.info_ranks:
            return self.info_ranks
        if self.comm_nranks:
            return max(self.comm_nranks)
        return None

    @property
    def nodes(self) -> int | None:
        if self.devices:
            return len(self.hosts)
        if self.info_nodes:
            return self.info_nodes
        # NCCL log lines from several hosts show a multi-node run; one host may be rank 0's log alone
        return len(self.info_hosts) if len(self.info_hosts) > 1 else None

    @property
    def collective(self) -> str | None:
        """all_reduce, all_gather, ...: from the test's name, else from the table (None when it cannot tell)."""
        if self.test:
            return self.test.removesuffix("_mpi").removesuffix("_perf")
        if self.tool == "clusterkit-torch":
            return "all_reduce"
        # size = count x type size for all_reduce/broadcast/reduce/sendrecv; x nranks for the gather family
        ratios = {round(r.size_bytes / (r.count * DTYPE_BYTES[r.dtype.lower()]))
                  for r in self.rows if r.count and r.dtype and r.dtype.lower() in DTYPE_BYTES}
        if not ratios:
            return None
        op = any(r.redop and r.redop.lower() != "none" for r in self.rows)
        rooted = any(r.root is not None and r.root >= 0 for r in self.rows)
        # alltoall and sendrecv never validate in place (nccl-tests sets reportErrors = in_place ? 0 : 1), so
        # with validation on their in-place '#wrong' alone reads N/A, in every row
        unchecked_in_place = all(r.oop_wrong is not None and r.ip_wrong is None and r.ip_busbw_gbps is not None
                                 for r in self.rows)
        if ratios == {1}:
            if unchecked_in_place:
                return "sendrecv"
            return ("reduce" if rooted else "all_reduce") if op else ("broadcast" if rooted else None)
        if unchecked_in_place:
            return "alltoall"
        return "reduce_scatter" if op else None  # with validation off, all_gather and alltoall look alike

    @property
    def label(self) -> str:
        """The test's name for messages: all_reduce_perf, ..., or 'nccl-tests' when it cannot tell."""
        coll = self.collective
        return self.test or (f"{coll}_perf" if coll else "nccl-tests")

    @property
    def completed(self) -> bool:
        """The test printed its summary or its `Collective test concluded` line."""
        return self.has_trailer or self.concluded

    @property
    def rank0_processes(self) -> int:
        """Processes that each printed themselves as rank 0 (a non-MPI build launched N times)."""
        return len({(d.host, d.pid) for d in self.devices if d.rank == 0})

    @property
    def step_factor(self) -> float | None:
        m = _STEP.search(str(self.params.get("step", "")))
        return float(m[1]) if m and m[2] == "factor" and int(m[1]) > 1 else None

    @property
    def sweep_complete(self) -> bool | None:
        """Whether the rows reached the run's maxBytes (None when the parameter line is not in the text)."""
        top, max_bytes = self.max_size_bytes, self.params.get("maxBytes")
        if top is None or not isinstance(max_bytes, int):
            return None
        return top * (self.step_factor or 2.0) > max_bytes

    @property
    def gpu_names(self) -> list[str]:
        out: list[str] = []
        for d in self.devices:
            if d.name and d.name not in out:
                out.append(d.name)
        return out

    @property
    def wrong_total(self) -> float:
        """Wrong elements, plus (oldest layout) each side whose deviation is beyond tolerance."""
        return sum(r.wrong + r.wrong_sides(self.ranks) for r in self.rows)

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
    if line.lstrip().startswith("[") and _RANK_TAG_ROW.match(line):
        line = _RANK_TAG.sub(" ", line)
    return _PREFIX.sub("", line, count=1)


ALL_REDUCE = declare("nccl.all_reduce_perf", "nccl/all_reduce_perf.txt", priority=60,
                     description="nccl-tests output (any collective, text or JSON, or its failure lines), "
                                 "or clusterkit's torch fallback")
# The localization rounds' record (written by clusterkit.fleet.localize into `_cluster/`).
NCCL_LOCALIZE = declare("nccl-localize", "nccl/localize.json", description="clusterkit NCCL localization rounds")


@ALL_REDUCE.recognizer
def is_nccl_tests(text: str) -> bool:
    head = text[:200000]
    if _looks_json(head):
        return '"results"' in head and ('"bus_bw"' in head or '"nccl_version"' in head)
    lines = [_strip_prefix(x).strip() for x in head.split("\n")]
    if any(_PARAMS.match(x) or _HEADER.match(x) for x in lines):
        return True
    rows = [r for r in (_parse_row(x) for x in lines) if r is not None]
    if len(rows) >= 2 and any(_AVG.search(x) for x in lines):
        return True
    # result rows without header or summary: each row's size is its count times its type's size
    # (times the ranks for the gather family), which no other table shows
    if len(rows) >= 3 and all(r.count and r.dtype and r.dtype.lower() in DTYPE_BYTES
                              and r.size_bytes % (r.count * DTYPE_BYTES[r.dtype.lower()]) == 0 for r in rows):
        return True
    # failure logs without a table: nccl-tests' failure lines, an NCCL WARN in NCCL's own log format,
    # or the launch of an nccl-tests binary that failed before NCCL printed anything
    if any(_FATAL_TEST_LINE.search(x) or ((m := _NCCL_LOG.search(x)) and m["level"] == "WARN") for x in lines):
        return True
    return any(_BINARY.search(x) for x in lines) and any(_is_run_failure(x) for x in lines)


_FATAL_TEST_LINE = re.compile(r"\bTest (?:CUDA |NCCL )?failure\b|^NCCL failure \S+:\d+ '")


def _looks_json(text: str) -> bool:
    """nccl-tests' JSON report (`-J`), not a text paste that happens to hold a `{` line."""
    head = text.lstrip()[:4096]
    return head.startswith("{") and bool(re.match(r'\{\s*"', head))


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


def _is_number(tok: str) -> bool:
    try:
        _num(tok)
    except ValueError:
        return False
    return True


def _parse_row(line: str, delta_header: bool | None = None) -> Row | None:
    """One result row: size count type [redop] [root] then (time algbw busbw wrong) once or twice.
    Old layouts leave redop (all_gather, alltoall, broadcast) or root empty."""
    s = line.strip()
    if not s or s.startswith("#") or not _ROW_START.match(line if line[:1].isspace() else " " + line):
        return None
    toks = s.split()
    while toks and _TIMESTAMP.match(toks[-1]):
        toks.pop()
    if len(toks) < 7:
        return None
    try:
        size, count = int(toks[0]), int(toks[1])
    except ValueError:
        return None
    dtype = toks[2]
    rest = toks[3:]
    redop: str | None = None
    if rest and not _is_number(rest[0]):
        redop, rest = rest[0], rest[1:]
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
           for v in (row.oop_busbw_gbps, row.ip_busbw_gbps, row.oop_time_us, row.ip_time_us,
                     row.oop_algbw_gbps, row.ip_algbw_gbps)):
        return None
    return row


# ---- text --------------------------------------------------------------------------------


@ALL_REDUCE.parser
def parse(text: str) -> NcclRun:
    """Parse nccl-tests output (text or JSON). Raises ParseError when nothing usable is in it.

    A log of several collective tests run back to back (a loop or a sweep script) is read as a whole, as
    before, and also one run per test in `collectives` (see `split_lines`), which the checks judge."""
    if not isinstance(text, str):
        raise ParseError("nccl-tests output must be text")
    doc = normalize_document(text)
    t = doc.text
    if _looks_json(t):
        return _parse_json(t)
    lines = t.split("\n")
    run = _read(lines, doc.commands)
    _finish(run)
    # cheap test first: a log of one test (most) has at most one opening line of each kind
    several = max(sum("nThread" in x for x in lines), sum("Collective test starting" in x for x in lines)) > 1
    segments = split_lines(lines) if several else [lines]
    if len(segments) > 1:
        binaries = {m[1] for cmd in doc.commands for m in _BINARY.finditer(cmd)}
        # a prompt naming several binaries cannot say which table is whose: only its environment is kept
        parts = [_read(seg, doc.commands, name_from_commands=len(binaries) <= 1) for seg in segments]
        if not _one_launch(parts):
            run.collectives = parts
    return run


def _read(lines: list[str], commands: list[str], *, name_from_commands: bool = True) -> NcclRun:
    """One run from its lines (no check that anything usable was found)."""
    run = NcclRun()
    for cmd in commands:   # a prompt's command line names the test and its environment
        _scan_command(run, cmd, name=name_from_commands)
    delta_header: bool | None = None
    seen_sizes: set[int] = set()
    for i, raw in enumerate(lines):
        line = _strip_prefix(raw)
        s = line.strip()
        if not s:
            continue
        if _HEADER.match(s):
            run.has_header = True
            delta_header = bool(re.search(r"\b(?:error|res)\b", s)) and "#wrong" not in s
            continue
        row = _parse_row(line, delta_header)
        if row is not None:
            if row.size_bytes in seen_sizes and row.size_bytes > 0:
                run.sizes_repeated += 1
            seen_sizes.add(row.size_bytes)
            run.rows.append(row)
            continue
        _scan_side_info(run, s, lines[i + 1] if i + 1 < len(lines) else "")
        if s.startswith("#") or _PARAMS.match(s) or _OOB.search(s) or _AVG.search(s):
            _scan_comment(run, s)
            continue
        if _ROW_START.match(line if line[:1].isspace() else " " + line) and not _NCCL_LOG.search(s):
            run.unreadable_rows.append(s[:200])
    if run.validation is None and run.rows:
        wrongs = [r.oop_wrong for r in run.rows] + [r.ip_wrong for r in run.rows]
        if all(w is None for w in wrongs):
            run.validation = False
    return run


# ---- several collective tests in one log ---------------------------------------------------


def split_lines(lines: list[str]) -> list[list[str]]:
    """The lines of each collective test in a log of several run back to back.

    A test opens with `# nccl-tests version`, `# Collective test starting: X` (nccl-tests 2.13+) or, in
    older versions, its parameter line (`# nThread ...`). Such a line starts a new test once the current
    one has printed past its opening block (a table header, a row, the summary, `concluded`, a failure
    line), or repeats a line of that block. Lines before the first test belong to it. Every line lands in
    exactly one part, so no row is lost."""
    parts: list[list[str]] = [[]]
    seen: set[str] = set()        # opening lines of the current part: version, marker, params
    body = False                  # the current part printed past its opening block
    for raw in lines:
        line = _strip_prefix(raw)
        s = line.strip()
        opening = _opening(s)
        if opening is not None:
            if body or seen & _OPENS_AFTER[opening]:
                if parts[-1]:
                    parts.append([])
                seen, body = set(), False
            seen.add(opening)
        elif seen and not body and s:
            if s.startswith("#"):  # a table header, the summary or 'concluded'; device lines are not
                body = bool(_HEADER.match(s) or _OOB.search(s) or _AVG.search(s) or _TEST_NAME.match(s))
            else:
                body = _parse_row(line) is not None or _is_run_failure(s)
        parts[-1].append(raw)
    return parts


# An opening line starts a new test when one of these was already printed in the current one (nccl-tests
# prints version, then `Collective test starting`, then the parameter line).
_OPENS_AFTER = {"version": {"version", "marker", "params"}, "marker": {"marker", "params"}, "params": {"params"}}


def _opening(s: str) -> str | None:
    if s.startswith("#") and _VERSION_TESTS.match(s):
        return "version"
    m = _TEST_NAME.match(s)
    if m:
        return "marker" if m[1] == "starting" else None
    return "params" if _PARAMS.match(s) else None


def _one_launch(parts: list[NcclRun]) -> bool:
    """Whether the parts are the processes of ONE launch, not tests run one after another: two or more
    print the same test and parameters, each on one host, and either each is a single rank or no two use
    the same GPU (a loop on one node reuses its GPUs; concurrent processes cannot). That is nccl-tests built
    without MPI=1 under mpirun/srun, each process running its own test, which the whole-text run reports
    as an invalid test."""
    groups: dict[tuple[Any, ...], list[NcclRun]] = {}
    for p in parts:
        key = (p.test, tuple(sorted((k, str(v)) for k, v in p.params.items())))
        groups.setdefault(key, []).append(p)
    for group in groups.values():
        if len(group) < 2 or any(len(p.hosts) > 1 for p in group):
            continue
        if all((p.ranks or 1) <= 1 for p in group):
            return True
        gpus = [{(d.host, d.bus_id or d.device) for d in p.devices} for p in group]
        if sum(len(g) for g in gpus) == len(set().union(*gpus)):
            return True
    return False


def _scan_comment(run: NcclRun, s: str) -> None:
    m = _PARAMS.match(s)
    if m:
        run.params.update(nThread=int(m[1]), nGpus=int(m[2]), minBytes=int(m[3]), maxBytes=int(m[4]))
        st = _STEP.search(m[5])
        if st:
            run.params["step"] = st[0]
        v = re.search(r"validation:\s*(\d+)", m[5])
        if v:
            run.params["validation"] = int(v[1])
            run.validation = bool(int(v[1]))
        return
    m = _DEVICE.match(s)
    if m:
        run.devices.append(Device(int(m[1]), m[4], int(m[5]), m[6], m[7], int(m[3]) if m[3] else None))
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
        run.test = m[2].removesuffix("_mpi")
        run.concluded = run.concluded or m[1] == "concluded"
        return
    m = _BENCH_MARK.match(s)
    if m:
        run.tool = "clusterkit-torch"
        run.test = run.test or "all_reduce_perf"


def _scan_command(run: NcclRun, s: str, *, name: bool = True) -> None:
    if run.test is None and name:
        m = _BINARY.search(s)
        if m:
            run.test = f"{m[1]}_perf"
    for m in _ENV_EXPORT.finditer(s):
        run.env.setdefault(m[1], m[2].strip("\"'"))


def _scan_side_info(run: NcclRun, s: str, following: str) -> None:
    """Facts from command lines, NCCL INFO lines, failure and warning messages."""
    if run.test is None or "NCCL_" in s:
        _scan_command(run, s)
    if "NCCL" in s:
        m = _NCCL_VERSION.search(s)
        if m and run.nccl_version is None:
            run.nccl_version = m[1] or m[2]
        m = _ENV_SET.search(s)
        if m:
            run.env.setdefault(m[1], m[2])
        m = _NET_IB.search(s)
        if m:
            for dev in re.findall(r"\[\d+\]([A-Za-z0-9_.-]+?)(?::\d+)?(?:/|\s|$)", m[2]):
                if dev not in run.nics:
                    run.nics.append(dev)
        m = _NRANKS.search(s)
        if m:
            run.info_ranks = max(run.info_ranks or 0, int(m[1]))
            run.info_nodes = max(run.info_nodes or 0, int(m[2]))
        m = _COMM_NRANKS.search(s)
        if m and int(m[1]) not in run.comm_nranks:
            run.comm_nranks.append(int(m[1]))
        m = _NCCL_LOG.search(s)
        if m:
            if m["host"] not in run.info_hosts:
                run.info_hosts.append(m["host"])
            if m["level"] == "INFO":
                return
    if survivable_warn(s):
        if s[:300] not in run.warnings:
            run.warnings.append(s[:300])
        return
    if _is_run_failure(s):
        msg = s
        m = _FAIL_HOST.search(s)
        if m and m.start() > 0 and _ROW_START.match(" " + s):
            msg = s[m.start():].strip()   # a crash printed over a half-written result row
        if "UCX" in s and following.strip() and not _NCCL_LOG.search(following):
            msg = f"{s} {following.strip()}"  # UCX wraps its message over two lines
        msg = msg[:300]
        if msg not in run.failures:
            run.failures.append(msg)


def _finish(run: NcclRun) -> None:
    if not (run.rows or run.failures or run.warnings or run.devices or run.params):
        raise ParseError("no nccl-tests content: no result rows, header, devices, failure or NCCL WARN lines")


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
