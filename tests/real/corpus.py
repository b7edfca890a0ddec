"""The real-output corpus under tests/real/corpus/: files, their asserted verdicts, and what clusterkit says.

Each corpus file is a tool's output copied verbatim from a public source, preceded by `# key: value`
header lines (source, system, kind, wrapper, verdict, key, findings, excerpt). The verdict is what an
experienced SRE concludes from the text alone; `findings` lists the finding codes behind it (`-` for none).
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

REAL = Path(__file__).resolve().parent
CORPUS = REAL / "corpus"          # collected first; the parsers were written against these
HOLDOUT = REAL / "holdout"        # collected blind later, to measure how well unseen outputs are read
HOLDOUT2 = REAL / "holdout2"      # a second blind set, collected after the first one's fixes
HOLDOUT3 = REAL / "holdout3"      # a third blind set, collected after the merge of issues 17-19
HOLDOUT4 = REAL / "holdout4"      # a fourth blind set, collected after the fixes of the third
HEADER_KEYS = ("source", "system", "kind", "wrapper", "verdict", "key", "findings", "excerpt")
_HEADER = re.compile(r"^# (%s): ?(.*)$" % "|".join(HEADER_KEYS))


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    meta: dict[str, str]
    text: str                       # the output, header removed

    @property
    def id(self) -> str:
        sub = "" if self.path.parent.parent == CORPUS else f"{self.path.parent.parent.name}/"
        return f"{sub}{self.path.parent.name}/{self.path.name}"

    @property
    def verdict(self) -> str:
        return self.meta["verdict"].split()[0].lower()

    @property
    def codes(self) -> list[str]:
        """The header's codes under their current names (a header written before a merge keeps the earlier one)."""
        from clusterkit.codes import canonical

        raw = self.meta.get("findings", "-").strip()
        return [] if raw in ("-", "") else [canonical(c.strip()) for c in raw.split(",") if c.strip()]


def load(path: Path) -> CorpusFile:
    lines = path.read_text(errors="replace").split("\n")
    meta: dict[str, str] = {}
    i = 0
    while i < len(lines) and (m := _HEADER.match(lines[i])):
        meta[m.group(1)] = m.group(2).strip()
        i += 1
    return CorpusFile(path, meta, "\n".join(lines[i:]))


def corpus_files() -> list[CorpusFile]:
    return [load(p) for d in (CORPUS, HOLDOUT, HOLDOUT2, HOLDOUT3, HOLDOUT4) for p in sorted(d.glob("*/*.txt"))]


def verdict(text: str, name: str = "pasted.txt", suite: str = "full") -> tuple[str, set[str]]:
    """clusterkit's verdict on a paste: the worst node status, and every finding code it reported."""
    from clusterkit.pipeline import analyze_paths

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_text(text)
        run = analyze_paths([p], suite=suite)
    codes = {f.code for n in run.nodes for c in n.checks for f in c.findings}
    codes |= {f.code for c in run.cluster_checks for f in c.findings}
    return run.status, codes
