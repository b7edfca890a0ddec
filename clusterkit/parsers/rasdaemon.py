"""rasdaemon's error database as `ras-mc-ctl --errors` (and `--summary`) prints it.

ras-mc-ctl (util/ras-mc-ctl.in, subs `errors` and `summary`) prints one section per table, either
"No <X> errors." or a header and one line per event:

    Memory controller events:
    72 2022-10-16 08:54:38 +0000 1 Corrected error(s): memory read error at CPU_SrcID#1_MC#1_Chan#1_DIMM#0 location: 3:1:0:-1, addr ...
    PCIe AER events:
    3 2024-01-02 10:00:00 +0000 0000:00:01.0 Corrected error: Receiver Error
    MCE events:
    1 2024-12-19 03:52:38 +0000 error: Corrected error, no action required., CPU 2, bank Unified Memory Controller (bank=17), mcg mcgstatus=0, mci CECC, ..., status=0x9c2040000000011b, ..., bank=0x00000011

and the summary's tab-indented counts ("Corrected on DIMM Label(s): 'X' location: 0:0:0:-1 errors: 5",
"5 Corrected errors: Receiver Error", "1 Corrected error, no action required. errors").
A machine check is judged from its status register's UC bit (as for mcelog's records), else from its words.
A paste may hold only event lines (a thread quoting some of them): their shape alone is recognized.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import MAX_LINE_CHARS, normalize
from clusterkit.parsers import ParseError
from clusterkit.parsers.mcelog import MceRecord

RAS_MC_CTL = declare("ras-mc-ctl", "host/ras_mc_ctl.txt", command=("ras-mc-ctl", "--errors"), priority=40,
                     description="rasdaemon's recorded hardware errors (ras-mc-ctl --errors / --summary)")

_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?: [+-]\d{4})?"
_TYPE = r"Corrected|Uncorrected|Fatal|Deferred|Info"
# id, time, count, type; then "<message> at <DIMM label> location: ..." (cut with str.find: linear)
_MC_EVENT = re.compile(r"^(\d+) (%s) (\d+) (%s) error\(s\): " % (_TIME, _TYPE))
_MC_SUMMARY = re.compile(r"^(%s) on DIMM Label\(s\): '([^']*)' location: \S+ errors: (\d+)\s*$" % _TYPE)
_AER_EVENT = re.compile(r"^(\d+) (%s) (\S+) (Corrected|Uncorrected \((?:Non-)?Fatal\)|Uncorrected) error: (.*)$" % _TIME)
_AER_SUMMARY = re.compile(r"^(\d+) (Corrected|Uncorrected \((?:Non-)?Fatal\)|Uncorrected) errors: (.*)$")
# an MCE event: "<id> <time or '..'> error: <message>, CPU ..., bank <name>, ... status=0x..."
_MCE_EVENT = re.compile(r"^(\d+) (%s|\.\.|\S+ \S+) error: (.*)$" % _TIME)
_MCE_SUMMARY = re.compile(r"^(\d+) (.*) errors\s*$")
_STATUS = re.compile(r"(?:^|, )status=0x([0-9a-fA-F]{1,16})(?:,|$)")
_BANK = re.compile(r", bank=0x([0-9a-fA-F]{1,8})(?:,|$)")
_CPU = re.compile(r", cpu=0x([0-9a-fA-F]{1,8})(?:,|$)")
_SOCKET = re.compile(r", socketid=0x([0-9a-fA-F]{1,8})(?:,|$)")
_HEADERS = ("Memory controller events:", "PCIe AER events:", "MCE events:", "Memory controller events summary:",
            "PCIe AER events summary:", "MCE records summary:")
_NO_ERRORS = re.compile(r"^No (Memory|PCIe AER|MCE|Extlog|ARM processor|devlink|disk|Memory failure) errors\.$")


@dataclass
class MemoryEvent:
    dimm: str                   # the DIMM label, or "location a:b:c:d" when rasdaemon knew no label
    kind: str                   # Corrected / Uncorrected / Fatal / Deferred / Info
    count: int
    message: str = ""


@dataclass
class AerEvent:
    device: str
    kind: str                   # Corrected / Uncorrected (Non-Fatal) / Uncorrected (Fatal)
    count: int
    message: str = ""

    @property
    def uncorrected(self) -> bool:
        return self.kind.startswith("Uncorrected")


@dataclass
class RasReport:
    memory: list[MemoryEvent] = field(default_factory=list)
    aer: list[AerEvent] = field(default_factory=list)
    mce: list[MceRecord] = field(default_factory=list)
    mce_counts: list[tuple[int, str]] = field(default_factory=list)   # the summary's (count, message)
    sections_clean: list[str] = field(default_factory=list)          # "No <X> errors." sections

    @property
    def events(self) -> int:
        return len(self.memory) + len(self.aer) + len(self.mce) + len(self.mce_counts)


def _mce_record(number: int, message: str) -> MceRecord:
    words = message.split(", ")
    r = MceRecord(number=number, decoded=[w for w in words if "=" not in w][:6], first_line=message[:200])
    if (st := _STATUS.search(message)):
        r.status = int(st.group(1), 16)
    if (b := _BANK.search(message)):
        r.bank = int(b.group(1), 16)
    if (c := _CPU.search(message)):
        r.cpu = int(c.group(1), 16)
    if (s := _SOCKET.search(message)):
        r.socket = int(s.group(1), 16)
    # rasdaemon's own words when the status is missing: "Corrected error, no action required." / "Uncorrected ..."
    if r.status is None:
        r.decoded.insert(0, "Uncorrected error" if re.match(r"(?i)(uncorrected|fatal)", message) else
                         "Corrected error" if re.match(r"(?i)corrected", message) else "")
    return r


def _lines(text: str) -> list[str]:
    return [l.strip()[:MAX_LINE_CHARS] for l in normalize(text).split("\n")]


@RAS_MC_CTL.recognizer
def is_ras_mc_ctl(text: str) -> bool:
    """A section header of ras-mc-ctl, two of its 'No <X> errors.' lines, or memory-controller event lines."""
    lines = [l.strip()[:300] for l in text.split("\n")[:5000]]
    if any(l in _HEADERS for l in lines):
        return True
    if sum(bool(_NO_ERRORS.match(l)) for l in lines) >= 2:
        return True
    return sum(bool(_MC_EVENT.match(l)) and " location: " in l for l in lines) >= 2


@RAS_MC_CTL.parser
def parse_ras_mc_ctl(text: str) -> RasReport:
    rep = RasReport()
    section = ""
    for line in _lines(text):
        if not line:
            continue
        if line in _HEADERS:
            section = line
            continue
        if (no := _NO_ERRORS.match(line)):
            rep.sections_clean.append(no.group(1))
            section = ""
            continue
        if (m := _MC_EVENT.match(line)) and (loc := line.find(" location: ", m.end())) >= 0:
            at = line.rfind(" at ", m.end(), loc)
            label = line[at + 4:loc].strip() if at >= 0 else ""
            msg = line[m.end():at if at >= 0 else loc]
            rep.memory.append(MemoryEvent(label or "(no DIMM label)", m.group(4), int(m.group(3)), msg))
        elif (m := _MC_SUMMARY.match(line)):
            rep.memory.append(MemoryEvent(m.group(2) or "(no DIMM label)", m.group(1), int(m.group(3))))
        elif (m := _AER_EVENT.match(line)):
            rep.aer.append(AerEvent(m.group(3), m.group(4), 1, m.group(5)))
        elif section.startswith("PCIe AER") and (m := _AER_SUMMARY.match(line)):
            rep.aer.append(AerEvent("(summary)", m.group(2), int(m.group(1)), m.group(3)))
        elif (m := _MCE_EVENT.match(line)) and (section == "MCE events:" or "status=0x" in line):
            rep.mce.append(_mce_record(int(m.group(1)), m.group(3)))
        elif section == "MCE records summary:" and (m := _MCE_SUMMARY.match(line)):
            rep.mce_counts.append((int(m.group(1)), m.group(2)))
    if not rep.events and not rep.sections_clean:
        raise ParseError("no ras-mc-ctl section ('No <X> errors.' or an events header) and no event line")
    return rep
