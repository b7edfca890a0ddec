"""all_reduce_perf outputs written for these tests, one per layout variant (not copies of real runs)."""

from __future__ import annotations

CURRENT_8X_H100 = """\
# nccl-tests version 2.16.3 nccl-headers=22304 nccl-library=22304
# Collective test starting: all_reduce_perf
# nThread 1 nGpus 8 minBytes 268435456 maxBytes 8589934592 step: 2(factor) warmup iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0
#
# Using devices
#  Rank  0 Group  0 Pid  41200 on    gpu-a01 device  0 [0000:18:00] NVIDIA H100 80GB HBM3
#  Rank  1 Group  0 Pid  41200 on    gpu-a01 device  1 [0000:2a:00] NVIDIA H100 80GB HBM3
#  Rank  2 Group  0 Pid  41200 on    gpu-a01 device  2 [0000:3a:00] NVIDIA H100 80GB HBM3
#  Rank  3 Group  0 Pid  41200 on    gpu-a01 device  3 [0000:5d:00] NVIDIA H100 80GB HBM3
#  Rank  4 Group  0 Pid  41200 on    gpu-a01 device  4 [0000:9a:00] NVIDIA H100 80GB HBM3
#  Rank  5 Group  0 Pid  41200 on    gpu-a01 device  5 [0000:ab:00] NVIDIA H100 80GB HBM3
#  Rank  6 Group  0 Pid  41200 on    gpu-a01 device  6 [0000:ba:00] NVIDIA H100 80GB HBM3
#  Rank  7 Group  0 Pid  41200 on    gpu-a01 device  7 [0000:db:00] NVIDIA H100 80GB HBM3
#
#                                                              out-of-place                       in-place          
#       size         count      type   redop    root     time   algbw   busbw  #wrong     time   algbw   busbw  #wrong
#        (B)    (elements)                               (us)  (GB/s)  (GB/s)             (us)  (GB/s)  (GB/s)       
   268435456      67108864     float     sum      -1   1180.2  227.45  398.04       0   1177.9  227.89  398.81       0
   536870912     134217728     float     sum      -1   2105.4  254.99  446.24       0   2101.7  255.45  447.03       0
  1073741824     268435456     float     sum      -1   4003.1  268.23  469.41       0   4001.2  268.35  469.62       0
  2147483648     536870912     float     sum      -1   7890.0  272.18  476.31       0   7885.5  272.33  476.58       0
  4294967296    1073741824     float     sum      -1    15690  273.74  479.04       0    15688  273.77  479.10       0
  8589934592    2147483648     float     sum      -1    31360  273.91  479.35       0    31355  273.96  479.43       0
# Out of bounds values : 0 OK
# Avg bus bandwidth    : 461.25 
#
# Collective test concluded: all_reduce_perf
#
"""

# nccl-tests 2.x before the root column (2019-2021 builds).
NO_ROOT_A100 = """\
# nThread 1 nGpus 8 minBytes 1048576 maxBytes 4294967296 step: 4(factor) warmup iters: 5 iters: 20 validation: 1
#
# Using devices
#   Rank  0 Pid   8812 on     dgx-07 device  0 [0x07] A100-SXM4-40GB
#   Rank  1 Pid   8812 on     dgx-07 device  1 [0x0f] A100-SXM4-40GB
#
#                                                     out-of-place                       in-place          
#       size         count    type   redop     time   algbw   busbw  #wrong     time   algbw   busbw  #wrong
#        (B)    (elements)                     (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)       
     1048576        262144   float     sum    71.02   14.76   25.84       0    70.33   14.91   26.09       0
     4194304       1048576   float     sum    120.5   34.81   60.91       0    119.8   35.01   61.27       0
    16777216       4194304   float     sum    241.3   69.53  121.67       0    240.7   69.70  121.98       0
    67108864      16777216   float     sum    573.4  117.04  204.82       0    572.9  117.14  205.00       0
   268435456      67108864   float     sum   2063.2  130.11  227.69       0   2062.0  130.18  227.82       0
  1073741824     268435456   float     sum   8145.9  131.81  230.67       0   8144.1  131.84  230.72       0
  4294967296    1073741824   float     sum    32470  132.27  231.48       0    32466  132.29  231.51       0
# Out of bounds values : 0 OK
# Avg bus bandwidth    : 131.38 
#
"""

