"""All-reduce bandwidth benchmark with torch.distributed, printing nccl-tests' table format.

The fallback when nccl-tests is not installed on a node: NCCL backend on GPUs, gloo on
CPU (which also lets a machine without GPUs run a real multi-process collective).
Self-contained (only torch), so it can be copied to a node or fed to `python3 -`.

Launch:
- under mpirun/srun/torchrun: one process per rank; the rank comes from the launcher's
  environment and MASTER_ADDR/MASTER_PORT name the rendezvous (rank 0's host);
- alone, with `--nprocs N`: forks N local ranks that meet through a file store (no port).

Only rank 0 prints. torch's all_reduce is in-place, so only the in-place columns are
filled (as nccl-tests prints for in-place-only runs). Validation (-c 1, the default)
all-reduces known values after the timed loop and counts wrong elements.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import tempfile
import time

_RANK_VARS = (("RANK", "WORLD_SIZE", "LOCAL_RANK"),
              ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
              ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
              ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"))


def size_arg(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)B?\s*", text, re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 8, 64K, 1M, 8G)")
    return int(m[1]) * 1024 ** " KMGT".index((m[2] or " ").upper())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-b", "--minbytes", type=size_arg, default=size_arg("8"))
    ap.add_argument("-e", "--maxbytes", type=size_arg, default=size_arg("64M"))
    ap.add_argument("-f", "--stepfactor", type=int, default=2)
    ap.add_argument("-n", "--iters", type=int, default=20)
    ap.add_argument("-w", "--warmup_iters", type=int, default=5)
    ap.add_argument("-c", "--check", type=int, default=1)
    ap.add_argument("--backend", choices=("auto", "nccl", "gloo"), default="auto")
    ap.add_argument("--nprocs", type=int, default=0, help="fork this many local ranks (no launcher)")
    a = ap.parse_args(argv)
    if a.minbytes < 4 or a.maxbytes < a.minbytes or a.stepfactor < 2:
        ap.error("need 4 <= minbytes <= maxbytes and stepfactor >= 2")
    return a


def launcher_rank() -> tuple[int, int, int] | None:
    for r, w, lr in _RANK_VARS:
        if os.environ.get(r) is not None and os.environ.get(w) is not None:
            return int(os.environ[r]), int(os.environ[w]), int(os.environ.get(lr, "0") or 0)
    return None


def _device_line(rank: int, local_rank: int, backend: str) -> str:
    import torch

    host = socket.gethostname()
    if backend == "nccl":
        p = torch.cuda.get_device_properties(local_rank)
        bus = f"{getattr(p, 'pci_domain_id', 0):04x}:{getattr(p, 'pci_bus_id', 0):02x}:{getattr(p, 'pci_device_id', 0):02x}"
        name = p.name
    else:
        bus, name = "cpu", "CPU (gloo)"
    return f"#  Rank {rank:2d} Group  0 Pid {os.getpid():6d} on {host:>10s} device {local_rank:2d} [{bus}] {name}"


def _fmt(v: float, width: int) -> str:
    digits = len(str(int(v)))
    if digits < width - 2:
        return f"{v:{width}.2f}"
    if digits < width - 1:
        return f"{v:{width}.1f}"
    return f"{v:{width}.0f}"


def bench(a: argparse.Namespace, rank: int, world: int, local_rank: int) -> int:
    import torch
    import torch.distributed as dist

    backend = dist.get_backend()
    dev = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    if backend == "nccl":
        torch.cuda.set_device(local_rank)

    def sync() -> None:
        if backend == "nccl":
            torch.cuda.synchronize(dev)

    lines: list[str | None] = [None] * world
    dist.all_gather_object(lines, _device_line(rank, local_rank, backend))
    out = sys.stdout
    if rank == 0:
        print(f"# clusterkit allreduce_bench (torch {torch.__version__}, backend {backend})", file=out)
        print("# Collective test starting: all_reduce_perf", file=out)
        print(f"# nThread 1 nGpus 1 minBytes {a.minbytes} maxBytes {a.maxbytes} step: {a.stepfactor}(factor) "
              f"warmup iters: {a.warmup_iters} iters: {a.iters} agg iters: 1 validation: {a.check} graph: 0", file=out)
        print("#\n# Using devices", file=out)
        for ln in lines:
            print(ln, file=out)
        print("#", file=out)
        print("#                                                              out-of-place                       in-place          ", file=out)
        print("#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong", file=out)
        print("#        (B)    (elements)                               (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)       ", file=out)
    factor = 2.0 * (world - 1) / world if world > 1 else 0.0
    errors, busbws = 0, []
    size = a.minbytes
    while size <= a.maxbytes:
        count = max(1, size // 4)
        buf = torch.ones(count, dtype=torch.float32, device=dev)
        for _ in range(a.warmup_iters):
            dist.all_reduce(buf)
        sync()
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(a.iters):
            dist.all_reduce(buf)
        sync()
        elapsed = torch.tensor([(time.perf_counter() - t0) / a.iters], dtype=torch.float64, device=dev)
        dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)  # the slowest rank sets the pace
        t_us = float(elapsed.item()) * 1e6
        wrong = 0
        if a.check:
            buf.fill_(float(rank + 1))
            dist.all_reduce(buf)
            want = world * (world + 1) / 2.0
            w = torch.tensor([int((buf != want).sum().item())], dtype=torch.int64, device=dev)
            dist.all_reduce(w)
            wrong = int(w.item())
            errors += 1 if wrong else 0
        alg = count * 4 / (t_us * 1e3) if t_us > 0 else 0.0
        bus = alg * factor
        busbws.append(bus)
        if rank == 0:
            wtxt = f"{wrong:6d}" if a.check else "   N/A"
            print(f"{count * 4:12d}  {count:12d}     float     sum      -1" + " " * 32
                  + f"  {_fmt(t_us, 7)}  {_fmt(alg, 6)}  {_fmt(bus, 6)}  {wtxt}", file=out, flush=True)
        size *= a.stepfactor
    if rank == 0:
        avg = sum(busbws) / len(busbws) if busbws else 0.0
        print(f"# Out of bounds values : {errors} {'FAILED' if errors else 'OK'}", file=out)
        print(f"# Avg bus bandwidth    : {avg:g} ", file=out)
        print("#\n# Collective test concluded: all_reduce_perf\n#", file=out, flush=True)
    return 1 if errors else 0


def _backend(a: argparse.Namespace) -> str:
    import torch

    if a.backend != "auto":
        return a.backend
    return "nccl" if torch.cuda.is_available() else "gloo"


def _worker(a: argparse.Namespace, rank: int, world: int, store_path: str) -> int:
    import torch.distributed as dist

    store = dist.FileStore(store_path, world)
    dist.init_process_group(_backend(a), store=store, rank=rank, world_size=world)
    try:
        return bench(a, rank, world, rank)
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.nprocs > 0:
        # Local ranks by fork: works when this script arrives on stdin, and binds no port.
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        with tempfile.TemporaryDirectory(prefix="ck-allreduce-") as d:
            store = os.path.join(d, "store")
            pids = []
            for r in range(a.nprocs):
                pid = os.fork()
                if pid == 0:
                    code = 1
                    try:
                        code = _worker(a, r, a.nprocs, store)
                    except BaseException as e:  # the parent reports a failing rank
                        print(f"rank {r}: Test failure: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
                    finally:
                        sys.stdout.flush()
                        os._exit(code)
                pids.append(pid)
            codes = [os.waitpid(p, 0)[1] for p in pids]
            return 0 if all(c == 0 for c in codes) else 1
    got = launcher_rank()
    if got is None:
        print("Test failure: no rank in the environment (run under mpirun/srun/torchrun, or pass --nprocs N)",
              file=sys.stderr)
        return 2
    rank, world, local_rank = got
    import torch.distributed as dist

    dist.init_process_group(_backend(a), init_method="env://", rank=rank, world_size=world)
    try:
        return bench(a, rank, world, local_rank)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
