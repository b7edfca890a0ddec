"""Which GPU a NIC serves, from `nvidia-smi topo -m` (gpu/topo.txt).

A minimal reader of the NIC legend and the NIC rows only, kept apart so the GPU
family's full topo parser can replace it in one place (`nic_gpus`). Registers no
kind: gpu/topo.txt belongs to the GPU family.
"""

from __future__ import annotations

import re

from clusterkit.evidence.text import clean

# Closer first: the GPU(s) on the same PCIe switch as the NIC are the ones it serves.
_AFFINITY = ("PIX", "PXB", "PHB", "NODE", "SYS")
_LEGEND = re.compile(r"^\s*(NIC\d+):\s*(\S+)\s*$")


def nic_gpus(text: str) -> dict[str, list[str]]:
    """`mlx5_0` -> ["GPU0", "GPU1"] (the closest GPUs); {} when the text has no NIC legend."""
    lines = clean(text).split("\n")
    legend = {m.group(1): m.group(2) for m in (_LEGEND.match(ln) for ln in lines) if m}
    header: list[str] | None = None
    out: dict[str, list[str]] = {}
    for ln in lines:
        words = ln.split()
        if not words:
            continue
        if header is None and words[0].startswith("GPU0"):
            header = [w for w in words if re.fullmatch(r"(GPU|NIC)\d+", w)]
            continue
        if header is None or words[0] not in legend:
            continue
        cells = words[1:1 + len(header)]
        best: tuple[int, list[str]] | None = None
        for col, cell in zip(header, cells):
            if not col.startswith("GPU") or cell not in _AFFINITY:
                continue
            rank = _AFFINITY.index(cell)
            if best is None or rank < best[0]:
                best = (rank, [col])
            elif rank == best[0]:
                best[1].append(col)
        if best is not None and best[0] <= _AFFINITY.index("PHB"):
            out[legend[words[0]]] = best[1]
    return out
