"""nccl-tests and NCCL log texts for the verdict rules, written from the formats (not copies of real runs).

Formats: nccl-tests common.cu ('%s: Test NCCL failure %s:%d '%s / %s'', ' .. %s pid %d: Test failure %s:%d'),
NCCL's debug prefix 'host:pid:tid [dev] file.cc:line NCCL WARN ...', Open MPI's abort banner, and the
result-table layouts of nccl-tests 2.x (current, no root column, empty redop, 'error' column).
"""

from __future__ import annotations

_H100_HEAD = """\
# nccl-tests version 2.17.1 nccl-headers=22703 nccl-library=22703
# Collective test starting: all_reduce_perf
# nThread 1 nGpus 1 minBytes 1073741824 maxBytes 8589934592 step: 2(factor) warmup iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0
#
# Using devices
"""
_COLS = """\
#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong
#        (B)    (elements)                               (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)
"""


def _devices(hosts: list[str], gpus: int, name: str = "NVIDIA H100 80GB HBM3") -> str:
    out = []
    for i, h in enumerate(hosts):
        for g in range(gpus):
            rank = i * gpus + g
            out.append(f"#  Rank {rank:2d} Group  0 Pid {5000 + rank:6d} on {h:>10s} device {g:2d} [0000:{0x18 + g:02x}:00] {name}")
    return "\n".join(out) + "\n#\n"


# A run that died at init: the first NCCL WARN names the cause, nccl-tests then reports the NCCL error.
INIT_FAILED_IB = (_H100_HEAD + _devices(["gpu-a01", "gpu-a02"], 8) + """\
gpu-a02:5011:5102 [3] transport/net_ib.cc:2244 NCCL WARN NET/IB: Got completion from peer 10.1.0.7<41022> with status=12 opcode=129 len=1048576 vendor err 129 (Recv) localGid ::ffff:10.1.0.8 remoteGids::ffff:10.1.0.7 hca mlx5_3
gpu-a02:5011:5102 [3] NCCL INFO transport/net.cc:1362 -> 6
gpu-a02: Test NCCL failure common.cu:1119 'unhandled system error (run with NCCL_DEBUG=INFO for details) / '
 .. gpu-a02 pid 5011: Test failure common.cu:937
""")

# The same run killed mid-table by a crashed rank (Open MPI's banner).
CRASH_MID_TABLE = (_H100_HEAD + _devices(["gpu-a01", "gpu-a02"], 8) + _COLS + """\
  1073741824     268435456     float     sum      -1    5712.3  187.97  352.45      0    5705.1  188.21  352.89      0
  2147483648     536870912     float     sum      -1    11251   190.87  357.88      0    11249   190.90  357.94      0
--------------------------------------------------------------------------
mpirun noticed that process rank 11 with PID 5011 on node gpu-a02 exited on signal 11 (Segmentation fault).
--------------------------------------------------------------------------
""")

# GPUs in Exclusive Process mode already held: CUDA refuses before any row.
EXCLUSIVE_PROCESS = (_H100_HEAD + _devices(["gpu-c07"], 8) + """\
gpu-c07: Test CUDA failure common.cu:1304 'CUDA-capable device(s) is/are busy or unavailable'
 .. gpu-c07 pid 5003: Test failure common.cu:1189
""")

# Only failure lines, no table (what users paste from a ticket).
WARN_ONLY_FAILURE_LOG = """\
node-7:88121:88190 [0] transport/net_ib.cc:154 NCCL WARN NET/IB : mlx5_2:1 async fatal event on QP (0x7f3a1c0041d8): local work queue catastrophic error
node-7:88121:88190 [0] transport/net_ib.cc:154 NCCL WARN NET/IB : mlx5_5:1 async fatal event on QP (0x7f3a1c0093a8): local work queue catastrophic error
node-7:88121:88207 [1] transport/net_ib.cc:113 NCCL WARN communicator encountered a fatal error (detected in ncclIbIrecv)
"""

# A complete, healthy 8x H100 run that survived a CollNet/SHARP fallback.
_H100_ROWS = """\
  1073741824     268435456     float     sum      -1   4003.1  268.23  469.41       0   4001.2  268.35  469.62       0
  2147483648     536870912     float     sum      -1   7890.0  272.18  476.31       0   7885.5  272.33  476.58       0
  4294967296    1073741824     float     sum      -1    15690  273.74  479.04       0    15688  273.77  479.10       0
  8589934592    2147483648     float     sum      -1    31360  273.91  479.35       0    31355  273.96  479.43       0
"""
_TRAILER = """\
# Out of bounds values : 0 OK
# Avg bus bandwidth    : 476.4
#
# Collective test concluded: all_reduce_perf
"""
COLLNET_FALLBACK_HEALTHY = (_H100_HEAD.replace("nGpus 1", "nGpus 8") + _devices(["gpu-d01"], 8) + """\
gpu-d01:7001:7050 [0] sharp_plugin.c:365 NCCL WARN NET/IB : SHARP coll init error: Cannot create SHARP job(-11)
gpu-d01:7001:7050 [0] transport.cc:384 NCCL WARN Cannot initialize CollNet, using point-to-point network instead
""" + _COLS + _H100_ROWS + _TRAILER)

