"""NCCL probes: single-node all_reduce_perf on every node (the load phase).

nccl-tests when `all_reduce_perf` is on the node's PATH, else clusterkit's torch.distributed
benchmark fed on stdin (same table format, same parser). The NCCL environment (profile
[nccl] env, NCCL_IB_HCA from the inventory, suite params) is passed through `env`, so it
is recorded in bundle.json with the command line.

The multi-node run and the localization rounds are cluster-wide steps launched from the
first node: see clusterkit.fleet.nccl_runner.
"""

from __future__ import annotations

from clusterkit.fleet.nccl_runner import BENCH_SCRIPT, NcclOptions, nccl_env
from clusterkit.parsers.nccl_tests import ALL_REDUCE
from clusterkit.probes.registry import PHASE_LOAD, Command, ProbeEnv, probe

# Runs nccl-tests if installed, else the torch benchmark read from stdin, on the GPUs
# (NCCL backend): gloo on CPU is for tests only, never a node's verdict.
_WRAPPER = (
    'n="$1"; bin="$2"; py="$3"; shift 3; '
    'if command -v "$bin" >/dev/null 2>&1; then exec "$bin" "$@" -g "$n"; fi; '
    'echo "# $bin not found: clusterkit torch.distributed fallback"; '
    'exec "$py" - "$@" --nprocs "$n" --backend nccl'
)


def options(params: dict) -> NcclOptions:
    """Suite params [params."nccl.single_node"]: min_bytes, max_bytes, iters, binary, env, timeout_s..."""
    o = NcclOptions()
    for k, v in params.items():
        if hasattr(o, k):
            setattr(o, k, dict(v) if k == "env" else type(getattr(o, k))(v))
    return o


@probe("nccl.single_node", kinds=(ALL_REDUCE,))
def single_node(env: ProbeEnv) -> list[Command]:
    opts = options(env.params)
    gpus = env.spec.gpu_count if env.spec is not None else 0
    if gpus <= 0:
        # A node declared without GPUs gets no bandwidth test: the NCCL checks skip
        # ("not collected"), instead of a CPU all-reduce loading the node for minutes.
        return []
    nenv = nccl_env(env.profile, env.spec, opts)
    argv = ["env", *[f"{k}={v}" for k, v in sorted(nenv.items())],
            "sh", "-c", _WRAPPER, "ck-nccl", str(gpus), opts.binary, opts.python, *opts.size_args()]
    return [Command(ALL_REDUCE.path, argv, timeout_s=opts.timeout_s, phase=PHASE_LOAD,
                    stdin=BENCH_SCRIPT.read_bytes(), optional=False)]
