"""The torch fallback on real GPUs (NCCL backend): runs only where CUDA GPUs are present."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from clusterkit.fleet.nccl_runner import NcclOptions, local_plan, run_plan  # noqa: E402
from clusterkit.parsers.nccl_tests import parse  # noqa: E402

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_nccl_backend_on_every_local_gpu():
    n = torch.cuda.device_count()
    opts = NcclOptions(min_bytes="1M", max_bytes="1G", step_factor=8, iters=10, warmup_iters=3)
    rec = run_plan(local_plan(n, opts), timeout_s=300)
    assert rec.status == "ok", rec.stdout[-2000:]
    r = parse(rec.stdout)
    assert r.ranks == n and r.wrong_total == 0 and r.gpu_names and "CPU" not in r.gpu_names[0]
    assert "backend nccl" in rec.stdout
    if n > 1:
        assert r.busbw_large_gbps() > 1.0