COLLNET_WARN_ONLY = """\
gpu-d01:7001:7050 [0] NCCL INFO NCCL_COLLNET_ENABLE set by environment to 1.
gpu-d01:7001:7050 [0] transport.cc:384 NCCL WARN Cannot initialize CollNet, using point-to-point network instead
"""

# nccl-tests built without MPI=1, launched by mpirun -np 2 on two nodes: each process is rank 0 of a
# 1-rank communicator, prints its own header and table, and busbw is 0.00 everywhere.
_NRANKS1_TABLE = """\
#
#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong
  1073741824     268435456     float     sum      -1    612.1  1754.2    0.00      0     0.31  3.5e+06    0.00      0
  2147483648     536870912     float     sum      -1   1221.7  1757.8    0.00      0     0.30  7.2e+06    0.00      0
# Out of bounds values : 0 OK
# Avg bus bandwidth    : 0
"""
NON_MPI_BUILD_UNDER_MPIRUN = "".join(
    f"# nThread 1 nGpus 1 minBytes 1073741824 maxBytes 2147483648 step: 2(factor) warmup iters: 5 iters: 20 "
    f"agg iters: 1 validation: 1 graph: 0\n#\n# Using devices\n"
    f"#  Rank  0 Group  0 Pid {pid:6d} on {host:>10s} device  0 [0000:18:00] NVIDIA H100 80GB HBM3\n" + _NRANKS1_TABLE
    for host, pid in (("gpu-a01", 4001), ("gpu-a02", 4002)))

# One process, one GPU: a legal invocation that moves nothing between GPUs.
ONE_RANK = (_H100_HEAD + "#  Rank  0 Group  0 Pid   4001 on    gpu-a01 device  0 [0000:18:00] NVIDIA H100 80GB HBM3\n#\n"
            + _COLS + _NRANKS1_TABLE.split("\n", 2)[2])

# -g 8 in each of two processes of a non-MPI build: two complete single-node tables, each rank 0-7.
REPEATED_SINGLE_NODE_TABLES = "".join(
    _H100_HEAD.replace("nGpus 1", "nGpus 8") + _devices([h], 8) + _COLS + _H100_ROWS + _TRAILER
    for h in ("gpu-a01", "gpu-a02"))

# A 2-node run (16 ranks) at ~370 GB/s: good for 8x NDR, far below the single-node NVLS figure.
TWO_NODE_H100 = (_H100_HEAD + _devices(["gpu-a01", "gpu-a02"], 8) + _COLS + """\
  1073741824     268435456     float     sum      -1   5712.3  187.97  352.45      0    5705.1  188.21  352.89      0
  2147483648     536870912     float     sum      -1    11250   190.89  357.92      0    11249   190.90  357.94      0
  4294967296    1073741824     float     sum      -1    21840  196.66  368.73      0    21838  196.68  368.77      0
  8589934592    2147483648     float     sum      -1    43460  197.66  370.61      0    43455  197.68  370.65      0
""" + _TRAILER)

# The same rows with no host names, only NCCL's own 'nranks 16' comm lines.
SIXTEEN_RANKS_NO_HOSTS = (_COLS + TWO_NODE_H100.split("(GB/s)\n", 1)[1].split("# Out")[0] +
                          "node-x:5000:5000 [0] NCCL INFO comm 0x55d0a1 rank 0 nranks 16 cudaDev 0 busId 18000 - "
                          "Destroy COMPLETE\n" + _TRAILER)


def small_sweep(busbw: float) -> str:
    """8x H100, 64 MiB - 512 MiB only, all rows near `busbw`."""
    rows = "".join(f"{s:12d}  {s // 4:12d}     float     sum      -1   {s / (busbw * 571.4):7.1f}  "
                   f"{busbw / 1.75:6.2f}  {busbw:6.2f}       0   {s / (busbw * 571.4):7.1f}  {busbw / 1.75:6.2f}  "
                   f"{busbw:6.2f}       0\n" for s in (64 << 20, 128 << 20, 256 << 20, 512 << 20))
    head = _H100_HEAD.replace("nGpus 1 minBytes 1073741824 maxBytes 8589934592",
                              "nGpus 8 minBytes 67108864 maxBytes 536870912")
    return head + _devices(["gpu-e01"], 8) + _COLS + rows + _TRAILER


