"""Text from evidence, made safe for a terminal and for XML.

Bundles come from nodes and from other people: a host name, a mount point or a tool's
message may hold ANSI escape sequences (which would recolour, move or retitle the
reader's terminal), other control characters, or Rich markup (`/data[/x]`). Reports
show such text literally: escape sequences removed, other control characters written
as `\\xNN`, markup never interpreted (render/table.py prints through `Text`).
"""

from __future__ import annotations

import re

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), and two-character escapes
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# what XML 1.0 cannot hold at all, even escaped
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _hex(m: re.Match[str]) -> str:
    return f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}"


def terminal_text(value: object) -> str:
    """`value` as text a terminal shows literally (newlines and tabs kept)."""
    return _CONTROL.sub(_hex, _ANSI.sub("", str(value)))


def xml_text(value: object) -> str:
    """`value` as text XML 1.0 can hold (ElementTree escapes the rest)."""
    return _NOT_XML.sub(_hex, str(value))
