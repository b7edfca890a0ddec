"""What `collect` would run for the GPU/power checks: argv lists, root where needed, timeouts, the node script."""

import ast
from pathlib import Path

from clusterkit.probes import nvml_backend
from clusterkit.probes.gpu import node_script
from clusterkit.probes.registry import PHASE_AFTER, PHASE_INFO, PHASE_LOAD, PROBES, ProbeEnv, probes_for
from clusterkit.profiles import load_profile
from clusterkit.suites import load_suite
from clusterkit.checks.registry import CHECKS


def _plan(name, params=None, profile="h100-sxm5-80gb"):
    return PROBES[name].plan(ProbeEnv("n1", None, load_profile(profile), params or {}))


def test_full_suite_plans_every_gpu_and_power_file():
    suite = load_suite("full")
    needs = [n for c in suite.check_ids if c.startswith(("gpu.", "power.")) for n in CHECKS[c].needs]
    names = {p.name for p in probes_for(needs)}
    assert {"gpu.nvml", "gpu.nvidia_smi_q", "gpu.topo", "gpu.dcgmi_diag", "gpu.fabricmanager", "power.step",
            "power.ipmi_sdr", "power.ipmi_sel", "power.bios", "host.kernel_log", "gpu.fabricmanager_log",
            "power.ipmi_sdr_v"} <= names
    quick = load_suite("quick")
    assert "power.step" not in quick.check_ids and "power.psu" in quick.check_ids


def test_commands_are_argv_lists_with_timeouts_and_root_only_where_needed():
    cmds = {c.path: c for name in PROBES if name.startswith(("gpu.", "power.")) for c in _plan(name)}
    for c in cmds.values():
        assert isinstance(c.argv, list) and all(isinstance(a, str) for a in c.argv) and 0 < c.timeout_s <= 1800
    root = {p for p, c in cmds.items() if c.root}
    assert root == {"host/ipmitool-sdr-psu.txt", "host/ipmitool-sel.txt", "host/ipmitool-sel-info.txt", "host/dmidecode-bios.txt", "gpu/dcgmi-diag.txt",
                    "host/ipmitool-sdr-v.txt", "gpu/fabricmanager-log.txt"}
    assert cmds["host/ipmitool-sdr-psu.txt"].argv == ["ipmitool", "sdr", "type", "Power Supply"]
    assert cmds["host/ipmitool-sdr-v.txt"].argv == ["ipmitool", "sdr", "-v"]
    fm = cmds["gpu/fabricmanager-log.txt"]
    assert fm.argv[:2] == ["sh", "-c"] and "/var/log/fabricmanager.log" in fm.argv[2] and fm.phase == PHASE_AFTER
    assert cmds["gpu/nvml.json"].phase == PHASE_INFO and cmds["gpu/nvml-after.json"].phase == PHASE_AFTER
    assert cmds["gpu/power-trace.csv"].phase == PHASE_LOAD and cmds["gpu/power-trace.csv"].output == "files-json"


def test_power_step_shape_from_profile_and_suite_params():
    (c,) = _plan("power.step")
    assert c.argv == ["python3", "-", "power-step", "--period", "4.0", "--duration", "60.0", "--hz", "20.0"]
    assert c.timeout_s >= 60 + 60 and c.stdin == node_script()
    (c,) = _plan("power.step", {"step_duration_s": 30, "sample_hz": 50})
    assert c.argv == ["python3", "-", "power-step", "--period", "4.0", "--duration", "30.0", "--hz", "50.0"]
    (d,) = _plan("gpu.dcgmi_diag", {"run_level": 3})
    assert d.argv == ["dcgmi", "diag", "-r", "3"] and d.timeout_s > 1200


def test_node_script_is_the_backend_module_plus_the_node_main_and_compiles_for_old_pythons():
    src = node_script().decode()
    backend = Path(nvml_backend.__file__).read_text()
    assert src.startswith(backend)                      # the NVML code is not copied by hand
    tree = ast.parse(src, feature_version=(3, 8))       # nodes may run Ubuntu 20.04's python3.8
    futures = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    assert len(futures) == 1 and tree.body.index(futures[0]) <= 1
    imports = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imports |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imports <= {"__future__", "argparse", "json", "os", "sys", "threading", "time", "random", "typing",
                       "shutil", "signal", "subprocess", "array", "base64", "csv", "math", "zlib",   # trace columns
                       "ctypes", "pynvml", "torch", "clusterkit"}, imports