# The oldest layout: an `error` column holding the max deviation, printed %5.0le.
OLD_ERROR_COLUMN = """\
# nThread 1 nGpus 4 minBytes 8 maxBytes 134217728 step: 2(factor) warmup iters: 5 iters: 20 validation: 1
#
#                                                     out-of-place                       in-place
#       size         count    type   redop     time   algbw   busbw  error     time   algbw   busbw  error
#        (B)    (elements)                     (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)
     8388608       2097152   float     sum    598.1   14.03   21.04  1e-06    597.4   14.04   21.06  1e-06
    33554432       8388608   float     sum   2301.9   14.58   21.87  0e+00   2300.2   14.59   21.88  0e+00
   134217728      33554432   float     sum   9150.3   14.67   22.00  0e+00   9148.8   14.67   22.01  0e+00
 Out of bounds values : 0 OK
 Avg bus bandwidth    : 21.6433 
"""

# srun with --label: every line carries ` 0: `; NCCL INFO and an MPI warning interleaved; no trailer.
SRUN_PREFIXED_TRUNCATED = """\
 0: # nThread 1 nGpus 1 minBytes 1073741824 maxBytes 8589934592 step: 2(factor) warmup iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0
 0: #
 0: # Using devices
 0: #  Rank  0 Group  0 Pid  11111 on     nodeA device  0 [0x18] NVIDIA H100 80GB HBM3
 0: #  Rank  1 Group  0 Pid  22222 on     nodeB device  0 [0x18] NVIDIA H100 80GB HBM3
 0: nodeA:11111:11130 [0] NCCL INFO NET/IB : Using [0]mlx5_0:1/IB [1]mlx5_3:1/IB ; OOB ib0:10.0.0.1<0>
 1: nodeB:22222:22240 [0] NCCL INFO comm 0x55d0 rank 1 nRanks 2 nNodes 2 localRanks 1 localRank 0 MNNVL 0
 0: #
 0: #       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong
 0:   1073741824     268435456     float     sum      -1    23100   46.48   46.48      0    23098   46.49   46.49      0
 1: --------------------------------------------------------------------------
 1: WARNING: There was an error initializing an OpenFabrics device.
 0:   2147483648     536870912     float     sum      -1    46050   46.63   46.63      0    46047   46.64   46.64      0
"""

# mpirun --tag-output prefixes, validation off (N/A), in-place only rows and a timestamp column.
TAGGED_NA_TIMESTAMPS = """\
[1,0]<stdout>:# nThread 1 nGpus 8 minBytes 1073741824 maxBytes 2147483648 step: 2(factor) warmup iters: 5 iters: 20 agg iters: 1 validation: 0 graph: 0
[1,0]<stdout>:#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong timestamp
[1,0]<stdout>:  1073741824     268435456     float     sum      -1   8200.1  130.94  229.15    N/A   8198.0  130.98  229.21    N/A 2026-11-23 10:00:01
[1,0]<stdout>:  2147483648     536870912     float     sum      -1                                   16300  131.75  230.56    N/A 2026-11-23 10:00:05
[1,0]<stdout>:# Out of bounds values : 0 OK
[1,0]<stdout>:# Avg bus bandwidth    : 229.64
"""

