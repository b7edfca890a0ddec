"""`lspci -vvv` (with or without -nn / -D) of NVIDIA and Mellanox functions: PCIe link capability
against link status, and the AER / device status error bits.

Only what a technician acts on is kept per function: bus id, class, name, serial (VPD [SN]) and the
Device Serial Number, `LnkCap`/`LnkSta` speed and width (old lspci prints no '(ok)' /
'(downgraded)' notes, so the numbers are compared), and which UESta/CESta/DevSta bits are set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import normalize
from clusterkit.parsers import ParseError
from clusterkit.parsers.gpu_records import norm_bus_id

# One command for both vendors; -D prints the PCI domain, -nn the vendor:device ids.
LSPCI = declare("lspci-vvv", "host/lspci-vvv.txt",
                command=("sh", "-c", "lspci -vvv -nn -D -d 10de: ; lspci -vvv -nn -D -d 15b3:"), priority=60,
                description="lspci -vvv (NVIDIA and Mellanox functions: link state, AER status)")

_HEAD = re.compile(r"^((?:[0-9a-fA-F]{4,8}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])\s+([^:]+?):\s+(.*)$")
_SPEED = re.compile(r"Speed\s+([\d.]+)GT/s(?:\s*\((ok|downgraded)\))?", re.I)
_WIDTH = re.compile(r"Width\s+x(\d+)(?:\s*\((ok|downgraded)\))?", re.I)
_BITS = re.compile(r"([A-Za-z][\w]*)([+-])")
_VENDOR_ID = re.compile(r"\[(10de|15b3):[0-9a-f]{4}\]", re.I)


@dataclass
class PciFunction:
    bus_id: str
    cls: str                                   # '3D controller', 'Ethernet controller', 'Bridge'...
    description: str                           # 'NVIDIA Corporation Device 2330 (rev a1)'
    vendor: str | None = None                  # nvidia | mellanox | None (another vendor)
    serial: str | None = None                  # VPD [SN] (the board's serial)
    dsn: str | None = None                     # the Device Serial Number capability
    part: str | None = None                    # VPD [PN]
    driver: str | None = None
    cap_speed_gts: float | None = None
    cap_width: int | None = None
    sta_speed_gts: float | None = None
    sta_width: int | None = None
    aer: bool = False                          # an Advanced Error Reporting capability was read
    ue_status: list[str] = field(default_factory=list)     # UESta bits set
    ue_fatal: list[str] = field(default_factory=list)      # UESvrt bits set (those errors are fatal)
    ce_status: list[str] = field(default_factory=list)     # CESta bits set
    dev_status: list[str] = field(default_factory=list)    # DevSta error bits set
    access_denied: bool = False                # lspci ran without root: capabilities unreadable
    unresponsive: bool = False                 # config space reads all ones ('rev ff', 'Unknown header type 7f')

    @property
    def kind(self) -> str:
        c = self.cls.lower()
        if "3d controller" in c or "vga" in c or "display" in c:
            return "gpu"
        if "ethernet" in c or "infiniband" in c or "network" in c:
            return "nic"
        return "other"

    @property
    def short_name(self) -> str:
        """'ConnectX-7', 'H100 SXM5 80GB', 'NVIDIA Device 2330': the name on the part's label."""
        d = re.sub(r"\s*\(rev [0-9a-f]+\)\s*$", "", self.description, flags=re.I)
        d = re.sub(r"\s*\[[0-9a-f]{4}:[0-9a-f]{4}\]", "", d, flags=re.I)
        b = re.findall(r"\[([^\]]+)\]", d)
        if b:
            return b[-1]
        return re.sub(r"\b(Corporation|Technologies|Corp\.)\s*", "", d).strip()


@dataclass
class LspciReport:
    functions: list[PciFunction] = field(default_factory=list)

    @property
    def judged(self) -> list[PciFunction]:
        return [f for f in self.functions if f.vendor is not None]


@LSPCI.recognizer
def is_lspci_vvv(text: str) -> bool:
    lines = text.split("\n")
    return any(_HEAD.match(l) for l in lines[:400]) and bool(re.search(r"^\s+(LnkSta|LnkCap|Capabilities):", text, re.M))


def _vendor(description: str) -> str | None:
    m = _VENDOR_ID.search(description)
    if m:
        return "nvidia" if m.group(1).lower() == "10de" else "mellanox"
    d = description.lower()
    if d.startswith("nvidia"):
        return "nvidia"
    if d.startswith(("mellanox", "mellanox technologies")):
        return "mellanox"
    return None


def _set_bits(rest: str) -> list[str]:
    return [name for name, sign in _BITS.findall(rest) if sign == "+"]


def _field(f: PciFunction, key: str, rest: str) -> None:
    if key == "LnkCap":
        s, w = _SPEED.search(rest), _WIDTH.search(rest)
        f.cap_speed_gts = float(s.group(1)) if s else f.cap_speed_gts
        f.cap_width = int(w.group(1)) if w else f.cap_width
    elif key == "LnkSta":
        s, w = _SPEED.search(rest), _WIDTH.search(rest)
        f.sta_speed_gts = float(s.group(1)) if s else f.sta_speed_gts
        f.sta_width = int(w.group(1)) if w else f.sta_width
    elif key == "UESta":
        f.aer, f.ue_status = True, _set_bits(rest)
    elif key == "UESvrt":
        f.ue_fatal = _set_bits(rest)
    elif key == "CESta":
        f.aer, f.ce_status = True, _set_bits(rest)
    elif key == "DevSta":
        f.dev_status = [b for b in _set_bits(rest) if b in ("CorrErr", "NonFatalErr", "FatalErr", "UnsupReq")]
    elif key == "Kernel driver in use":
        f.driver = rest.strip()
    elif key == "[SN] Serial number":
        f.serial = rest.strip() or f.serial
    elif key == "[PN] Part number":
        f.part = rest.strip() or None


_KEY = re.compile(r"^\s+(LnkCap|LnkSta|UESta|UESvrt|CESta|DevSta|Kernel driver in use|\[SN\] Serial number|"
                  r"\[PN\] Part number):\s*(.*)$")
_DSN = re.compile(r"Device Serial Number\s+([0-9a-fA-F-]{8,})")


@LSPCI.parser
def parse_lspci(text: str) -> LspciReport:
    """`lspci -vvv` -> one PciFunction per device block. ParseError without any 'bus:dev.fn class: name' line."""
    rep = LspciReport()
    cur: PciFunction | None = None
    for line in normalize(text).split("\n"):
        h = _HEAD.match(line)
        if h and not line[:1].isspace():
            bus = norm_bus_id(h.group(1))
            cur = PciFunction(bus or h.group(1), re.sub(r"\s*\[[0-9a-f]{4}\]$", "", h.group(2).strip(), flags=re.I),
                              h.group(3).strip(), _vendor(h.group(3).strip()))
            cur.unresponsive = bool(re.search(r"\(rev ff\)", h.group(3), re.I))
            rep.functions.append(cur)
            continue
        if cur is None:
            continue
        if "<access denied>" in line:
            cur.access_denied = True
        if "Unknown header type 7f" in line:
            cur.unresponsive = True
        k = _KEY.match(line)
        if k:
            _field(cur, k.group(1), k.group(2))
            continue
        d = _DSN.search(line)
        if d:
            cur.dsn = d.group(1)
    if not rep.functions:
        raise ParseError("no PCI function line ('19:00.0 3D controller: NVIDIA Corporation ...'): not lspci output")
    return rep
