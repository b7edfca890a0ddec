"""NVLink state as the tools print it: `nvidia-smi nvlink -s` / `--status`, `nvidia-smi nvlink -e`
(error counters) and `dcgmi nvlink --link-status` (U/D/X/_ per link, GPUs and NVSwitches).

`nvidia-smi nvlink -s` lists every link a GPU has, `<inactive>` for a link that is down, or one
line "NVML: Unable to retrieve NVLink information as all links are inactive". A file holding both
-s and -e output is read into one report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import normalize
from clusterkit.parsers import ParseError
from clusterkit.parsers.gpu_records import NvLink
from clusterkit.parsers.nvidia_smi import integer, num


@dataclass
class NvlinkDevice:
    """One GPU's (or NVSwitch's) links."""

    index: int | None                  # GPU index (nvidia-smi, DCGM gpuId) or NVSwitch physicalId
    name: str | None = None
    uuid: str | None = None
    links: list[NvLink] = field(default_factory=list)
    all_inactive: bool = False         # NVML could not list the links because none is active
    disabled: list[int] = field(default_factory=list)    # dcgmi 'X'

    def link(self, n: int) -> NvLink:
        for lk in self.links:
            if lk.link == n:
                return lk
        lk = NvLink(n)
        self.links.append(lk)
        return lk


@dataclass
class NvlinkReport:
    source: str                        # nvidia-smi | dcgmi
    gpus: list[NvlinkDevice] = field(default_factory=list)
    switches: list[NvlinkDevice] = field(default_factory=list)
    elided: bool = False               # '[...]': some links not shown, so their number is not known


_GPU = re.compile(r"^GPU (\d+): (.*?)(?: \(UUID: (\S+?)\))?\s*$")
_LINK_RATE = re.compile(r"^\s*Link (\d+): (?:([\d.]+) GB/s|<inactive>)\s*$")
_LINK_ERR = re.compile(r"^\s*Link (\d+): (.+?) Errors?: (\S+)\s*$", re.I)
_ALL_INACTIVE = re.compile(r"all links are inactive", re.I)

NVLINK_STATUS = declare("nvidia-smi-nvlink-status", "gpu/nvlink-status.txt", command=("nvidia-smi", "nvlink", "-s"),
                        priority=62, description="nvidia-smi nvlink -s / --status (per-link rate or <inactive>)")
NVLINK_ERRORS = declare("nvidia-smi-nvlink-errors", "gpu/nvlink-errors.txt", command=("nvidia-smi", "nvlink", "-e"),
                        priority=63, description="nvidia-smi nvlink -e (replay, recovery, CRC error counters)")


@NVLINK_STATUS.recognizer
def is_nvlink_status(text: str) -> bool:
    lines = text.split("\n")
    return any(_GPU.match(l) for l in lines) and any(_LINK_RATE.match(l) or _ALL_INACTIVE.search(l) for l in lines)


@NVLINK_ERRORS.recognizer
def is_nvlink_errors(text: str) -> bool:
    lines = text.split("\n")
    return any(_GPU.match(l) for l in lines) and any(_LINK_ERR.match(l) for l in lines)


def _error_field(name: str) -> str:
    n = name.lower()
    if "replay" in n:
        return "replay_errors"
    if "recovery" in n:
        return "recovery_errors"
    if "crc" in n:
        return "crc_data_errors" if "data" in n else "crc_flit_errors"
    return "other_errors"


def parse_nvlink_smi(text: str) -> NvlinkReport:
    """`nvidia-smi nvlink -s` and/or `-e` -> NvlinkReport. ParseError without a 'GPU n:' line and its links."""
    rep = NvlinkReport("nvidia-smi")
    cur: NvlinkDevice | None = None
    for line in normalize(text).split("\n"):
        s = line.strip()
        if not s:
            continue
        m = _GPU.match(s)
        if m:
            idx = int(m.group(1))
            cur = next((g for g in rep.gpus if g.index == idx), None)
            if cur is None:
                cur = NvlinkDevice(idx, m.group(2).strip() or None, m.group(3))
                rep.gpus.append(cur)
            continue
        if cur is None:
            continue
        if s.startswith(("[...]", "...")):
            rep.elided = True
        elif _ALL_INACTIVE.search(s):
            cur.all_inactive = True
        elif (r := _LINK_RATE.match(s)):
            lk = cur.link(int(r.group(1)))
            lk.active = r.group(2) is not None
            lk.speed_gb_s = num(r.group(2)) if r.group(2) else None
        elif (e := _LINK_ERR.match(s)):
            lk = cur.link(int(e.group(1)))
            f = _error_field(e.group(2))
            v = integer(e.group(3))
            if v is not None:
                setattr(lk, f, (getattr(lk, f) or 0) + v)
    if not rep.gpus:
        raise ParseError("no 'GPU n: <name> (UUID: ...)' line: not nvidia-smi nvlink output")
    if not any(g.links or g.all_inactive for g in rep.gpus):
        raise ParseError("nvidia-smi nvlink output lists no link ('Link n: ...') for any GPU")
    return rep


NVLINK_STATUS.parser(parse_nvlink_smi)
NVLINK_ERRORS.parser(parse_nvlink_smi)


# ---------------------------------------------------------------- dcgmi nvlink --link-status

DCGMI_NVLINK = declare("dcgmi-nvlink-status", "gpu/dcgmi-nvlink-status.txt", command=("dcgmi", "nvlink", "--link-status"),
                       priority=62, description="dcgmi nvlink --link-status (U/D/X/_ per link)")
_DCGM_DEV = re.compile(r"^(gpuId|physicalId)\s+(\d+):\s*$")
_DCGM_STATES = re.compile(r"^[UDX_](?:\s+[UDX_])*$")


@DCGMI_NVLINK.recognizer
def is_dcgmi_nvlink(text: str) -> bool:
    return bool(re.search(r"NvLink Link Status", text)) or (
        bool(re.search(r"^\s*gpuId \d+:\s*$", text, re.M)) and bool(re.search(r"^\s*[UDX_](?: [UDX_])+\s*$", text, re.M)))


@DCGMI_NVLINK.parser
def parse_dcgmi_nvlink(text: str) -> NvlinkReport:
    """`dcgmi nvlink --link-status` -> NvlinkReport (U = up, D = down, X = disabled, _ = not supported)."""
    rep = NvlinkReport("dcgmi")
    states: list[tuple[NvlinkDevice, list[str]]] = []
    for line in normalize(text).split("\n"):
        s = line.strip()
        m = _DCGM_DEV.match(s)
        if m:
            dev = NvlinkDevice(int(m.group(2)), "NVSwitch" if m.group(1) == "physicalId" else None)
            (rep.gpus if m.group(1) == "gpuId" else rep.switches).append(dev)
            states.append((dev, []))
        elif states and _DCGM_STATES.match(s):
            states[-1][1].extend(s.split())     # one state per link, in link order (may wrap)
    for dev, st in states:
        for n, state in enumerate(st):
            if state == "X":
                dev.disabled.append(n)
            elif state in ("U", "D"):
                dev.link(n).active = state == "U"
    if not rep.gpus and not rep.switches:
        raise ParseError("no 'gpuId N:' with link states (U/D/X/_): not dcgmi nvlink --link-status output")
    return rep
