"""Which GPU a NIC serves, from `nvidia-smi topo -m` (gpu/topo.txt).

Reads the matrix with the GPU family's parser (clusterkit/parsers/nvidia_smi.py
`parse_topo`); registers no kind: gpu/topo.txt belongs to the GPU family.
"""

from __future__ import annotations

from clusterkit.parsers import ParseError
from clusterkit.parsers.nvidia_smi import LINK_RANK, parse_topo


def nic_gpus(text: str) -> dict[str, list[str]]:
    """`mlx5_0` -> ["GPU0", "GPU1"] (the closest GPUs, at most PHB away); {} when the text has no NIC legend."""
    try:
        topo = parse_topo(text)
    except ParseError:
        return {}
    out: dict[str, list[str]] = {}
    for nic in topo.nics:
        if nic not in topo.nic_names:
            continue
        ranks = {g: LINK_RANK.get(topo.links.get((nic, g), ""), 9) for g in topo.gpus}
        best = min(ranks.values(), default=9)
        if best <= LINK_RANK["PHB"]:
            out[topo.nic_name(nic)] = [g for g in topo.gpus if ranks[g] == best]
    return out
