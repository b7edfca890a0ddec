"""Cost of the version-coherence check of `clusterkit inventory check` on a large inventory.

Prints the time to parse an N-host inventory with Ansible's own loader (what `ansible-inventory
--list` does too), the time of `coherence_problems` on top of it, and their ratio.

    python benchmarks/provision_coherence.py [N]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clusterkit.inventory import load_inventory  # noqa: E402
from clusterkit.versions import coherence_problems, load_table  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    half = n // 2
    with tempfile.TemporaryDirectory() as d:
        inv = Path(d) / "hosts.ini"
        inv.write_text(
            f"[a100]\na100-[0001:{half:04d}] gpu_model=a100-sxm4-80gb gpu_count=8 ib_rate_gbps=200\n"
            f"[h100]\nh100-[0001:{n - half:04d}] gpu_model=h100-sxm5-80gb gpu_count=8 ib_rate_gbps=400\n"
            "[gpu:children]\na100\nh100\n[gpu:vars]\nib_devices=mlx5_0,mlx5_1,mlx5_2,mlx5_3\n"
            "clusterkit_stack=r570-cuda12.8\n")
        load_table()
        t0 = time.perf_counter()
        inventory, _ = load_inventory(inv)
        t1 = time.perf_counter()
        problems = coherence_problems(inventory.hosts)
        t2 = time.perf_counter()
        t3 = time.perf_counter()
        subprocess.run(["ansible-inventory", "-i", str(inv), "--list"], capture_output=True, check=True)
        t4 = time.perf_counter()
    assert problems == [], problems
    print(f"hosts: {len(inventory.hosts)}")
    print(f"load_inventory (Ansible's parser, typed hosts): {1000 * (t1 - t0):.0f} ms")
    print(f"coherence_problems:                            {1000 * (t2 - t1):.1f} ms "
          f"({1e6 * (t2 - t1) / len(inventory.hosts):.1f} us/host)")
    print(f"ansible-inventory --list (subprocess):          {1000 * (t4 - t3):.0f} ms")
    print(f"ratio coherence / inventory load: {(t2 - t1) / (t1 - t0):.3f}")


if __name__ == "__main__":
    main()
