"""GPU and power probes: what `collect` runs on a node for the gpu.* and power.* checks.

The NVML reader and the power-step load/sampler are one on-node script built
from clusterkit/probes/nvml_backend.py + clusterkit/node_scripts/gpu_node.py
(no second copy of the NVML code), sent on stdin to `python3 -`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from clusterkit.checks.registry import declare_profile_keys
from clusterkit.parsers.dcgmi import DCGMI_DIAG
from clusterkit.parsers.dmidecode_bios import DMIDECODE_BIOS
from clusterkit.parsers.fabricmanager import FABRICMANAGER
from clusterkit.parsers.fabricmanager_log import FABRICMANAGER_LOG
from clusterkit.parsers.ipmi import IPMI_SDR_PSU, IPMI_SEL
from clusterkit.parsers.nvidia_smi import NVIDIA_SMI_Q, QUERY_GPU, TOPO
from clusterkit.parsers.nvidia_smi_xml import NVIDIA_SMI_Q_XML
from clusterkit.parsers.nvml_json import NVML, NVML_AFTER
from clusterkit.parsers.power_trace import POWER_TRACE, POWER_TRACE_COLUMNS
from clusterkit.probes import nvml_backend
from clusterkit.probes.registry import (
    PHASE_AFTER, PHASE_INFO, PHASE_LOAD, Command, ProbeEnv, probe, simple_probe,
)

# Shape of the power step: profile data ([power]), overridable per suite ([params."power.step"]).
declare_profile_keys({"power.step_period_s": float, "power.step_duration_s": float, "power.sample_hz": float})



@lru_cache(maxsize=1)
def node_script() -> bytes:
    """nvml_backend.py, trace_columns.py and gpu_node.py: one stdlib(+pynvml/torch) script for `python3 -`."""
    parts = [Path(nvml_backend.__file__).read_text()]
    for name in ("trace_columns.py", "gpu_node.py"):
        text = (Path(__file__).resolve().parent.parent / "node_scripts" / name).read_text()
        parts.append(f"# ---- clusterkit/node_scripts/{name} ----\n{text}")
    return "\n\n".join(parts).encode()


@probe("gpu.nvml", kinds=(NVML, NVML_AFTER))
def plan_nvml(env: ProbeEnv) -> list[Command]:
    # Before and after the load tests: NVLink/ECC counter deltas are judged over the run.
    return [Command(k.path, ["python3", "-", "snapshot", "--out", k.path], timeout_s=90, stdin=node_script(),
                    output="files-json", phase=phase)
            for k, phase in ((NVML, PHASE_INFO), (NVML_AFTER, PHASE_AFTER))]


@probe("power.step", kinds=(POWER_TRACE, POWER_TRACE_COLUMNS))
def plan_power_step(env: ProbeEnv) -> list[Command]:
    def get(key: str, default: float) -> float:
        if key in env.params:
            return float(env.params[key])
        v = env.profile.get(f"power.{key}") if env.profile is not None else None
        return float(v) if v is not None else default

    period, duration, hz = get("step_period_s", 4.0), get("step_duration_s", 60.0), get("sample_hz", 20.0)
    return [Command(POWER_TRACE.path,
                    [*POWER_TRACE.argv(), "--period", str(period), "--duration", str(duration), "--hz", str(hz)],
                    timeout_s=duration + 180, stdin=node_script(), output="files-json", phase=PHASE_LOAD)]


@probe("gpu.dcgmi_diag", kinds=(DCGMI_DIAG,))
def plan_dcgmi(env: ProbeEnv) -> list[Command]:
    level = int(env.params.get("run_level", 1))   # -r 3 takes tens of minutes: opt in per suite
    return [Command(DCGMI_DIAG.path, ["dcgmi", "diag", "-r", str(level)], timeout_s=300 + 900 * (level - 1),
                    root=True, phase=PHASE_LOAD)]


simple_probe("gpu.nvidia_smi_q", NVIDIA_SMI_Q, timeout_s=60)
simple_probe("gpu.nvidia_smi_q_xml", NVIDIA_SMI_Q_XML, timeout_s=60)   # stable to parse, alongside NVML
simple_probe("gpu.query_gpu", QUERY_GPU, timeout_s=60)
simple_probe("gpu.topo", TOPO, timeout_s=60)
simple_probe("gpu.fabricmanager", FABRICMANAGER, timeout_s=30)
# Its log after the load tests (NVSwitch errors they caused); exit 127 where no fabric manager is installed.
simple_probe("gpu.fabricmanager_log", FABRICMANAGER_LOG, timeout_s=30, root=True, phase=PHASE_AFTER)
simple_probe("power.ipmi_sdr", IPMI_SDR_PSU, timeout_s=60, root=True)
simple_probe("power.ipmi_sel", IPMI_SEL, timeout_s=120, root=True, phase=PHASE_AFTER)
simple_probe("power.bios", DMIDECODE_BIOS, timeout_s=30, root=True)
