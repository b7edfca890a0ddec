"""`dcgmi diag` result tables (DCGM 2.x/3.x box layout).

Rows are `| name | result |`; a row with an empty name continues the cell
above (DCGM wraps text at the column width, mid-word), unless it starts a result
of its own (`| GPU Memory | Pass - GPUs: 1, 2 |` then `|  | Fail - GPU: 0 |`: two
results of one test, neither dropped); `Warning`/`Info` rows belong to the test
above them; an `Error` row fails its section (DCGM 2's deployment errors);
`|-----  Hardware  ---|` lines name the section. A section pasted without the
table's header rows is read the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import normalize
from clusterkit.parsers import ParseError

_ROW = re.compile(r"^\s*\|\s(.*?)\s*\|\s?(.*?)\|?\s*$")     # the closing '|' may be cut off in a paste
_SECTION = re.compile(r"^\s*[|+]-+\s+([A-Za-z][A-Za-z ]*?)\s+-+[+|]")
_RESULT = re.compile(r"^(Pass|Fail|Skip|Warn|Warning|Not Run)\b\s*(?:-\s*(.*))?$", re.I)
_RESULT_START = re.compile(r"^\s*(?:Pass|Fail|Skip|Warn)\s+-\s+(?:All|GPUs?:)")
_GPU_IN_TEXT = re.compile(r"\bGPU\s*(\d+)\b")
_GPU_ROW = re.compile(r"^\s*GPU(\d+):\s*(Pass|Fail|Skip|Warn)\b", re.I)   # DCGM 4: one row per GPU under a test


@dataclass
class DiagTest:
    section: str
    name: str
    result: str            # pass | fail | skip | warn
    scope: str             # "All", "GPU: 0,1", ""
    warnings: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)
    gpu_results: dict[int, str] = field(default_factory=dict)   # DCGM 4's per-GPU rows

    @property
    def internal_error_only(self) -> bool:
        """Failed because DCGM's own test process broke, with every GPU that has a row passing."""
        return (self.result == "fail" and bool(self.warnings)
                and all("internal error during the test" in w for w in self.warnings)
                and all(r == "pass" for r in self.gpu_results.values()))


@dataclass
class DcgmDiag:
    metadata: dict[str, str] = field(default_factory=dict)
    tests: list[DiagTest] = field(default_factory=list)
    cut_at: str | None = None       # the output ends on this section's header: its results are not in the text

    @property
    def failed(self) -> list[DiagTest]:
        return [t for t in self.tests if t.result == "fail"]

    @property
    def device_ids(self) -> list[str]:
        raw = self.metadata.get("GPU Device IDs Detected", "")
        return [d.strip().lower() for d in raw.split(",") if d.strip()]


DCGMI_DIAG = declare("dcgmi-diag", "gpu/dcgmi-diag.txt", command=("dcgmi", "diag", "-r", "1"), priority=60, description="dcgmi diag -r N")


_SECTION_NAMES = re.compile(r"^\s*[|+]-{3,}\s+(?:Metadata|Deployment|Hardware|Integration|Stress|Performance)\s+-{3,}", re.M)
_RESULT_ROW = re.compile(r"^\s*\|[^|]*\|\s*(?:Pass|Fail|Skip|Warn)\s+-\s+(?:All|GPUs?:)", re.M)


@DCGMI_DIAG.recognizer
def is_dcgmi_diag(text: str) -> bool:
    return (bool(re.search(r"\|\s*Diagnostic\s*\|\s*Result\s*\|", text)) or "Successfully ran diagnostic" in text
            or bool(_SECTION_NAMES.search(text)) or bool(_RESULT_ROW.search(text)))


@DCGMI_DIAG.parser
def parse_dcgmi_diag(text: str) -> DcgmDiag:
    diag = DcgmDiag()
    section = ""
    cells: list[list[str]] = []    # [name, raw value chunks...] in order
    sections: list[str] = []
    for line in normalize(text).split("\n"):
        s = _SECTION.match(line)
        if s:
            section = s.group(1).strip()
            continue
        m = _ROW.match(line)
        if not m or set(m.group(0).strip()) <= set("|-+= "):
            continue
        name, value = m.group(1).strip(), m.group(2)
        if name == "Diagnostic" and value.strip() == "Result":
            continue
        if not name and (g := _GPU_ROW.match(value)):
            cells.append([f"GPU{g.group(1)}:", g.group(2)])
            sections.append(section)
            continue
        if not name and cells and not _RESULT_START.match(value):
            cells[-1].append(value.rstrip())
            continue
        if not name and cells:              # '|  | Fail - GPU: 0 |': another result of the test above
            name = cells[-1][0]
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
        if (g := re.fullmatch(r"GPU(\d+):", name)) and current is not None:
            current.gpu_results[int(g.group(1))] = value.lower()
            continue
        if name in ("Warning", "Info") and current is not None:
            (current.warnings if name == "Warning" else current.info).append(value)
            continue
        if name == "Error":
            if current is not None and current.result == "fail" and current.section == sec:
                current.warnings.append(value)
            else:   # DCGM 2: an error row fails its section ('| Error | GPU 3 has uncorrectable memory errors ...')
                gpus = sorted({int(g) for g in _GPU_IN_TEXT.findall(value)})
                scope = f"GPU: {', '.join(map(str, gpus))}" if gpus else ""
                current = DiagTest(sec, f"{sec or 'diagnostic'} error", "fail", scope, [value])
                diag.tests.append(current)
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
    last = next((l for l in reversed(normalize(text).split("\n")) if l.strip()), "")
    if (s := _SECTION.match(last)):
        diag.cut_at = s.group(1).strip()
    return diag
