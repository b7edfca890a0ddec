"""mcelog's decoded machine-check records (/var/log/mcelog, or the daemon's syslog lines).

mcelog prints each record as a block (mcelog.c dump_mce, p4.c decode_mci):

    Hardware event. This is not a software error.
    MCE 0
    CPU 9 BANK 5
    MCG status:
    MCi status:
    Uncorrected error
    Processor context corrupt
    MCA: Internal unclassified error: 405
    STATUS fa00000000400405 MCGSTATUS 0

The STATUS register decides (bit 61 uncorrected, bit 57 processor context corrupt); the decoded
lines ("Uncorrected error" / "Corrected error", "Processor context corrupt") stand in when a paste
lost it. A paste may start inside a record: the lines before the first header are that record's tail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import MAX_LINE_CHARS, normalize
from clusterkit.parsers import ParseError

MCELOG = declare("mcelog", "host/mcelog.txt", command=("cat", "/var/log/mcelog"), priority=40,
                 description="mcelog's decoded machine-check records (/var/log/mcelog, journalctl -u mcelog)")

# the banner of a record: current mcelog, and the wording of versions before 2009
_HEADER = re.compile(r"^(?:Hardware event\. This is not a software error\.|HARDWARE ERROR\. This is \*NOT\* a software problem!)")
_MCE_NO = re.compile(r"^MCE (\d+)\s*$")
_CPU_BANK = re.compile(r"^CPU (\d+) BANK (\d+)\b")
_STATUS = re.compile(r"^STATUS ([0-9a-fA-F]{1,16}) MCGSTATUS ([0-9a-fA-F]{1,16})\b")
_SOCKET = re.compile(r"\bSOCKETID (\d+)\b")
_UC_BIT, _PCC_BIT = 1 << 61, 1 << 57


@dataclass
class MceRecord:
    number: int | None = None
    cpu: int | None = None
    bank: int | None = None
    socket: int | None = None
    status: int | None = None
    decoded: list[str] = field(default_factory=list)    # 'Uncorrected error', 'MCA: ...', 'Transaction: ...'
    first_line: str = ""

    @property
    def uncorrected(self) -> bool | None:
        """From the STATUS register's UC bit, else from mcelog's words; None when the record says neither."""
        if self.status is not None:
            return bool(self.status & _UC_BIT)
        if "Uncorrected error" in self.decoded:
            return True
        return False if "Corrected error" in self.decoded else None

    @property
    def context_corrupt(self) -> bool:
        return bool(self.status is not None and self.status & _PCC_BIT) or "Processor context corrupt" in self.decoded

    @property
    def what(self) -> str:
        """mcelog's decoding of the error ('MCA: Internal unclassified error: 405'), when it printed one."""
        return next((d for d in self.decoded if d.startswith("MCA: ")), "")

    @property
    def where(self) -> str:
        parts = [f"CPU {self.cpu}" if self.cpu is not None else "", f"bank {self.bank}" if self.bank is not None else "",
                 f"socket {self.socket}" if self.socket is not None else ""]
        return " ".join(p for p in parts if p) or "CPU (not named)"


def _empty(r: MceRecord) -> bool:
    return r.number is None and r.cpu is None and r.status is None and not r.decoded


@MCELOG.recognizer
def is_mcelog(text: str) -> bool:
    """mcelog's record banner, or its STATUS/MCGSTATUS line under 'MCi status:'."""
    lines = [l.strip()[:200] for l in text.split("\n")[:5000]]
    if any(_HEADER.match(l) for l in lines):
        return True
    return any(_STATUS.match(l) for l in lines) and "MCi status:" in lines


@MCELOG.parser
def parse_mcelog(text: str) -> list[MceRecord]:
    out: list[MceRecord] = []
    cur = MceRecord()
    for raw in normalize(text).split("\n"):
        line = raw.strip()[:MAX_LINE_CHARS]
        if not line:
            continue
        mce = _MCE_NO.match(line)
        if _HEADER.match(line) or (mce and cur.number is not None):
            if not _empty(cur):
                out.append(cur)
            cur = MceRecord(first_line=line)
        if mce:
            cur.number = int(mce.group(1))
        elif (cb := _CPU_BANK.match(line)):
            cur.cpu, cur.bank = int(cb.group(1)), int(cb.group(2))
        elif (st := _STATUS.match(line)):
            cur.status = int(st.group(1), 16)
        elif (so := _SOCKET.search(line)) and line.startswith("MCGCAP "):
            cur.socket = int(so.group(1))
        elif not _HEADER.match(line) and not line.startswith(("mcelog: ", "TIME ", "MISC ", "ADDR ", "MCGCAP ", "CPUID ",
                                                               "MCG status:", "MCi status:")):
            cur.decoded.append(line)
        cur.first_line = cur.first_line or line
    if not _empty(cur):
        out.append(cur)
    if not any(r.status is not None or r.uncorrected is not None for r in out):
        raise ParseError("no mcelog record with a STATUS line or an 'Uncorrected/Corrected error' line")
    return out
