"""Logs of several nccl-tests collectives run back to back, written from the format (not copies of real runs).

Format (nccl-tests 2.17, src/common.cu): '# nccl-tests version ...', '# Collective test starting: X', the
parameter line, '# Using devices' and one line per rank, the column titles, one row per size, the summary
('# Out of bounds values', '# Avg bus bandwidth') and '# Collective test concluded: X'. Older versions print
neither the version nor the starting/concluded lines: a test then opens with its parameter line.

Row figures follow each test's busbw definition (nccl-tests doc/PERFORMANCE.md and src/*.cu): all_reduce
algbw x 2(n-1)/n; all_gather, reduce_scatter, alltoall algbw x (n-1)/n; broadcast, reduce, sendrecv algbw.
The `count` column is per rank for all_reduce/broadcast/reduce/sendrecv and per rank and peer for the
gather family and alltoall (size = count x type size x nranks). alltoall and sendrecv never validate in
place (reportErrors = in_place ? 0 : 1), so their in-place '#wrong' reads N/A.
"""

from __future__ import annotations

from collections.abc import Sequence

MIB, GIB = 1 << 20, 1 << 30
GATE_SIZES = (GIB, 2 * GIB, 4 * GIB, 8 * GIB)
_PER_PEER = {"all_gather", "reduce_scatter", "alltoall"}
_NO_OP = {"all_gather", "alltoall", "broadcast"}
_ROOTED = {"broadcast", "reduce"}
_UNCHECKED_IN_PLACE = {"alltoall", "sendrecv"}
COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce", "alltoall", "sendrecv")


def _factor(coll: str, n: int) -> float:
    """busbw / algbw."""
    if coll == "all_reduce":
        return 2 * (n - 1) / n
    if coll in ("all_gather", "reduce_scatter", "alltoall"):
        return (n - 1) / n
    return 1.0


def devices(hosts: Sequence[str], gpus: int, *, name: str = "NVIDIA H100 80GB HBM3", first_gpu: int = 0,
            pid0: int = 5000) -> str:
    out = []
    for i, h in enumerate(hosts):
        for g in range(gpus):
            rank, dev = i * gpus + g, first_gpu + g
            out.append(f"#  Rank {rank:2d} Group  0 Pid {pid0 + rank:6d} on {h:>10s} device {dev:2d} "
                       f"[0000:{0x18 + dev:02x}:00] {name}")
    return "\n".join(out) + "\n#\n"


def rows(coll: str, busbw: float | Sequence[float], n: int, sizes: Sequence[int] = GATE_SIZES) -> str:
    """Result rows of `coll` over `n` ranks: one busbw for every size, or one per size."""
    per_size = [busbw] * len(sizes) if isinstance(busbw, (int, float)) else list(busbw)
    out = []
    for size, bw in zip(sizes, per_size):
        count = size // 4 // (n if coll in _PER_PEER else 1)
        redop = "none" if coll in _NO_OP else "sum"
        root = 0 if coll in _ROOTED else -1
        algbw = bw / _factor(coll, n) if n > 1 or coll in ("broadcast", "reduce", "sendrecv") else bw
        t = size / (algbw * 1e3) if algbw else 1.0
        ip_wrong = "N/A" if coll in _UNCHECKED_IN_PLACE else "0"
        out.append(f"{size:12d}  {count:12d}     float  {redop:>6s}  {root:6d}  {t:9.1f}  {algbw:6.2f}  {bw:6.2f}  "
                   f"     0  {t:9.1f}  {algbw:6.2f}  {bw:6.2f}  {ip_wrong:>6s}")
    return "\n".join(out) + "\n"


_COLS = """\
#                                                              out-of-place                       in-place
#       size         count      type   redop    root     time   algbw   busbw  #wrong     time   algbw   busbw  #wrong
#        (B)    (elements)                               (us)  (GB/s)  (GB/s)             (us)  (GB/s)  (GB/s)
"""


def block(coll: str = "all_reduce", busbw: float | Sequence[float] = 478.0, hosts: Sequence[str] = ("gpu-m01",),
          gpus: int = 8, *, sizes: Sequence[int] = GATE_SIZES, markers: bool = True, table: bool = True,
          trailer: bool = True, name: str = "NVIDIA H100 80GB HBM3", first_gpu: int = 0, pid0: int = 5000,
          max_bytes: int | None = None) -> str:
    """One test's output. markers=False: the older layout (no version, starting or concluded line).
    table=False: the test printed its header and nothing more (hung or killed)."""
    test = f"{coll}_perf"
    head = (f"# nccl-tests version 2.17.8 nccl-headers=22902 nccl-library=22902\n"
            f"# Collective test starting: {test}\n") if markers else ""
    head += (f"# nThread 1 nGpus 1 minBytes {min(sizes)} maxBytes {max_bytes or max(sizes)} step: 2(factor) "
             f"warmup iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0\n#\n# Using devices\n")
    text = head + devices(hosts, gpus, name=name, first_gpu=first_gpu, pid0=pid0) + _COLS
    if not table:
        return text
    text += rows(coll, busbw, len(hosts) * gpus, sizes)
    if trailer:
        text += "# Out of bounds values : 0 OK\n# Avg bus bandwidth    : 100.0\n#\n"
        if markers:
            text += f"# Collective test concluded: {test}\n"
    return text + "\n"


def five_collectives(host: str = "gpu-m01", all_reduce: float = 479.0) -> str:
    """A sweep script's log on one 8x H100 node: the busbw each collective reaches on NVSwitch."""
    return "".join(block(c, bw, (host,)) for c, bw in (("all_reduce", all_reduce), ("all_gather", 360.0),
                                                         ("reduce_scatter", 362.0), ("alltoall", 345.0),
                                                         ("sendrecv", 366.0)))


def polaris_like(busbw: float, nodes: int, sizes: Sequence[int] = (256 * MIB, 512 * MIB, GIB),
                 coll: str = "alltoall") -> str:
    """A many-node 4x A100 run, -b 4 -e 1G (the layout of ALCF's nccl-tests runs)."""
    hosts = [f"x{3000 + i // 8}c0s{i % 8}b0n0" for i in range(nodes)]
    return block(coll, busbw, hosts, 4, sizes=sizes, markers=False, name="NVIDIA A100-SXM4-40GB")
