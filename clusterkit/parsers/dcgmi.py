"""`dcgmi diag` result tables (DCGM 2.x/3.x box layout).

Rows are `| name | result |`; a row with an empty name continues the cell
above (DCGM wraps text at the column width, mid-word); `Warning`/`Info` rows
belong to the test above them; `|-----  Hardware  ---|` lines name the section.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clusterkit.evidence.kinds import kind
from clusterkit.evidence.text import clean
from clusterkit.parsers import ParseError

# Linear on any line: the lookahead checks the closing `|` once, and the first cell ends in a
# non-blank, so no blank run or `|` is retried for every candidate split.
_ROW = re.compile(r"^(?=.*\|\s*$)\s*\|\s((?:.*?\S)?)\s*\|\s(.*)\|\s*$")
_SECTION = re.compile(r"^\s*[|+]-+\s+([A-Za-z](?:[A-Za-z ]*[A-Za-z])?)\s+-+[+|]")
_RESULT = re.compile(r"^(Pass|Fail|Skip|Warn|Warning|Not Run)\b\s*(?:-\s*(.*))?$", re.I)


@dataclass
class DiagTest:
    section: str
    name: str
    result: str            # pass | fail | skip | warn
    scope: str             # "All", "GPU: 0,1", ""
    warnings: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)


@dataclass
class DcgmDiag:
    metadata: dict[str, str] = field(default_factory=dict)
    tests: list[DiagTest] = field(default_factory=list)

    @property
    def failed(self) -> list[DiagTest]:
        return [t for t in self.tests if t.result == "fail"]

    @property
    def device_ids(self) -> list[str]:
        raw = self.metadata.get("GPU Device IDs Detected", "")
        return [d.strip().lower() for d in raw.split(",") if d.strip()]


@kind("dcgmi-diag", path="gpu/dcgmi-diag.txt", priority=60, description="dcgmi diag -r N")
def is_dcgmi_diag(text: str) -> bool:
    return bool(re.search(r"\|\s*Diagnostic\s*\|\s*Result\s*\|", text)) or "Successfully ran diagnostic" in text


def parse_dcgmi_diag(text: str) -> DcgmDiag:
    diag = DcgmDiag()
    section = ""
    cells: list[list[str]] = []    # [name, raw value chunks...] in order
    sections: list[str] = []
    for line in clean(text).split("\n"):
        s = _SECTION.match(line)
        if s:
            section = s.group(1).strip()
            continue
        m = _ROW.match(line)
        if not m:
            continue
        name, value = m.group(1).strip(), m.group(2)
        if name == "Diagnostic" and value.strip() == "Result":
            continue
        if not name and cells:
            cells[-1].append(value.rstrip())
            continue
        cells.append([name, value.rstrip()])
        sections.append(section)
    if not cells:
        raise ParseError("no dcgmi diag result rows ('| test | Pass |'): not dcgmi diag output")
    # DCGM wraps at a fixed text width: a chunk that fills it was cut mid-word
    # (join as is); a shorter one ended at a space (join with a space).
    width = max(len(c) for cell in cells for c in cell[1:])
    current: DiagTest | None = None
    for (name, *chunks), sec in zip(cells, sections):
        value = "".join(c if len(c) >= width else c + " " for c in chunks)
        value = re.sub(r"\s+", " ", value).strip()
        if sec.lower() == "metadata":
            diag.metadata[name] = value
            continue
        if name in ("Warning", "Info") and current is not None:
            (current.warnings if name == "Warning" else current.info).append(value)
            continue
        r = _RESULT.match(value)
        if not r:
            continue
        res = r.group(1).lower()
        res = {"warning": "warn", "not run": "skip"}.get(res, res)
        current = DiagTest(sec, name, res, (r.group(2) or "").strip())
        diag.tests.append(current)
    if not diag.tests:
        raise ParseError("dcgmi diag table has no test results")
    return diag