# Old nccl-tests layouts (NCCL 2.8-2.10 era): all_gather with an empty redop column, broadcast with a
# root but no redop, validation off ('error' N/A).
def old_all_gather(busbw: float, name: str = "all_gather_perf") -> str:
    rows = "".join(f"{s:12d}  {s // 32:12d}   float  {s / (busbw * 1142.8):7.1f}  {busbw * 8 / 7:6.2f}  {busbw:6.2f}"
                   f"    N/A  {s / (busbw * 1142.8):7.1f}  {busbw * 8 / 7:6.2f}  {busbw:6.2f}    N/A\n"
                   for s in (1 << 30, 2 << 30, 4 << 30, 8 << 30))
    return (f"$ ./build/{name} -b 1 -e 8G -f 2 -g 8 -c 0\n" if name else "") + """\
# nThread 1 nGpus 8 minBytes 1 maxBytes 8589934592 step: 2(factor) warmup iters: 5 iters: 20 validation: 0
#
# Using devices
""" + _devices(["localhost"], 8, "A100-SXM4-40GB") + """\
#                                             out-of-place                       in-place
#       size         count    type     time   algbw   busbw  error     time   algbw   busbw  error
#        (B)    (elements)             (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)
""" + rows + "# Out of bounds values : 0 OK\n# Avg bus bandwidth    : 58.2\n#\n"


OLD_BROADCAST_ROWS = """\
#       size         count    type    root     time   algbw   busbw  error     time   algbw   busbw  error
  1073741824     268435456   float       0   4769.2  225.14  225.14    N/A   4697.5  228.58  228.58    N/A
  2147483648     536870912   float       0   9314.2  230.56  230.56    N/A   9248.3  232.20  232.20    N/A
"""

# Oldest layout ('error' = max deviation) for an exact uint8 copy and for float sums.
DELTA_ROWS = """\
#       size         count      type     time   algbw   busbw  error     time   algbw   busbw  error
    37748744      37748744     uint8    11732    3.22    3.22  0e+00    11698    3.23    3.23  {uint8_err}
     8388608       2097152     float    598.1   14.03   21.04  {float_err}    597.4   14.04   21.06  0e+00
"""

# Result rows pasted with neither header nor summary (a doc excerpt), from an srun --label run.
ROWS_ONLY = """\
0:   1073741824     268435456     float     sum      -1    26217   40.96   76.79      0    26194   40.99   76.86      0
0:   2147483648     536870912     float     sum      -1    51406   41.78   78.33      0    51406   41.77   78.33      0
0:   4294967296    1073741824     float     sum      -1   102470   41.91   78.59      0   102460   41.92   78.60      0
"""

# Large sizes collapse to a sixth of what 32 MiB reached and never recover.
COLLAPSE = """\
#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong
    16777216       4194304     float     sum      -1   1334.9   12.57   24.09      0   1336.5   12.55   24.06      0
    33554432       8388608     float     sum      -1   2180.1   15.39   29.50      0   2285.2   14.68   28.14      0
    67108864      16777216     float     sum      -1    24410    2.75    5.27      0    24425    2.75    5.27      0
   134217728      33554432     float     sum      -1    49264    2.72    5.22      0    48558    2.76    5.30      0
   268435456      67108864     float     sum      -1   125807    2.13    4.09      0   121575    2.21    4.23      0
   536870912     134217728     float     sum      -1   193909    2.77    5.31      0   192903    2.78    5.33      0
# Out of bounds values : 0 OK
# Avg bus bandwidth    : 9.1
"""

# mpirun's UCX failed before NCCL printed anything: only the launch line and UCX's error.
UCX_LAUNCH_FAILURE = """\
mpirun -np 2 -H nodeA,nodeB -x NCCL_DEBUG=WARN ./build/all_reduce_perf -b 8 -e 8G -f 2 -g 8
[nodeA:01234] ib_iface.c:746 UCX  ERROR ibv_create_cq(cqe=4096) failed on mlx5_4: Cannot allocate memory
"""

# NCCL 1.x era: parameter line without '#', device lines without Pid, 'bytes N type op' columns.
NCCL1_LAYOUT = """\
nThread 1 nGpus 2 minBytes 8 maxBytes 134217728 step: 2(factor) warmup iters: 5 iters: 20 validation: 1
# NCCL Tests compiled with NCCL 1.0
# Using devices
#   Rank  0 on     node03 device  0 [0x04] Tesla P100-PCIE-16GB
#   Rank  1 on     node03 device  1 [0x05] Tesla P100-PCIE-16GB

#      bytes             N    type      op     time  algbw  busbw      res     time  algbw  busbw      res
NCCL failure all_reduce.cu:95 'unhandled cuda error'
"""
