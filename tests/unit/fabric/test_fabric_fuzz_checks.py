"""Damaged RoCE/IB fabric evidence never crashes a fabric check (hypothesis)."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from clusterkit.evidence.bundle import Bundle, BundleWriter
from clusterkit.sim.fabric import generate
from clusterkit.sim.registry import SimNode
from tests.fabric_helpers import analyze


def _files(tmp: Path) -> dict[str, str]:
    spec = {"ib_devices": ["mlx5_0", "mlx5_1"], "ib_rate_gbps": 400}
    node = SimNode("f", 0, spec, ["fabric.dirty_fiber"], random.Random(1))
    w = BundleWriter(tmp / "ib", "f", simulated=True, declared=spec)
    generate(node, w)
    rspec = {"roce_interfaces": ["ens1np0"], "roce_rate_gbps": 200}
    rnode = SimNode("r", 1, rspec, ["fabric.flapping_link"], random.Random(2))
    generate(rnode, BundleWriter(tmp / "roce", "r", simulated=True, declared=rspec))
    out = {}
    for d in (tmp / "ib", tmp / "roce"):
        out.update({p.relative_to(d).as_posix(): p.read_text() for p in d.rglob("*") if p.is_file()})
    return out


FILES = _files(Path(__import__("tempfile").mkdtemp()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(sorted(FILES)), cut=st.integers(0, 5000), junk=st.text(max_size=30))
def test_damaged_fabric_file_never_crashes_a_check(path, cut, junk):
    files = dict(FILES)
    files[path] = files[path][:cut] + junk + files[path][cut + len(junk):]
    run = analyze([Bundle.virtual("f", files, {"host": "f", "declared": {}})])
    for c in run.nodes[0].checks + run.cluster_checks:
        assert not any(f.code == "CHECK_CRASHED" for f in c.findings), c.findings[0].message
