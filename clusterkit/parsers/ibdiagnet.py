"""`ibdiagnet` console output -> its stage summary: errors and warnings per stage.

ibdiagnet 1.x ends with a `Stages Status Report` table (columns Errors, Warnings):

    -I- Stages Status Report:
        STAGE                                    Errors Warnings
        Bad GUIDs/LIDs Check                     0      0
        IPoIB Subnets Check                      0      1

ibdiagnet 2.x ends with a `Summary` table (columns Warnings, Errors, Comment):

    Summary
    -I- Stage                     Warnings   Errors     Comment
    -I- Discovery                 3          0
    -I- Port Counters             0          2

Stage sections print `-W-` / `-E-` lines under a title; those of a stage are kept with it.
Column order is read from the header, never assumed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import normalize
from clusterkit.parsers import ParseError

_RULE = re.compile(r"^\s*(?:-I-)?-{5,}\s*$")
_TAG = re.compile(r"^\s*-([IWE])-\s?")
_LOG = re.compile(r"(?:Please see|detailed errors/warnings in:?)\s+(\S+)", re.I)
MESSAGES_KEPT = 5   # per stage


@dataclass
class DiagStage:
    name: str
    errors: int
    warnings: int
    comment: str = ""
    messages: list[str] = field(default_factory=list)   # the stage section's -E- / -W- lines


@dataclass
class IbdiagnetReport:
    stages: list[DiagStage]
    log: str | None = None                               # where ibdiagnet wrote the details


IBDIAGNET = declare("ibdiagnet", "fabric/ibdiagnet.txt", command=("ibdiagnet",), priority=60,
                    description="ibdiagnet (fabric diagnostic: errors and warnings per stage)")


@IBDIAGNET.recognizer
def is_ibdiagnet(text: str) -> bool:
    return "Stages Status Report" in text or bool(
        re.search(r"^[ \t]*(?:-I-[ \t]+)?Stage[ \t]+Warnings[ \t]+Errors\b", text, re.M | re.I))


def _untag(line: str) -> str:
    return _TAG.sub("", line, count=1).strip()


def _header_order(line: str) -> tuple[int, int] | None:
    """Column positions (errors, warnings) among the numbers of a stage row, from the header."""
    words = [w.lower().rstrip(":") for w in _untag(line).split()]
    if not words or words[0] != "stage" or "errors" not in words or "warnings" not in words:
        return None
    return (0, 1) if words.index("errors") < words.index("warnings") else (1, 0)


def _row(line: str, order: tuple[int, int]) -> DiagStage | None:
    """`Port Counters  0  2  comment` -> a stage (split on whitespace: linear on any line)."""
    words = _untag(line).split()
    for i in range(1, len(words) - 1):
        if words[i].isdigit() and words[i + 1].isdigit():
            nums = (int(words[i]), int(words[i + 1]))
            return DiagStage(" ".join(words[:i]), nums[order[0]], nums[order[1]], " ".join(words[i + 2:]))
    return None


def _sections(lines: list[str]) -> dict[str, list[str]]:
    """Section title (lower case) -> its -E- / -W- lines. A title follows a rule line; 1.x
    closes it with a second rule, after which content (not another title) starts."""
    out: dict[str, list[str]] = {}
    title = ""
    after_rule = just_titled = False
    for ln in lines:
        if _RULE.match(ln):
            after_rule, just_titled = not just_titled, False
            continue
        tag = _TAG.match(ln)
        just_titled = False
        if after_rule and ln.strip() and (tag is None or tag.group(1) == "I"):
            title, just_titled = _untag(ln).rstrip(":").lower(), True
        if ln.strip():
            after_rule = False
        if tag and tag.group(1) in "EW":
            out.setdefault(title, []).append(ln.strip())
    return out


@IBDIAGNET.parser
def parse_ibdiagnet(text: str) -> IbdiagnetReport:
    lines = normalize(text).split("\n")
    stages: list[DiagStage] = []
    order: tuple[int, int] | None = None
    for ln in lines:
        if order is None:
            order = _header_order(ln)
            continue
        if not ln.strip():
            if stages:
                break
            continue
        row = _row(ln, order)
        if row is None:
            break
        stages.append(row)
    if not stages:
        raise ParseError("no stage summary table (`Stages Status Report` or `Summary`) in the ibdiagnet output: "
                         "the run was cut before it ended, or this is not ibdiagnet's console output")
    sections = _sections(lines)
    for st in stages:
        st.messages = sections.get(st.name.lower(), [])[:MESSAGES_KEPT]
    log = next((m.group(1) for ln in lines if (m := _LOG.search(ln))), None)
    return IbdiagnetReport(stages, log)
