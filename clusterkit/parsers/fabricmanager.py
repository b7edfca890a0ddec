"""State of NVIDIA Fabric Manager on NVSwitch systems (`gpu/fabricmanager.txt`).

The probe prints `systemctl is-active nvidia-fabricmanager` and then
`nv-fabricmanager --version` ("Fabric Manager version is : 535.129.03").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import normalize
from clusterkit.parsers import ParseError

_STATES = ("active", "inactive", "failed", "activating", "deactivating", "unknown", "reloading")


@dataclass
class FabricManager:
    state: str | None       # systemd ActiveState; None when the unit is not installed
    version: str | None


FABRICMANAGER = declare("fabricmanager", "gpu/fabricmanager.txt", command=("sh", "-c", "systemctl is-active nvidia-fabricmanager; nv-fabricmanager --version"), priority=40, description="systemctl is-active nvidia-fabricmanager + nv-fabricmanager --version")


@FABRICMANAGER.recognizer
def is_fabricmanager(text: str) -> bool:
    return "Fabric Manager version" in text


@FABRICMANAGER.parser
def parse_fabricmanager(text: str) -> FabricManager:
    t = normalize(text)
    state = None
    for line in t.split("\n"):
        s = line.strip().lower()
        if s in _STATES:
            state = s
            break
    m = re.search(r"Fabric Manager version is\s*:\s*(\S+)", t)
    if state is None and m is None:
        raise ParseError("neither a systemd unit state nor 'Fabric Manager version is : X' found")
    return FabricManager(state, m.group(1) if m else None)