WRONG_AND_FAILED = """\
# nThread 1 nGpus 8 minBytes 1073741824 maxBytes 4294967296 step: 2(factor) warmup iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0
#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong
  1073741824     268435456     float     sum      -1   8160.0  131.58  230.27       0   8158.0  131.62  230.33       3
  2147483648     536870912     float     sum      -1    16290  131.83  230.70  1e+06    16288  131.84  230.72       0
  4294967296    1073741824     float     sum      -1    32480  132.23  231.41       0    32475  132.26  231.45       0
# Out of bounds values : 2 FAILED
# Avg bus bandwidth    : 230.81
"""

ABORTED_MID_RUN = """\
# nThread 1 nGpus 8 minBytes 1073741824 maxBytes 8589934592 step: 2(factor) warmup iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0
#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong
  1073741824     268435456     float     sum      -1   4003.1  268.23  469.41       0   4001.2  268.35  469.62       0
gpu-b07:5511:5530 [3] NCCL WARN Cuda failure 'an illegal memory access was encountered'
gpu-b07: Test NCCL failure common.cu:1102 'unhandled cuda error (run with NCCL_DEBUG=INFO for details)'
 .. gpu-b07 pid 5511: Test failure common.cu:1062
"""

CUDA_INIT_FAIL = """\
# nThread 1 nGpus 8 minBytes 8 maxBytes 8589934592 step: 2(factor) warmup iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0
#
# Using devices
gpu-c03: Test CUDA failure common.cu:970 'system not yet initialized'
 .. gpu-c03 pid 7001: Test failure common.cu:900
"""

JSON_REPORT = """\
{"version":1,"start_time":"2026-11-23 09:12:44","args":["./build/all_reduce_perf","-b","1G","-e","4G","-f","2","-g","8","-J","r.json"],
"env":["NCCL_DEBUG=VERSION","PATH=/usr/bin","NCCL_NVLS_ENABLE=1"],"nccl_version":22304,
"config":{"nthreads":1,"ngpus":8,"minimum_bytes":1073741824,"maximum_bytes":4294967296,"step_factor":2,"warmup_iters":5,"iterations":20,"aggregated_iterations":1,"validation":1,"graph":0,"blocking_collectives":"false","parallel_init":"false",
"devices":[{"rank":0,"group":0,"pid":900,"hostname":"gpu-d01","device":0,"device_hex":"0000:18:00","device_info":"NVIDIA H100 80GB HBM3"},{"rank":1,"group":0,"pid":900,"hostname":"gpu-d01","device":1,"device_hex":"0000:2a:00","device_info":"NVIDIA H100 80GB HBM3"}]},
"results":[{"size":1073741824,"count":268435456,"type":"float","redop":"sum","root":"    -1","out_of_place":{"time":4003.100000,"alg_bw":268.230000,"bus_bw":469.410000,"nwrong":0.000000},"in_place":{"time":4001.200000,"alg_bw":268.350000,"bus_bw":469.620000,"nwrong":0.000000},"actual_iterations":20,"experiment_name":"all_reduce_perf"},
{"size":2147483648,"count":536870912,"type":"float","redop":"sum","root":"    -1","out_of_place":{"time":7890.000000,"alg_bw":272.180000,"bus_bw":476.310000,"nwrong":0.000000},"in_place":{"time":7885.500000,"alg_bw":272.330000,"bus_bw":476.580000,"nwrong":0.000000},"actual_iterations":20,"experiment_name":"all_reduce_perf"},
{"size":4294967296,"count":1073741824,"type":"float","redop":"sum","root":"    -1","out_of_place":{"time":15690.000000,"alg_bw":273.740000,"bus_bw":479.040000,"nwrong":0.000000},"in_place":{"time":15688.000000,"alg_bw":273.770000,"bus_bw":479.100000,"nwrong":0.000000},"actual_iterations":20,"experiment_name":"all_reduce_perf"}],
"out_of_bounds":{"count":0,"okay":"true"},"average_bus_bandwidth":{"bandwidth":474.676667,"okay":"unchecked"},"errors":[],"end_time":"2026-11-23 09:13:30"}
"""
