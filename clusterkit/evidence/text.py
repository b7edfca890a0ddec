"""Clean-up shared by every parser: what real pasted output carries."""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")


def clean(text: str) -> str:
    """Strip ANSI colour codes and carriage returns; keep everything else."""
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


def strip_source_header(text: str) -> str:
    """Drop the `# source:` / `# what:` header lines of shared/real-outputs files."""
    lines = text.split("\n")
    i = 0
    while i < len(lines) and (lines[i].startswith("# source:") or lines[i].startswith("# what:")):
        i += 1
    return "\n".join(lines[i:])
