"""RunResults built by hand for burn-in/history/exporter tests (the pipeline's output shape)."""

from __future__ import annotations

from clusterkit.results import CheckResult, Finding, NodeResult, RunResult

ROW_REMAP = Finding("GPU_ROW_REMAP_PENDING", "fail", "GPU 3 (0000:1B:00.0, SN 1652221000123)",
                    "GPU 3 has a row remap pending", observed=1, limit=0, unit="count",
                    action="reset the GPU (nvidia-smi -r -i 3) or reboot the node")
FLAP = Finding("IB_LINK_DOWNED_INCREASED", "fail", "mlx5_2 port 1", "link went down 3 times during the window",
               observed=3, limit=0, unit="count", action="reseat or replace the cable on mlx5_2 port 1")


def node(host: str, *, busbw: float = 230.0, ber: float = 1e-14, fail: list[Finding] | None = None) -> NodeResult:
    checks = [
        CheckResult("host.disk", "pass", "disk ok", metrics={"free_disk_gib": 120.5, "mounts": ["/"]}),
        CheckResult.from_findings("nccl.allreduce", [], "bus bandwidth ok",
                                  {"busbw_large_gbps": busbw, "algbw_large_gbps": busbw * 0.57, "ok": True}),
        CheckResult.from_findings("fabric.ber", [], "BER ok", {"effective_ber_max": ber}),
        CheckResult.from_findings("gpu.health", list(fail or []), "8 GPUs healthy", {"gpu_count": 8}),
    ]
    for c in checks:
        c.duration_s = 0.25
    return NodeResult(host, "ok", checks, simulated=True)


def run(nodes: list[NodeResult], *, started_at: str | None = None, finished_at: str | None = None) -> RunResult:
    r = RunResult("h100-sxm5-80gb", "full", nodes, [CheckResult("nccl.multinode", "pass", "ok",
                                                                metrics={"busbw_multinode_gbps": 190.0})],
                  simulated=True)
    if started_at:
        r.started_at = started_at
    r.finished_at = finished_at or r.started_at
    return r
