"""Normalization: what a user pasted -> the tool's own lines.

Runs before every recognizer and parser. Real pastes come wrapped: ANSI colours and
CRLF, markdown fences and `> ` quoting, shell prompt lines, pdsh/clush host prefixes,
srun rank prefixes, kubectl/containerd/docker log prefixes, and every timestamp
format of dmesg, journalctl and syslog. Each layer is stripped here, once, so a
parser sees the lines the tool printed; what a layer said (the time, the host, the
logging program) is kept on the `Line`.

Layers that could be mistaken for content (quoting, host and rank prefixes, kubectl
`[pod/...]` prefixes, common indentation) are decided per document: most lines must
carry them. Timestamp layers are decided per line, by formats no tool output starts
with. Normalizing already normalized text changes nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

from clusterkit.evidence.text import clean

MAX_LINE_CHARS = 8192   # longer lines are matched on their start only (their text is kept whole)


@dataclass(frozen=True)
class Line:
    text: str                      # the tool's own line
    raw: str                       # the line as given (ANSI and CR removed)
    lineno: int                    # 1-based, in the given text
    host: str | None = None        # from a pdsh/clush prefix or block
    seconds: float | None = None   # seconds since boot, from a dmesg-style stamp
    wall: str | None = None        # wall-clock stamp as printed
    source: str | None = None      # the logging program (kernel, nv-fabricmanager...) when a prefix named it
    stamped: bool = False          # a log prefix was stripped from this line


# ---- document-level layers --------------------------------------------------------------

_FENCE = re.compile(r"^\s*(?:```|~~~)[\w+.-]*\s*$")
_QUOTE = re.compile(r"^\s{0,3}> ?")
# Shell prompts followed by a command (the command is kept as a hint, the line dropped).
_PROMPTS = [
    re.compile(r"^\s*(?:\([\w.-]+\)\s*)?[\w.-]+@[\w.-]+(?::[^\s#$%]*)?\s*[#$%]\s?(?P<cmd>.*)$"),  # user@host:~$ cmd
    re.compile(r"^\s*\[[\w.-]+@[\w.-]+(?:\s+[^\]]*)?\]\s*[#$%]\s?(?P<cmd>.*)$"),                 # [root@node ~]# cmd
    re.compile(r"^\s*(?:sh|bash|zsh)-\d+(?:\.\d+)*[#$]\s?(?P<cmd>.*)$"),                          # bash-4.2# cmd
    re.compile(r"^\s*\$\s+(?P<cmd>\S.*)$"),                                                      # $ cmd
    re.compile(r"^\s*\$\s*(?P<cmd>)$"),                                                          # a bare $ prompt
]
_HOST_PREFIX = re.compile(r"^(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?):(?: (?P<rest>.*))?$")
# Words at a line start that are kernel subsystems, drivers or interfaces, not hosts.
_NOT_HOSTS = re.compile(
    r"^(?:kernel|NVRM|nvidia(?:-\S*)?|nv\S*|mlx\d\S*|mlx5_core|ib\d*|mlx|eth\d*|en[ops]\S*|bond\d*|veth\S*|docker\d*|"
    r"pcieport|pci|ACPI|EDAC|mce|usb\d*|sd[a-z]*|nvme\d*\S*|ata\d*|scsi\d*|xhci\S*|systemd\S*|audit|IPv[46]|"
    r"CA|Switch|Port\d*|Warning|Error|Note|INFO|WARN|ERROR|DEBUG|http|https|\d+)$", re.I)
_RANK = re.compile(r"^\s*(?P<rank>\d{1,5}): ?(?P<rest>.*)$")
_KUBE_PREFIX = re.compile(r"^\[(?:pod/)?[\w.-]+/[\w.-]+(?:/[\w.-]+)?\] (?P<rest>.*)$")
_CLUSH_RULE = re.compile(r"^-{6,}\s*$")
_CLUSH_LABEL = re.compile(r"^(?P<nodes>[\w.,\[\]-]+)(?:\s+\(\d+\))?\s*$")
_NODESET = re.compile(r"^(?P<pre>[\w.-]*)\[(?P<ranges>[\d,-]+)\](?P<post>[\w.-]*)$")


def _majority(lines: list[str], pattern: re.Pattern[str], share: float = 0.6) -> bool:
    body = [l for l in lines if l.strip()]
    return len(body) >= 2 and sum(1 for l in body if pattern.match(l[:MAX_LINE_CHARS])) >= share * len(body)


def _strip_quotes(lines: list[str]) -> list[str]:
    for _ in range(4):   # nested quoting: '> > '
        if not _majority(lines, _QUOTE, 0.6):
            break
        lines = [_QUOTE.sub("", l, count=1) for l in lines]
    return lines


def prompt_command(line: str) -> str | None:
    """The command of a shell prompt line ('' for a bare prompt), None if it is no prompt line."""
    for p in _PROMPTS:
        m = p.match(line[:MAX_LINE_CHARS])
        if m:
            return m.group("cmd").strip()
    return None


def expand_nodeset(label: str) -> list[str]:
    """clush/pdsh node sets: 'gpu[01-03,07],cpu1' -> gpu01 gpu02 gpu03 gpu07 cpu1."""
    out: list[str] = []
    for part in re.split(r",(?![^\[]*\])", label):
        m = _NODESET.match(part)
        if not m:
            out.append(part)
            continue
        for r in m["ranges"].split(","):
            lo, _, hi = r.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()) or (hi and int(hi) - int(lo) > 4096):
                out.append(part)
                break
            for i in range(int(lo), int(hi or lo) + 1):
                out.append(f"{m['pre']}{str(i).zfill(len(lo))}{m['post']}")
    return out


def _clush_blocks(lines: list[tuple[int, str]]) -> list[tuple[str, list[tuple[int, str]]]] | None:
    """`clush -b` output: a rule, a node set label, a rule, then that group's lines."""
    heads = [i for i in range(len(lines) - 2)
             if _CLUSH_RULE.match(lines[i][1]) and _CLUSH_LABEL.match(lines[i + 1][1].strip())
             and _CLUSH_RULE.match(lines[i + 2][1])]
    if not heads or any(l.strip() for _, l in lines[:heads[0]]):
        return None
    blocks = []
    for k, h in enumerate(heads):
        end = heads[k + 1] if k + 1 < len(heads) else len(lines)
        blocks.append((lines[h + 1][1].strip().split()[0], lines[h + 3:end]))
    return blocks


def _pdsh_hosts(lines: list[tuple[int, str]]) -> dict[int, tuple[str, str]] | None:
    """pdsh / `clush` (not -b) prefixes: most lines start `host: `, from few hosts."""
    body = [(n, l) for n, l in lines if l.strip()]
    if len(body) < 2:
        return None
    hits: dict[int, tuple[str, str]] = {}
    for n, l in body:
        m = _HOST_PREFIX.match(l[:MAX_LINE_CHARS])
        if m and not _NOT_HOSTS.match(m["host"]):
            hits[n] = (m["host"], l[m.end("host") + 2:] if m["rest"] is not None else "")
    hosts = {h for h, _ in hits.values()}
    if len(hits) < 0.8 * len(body) or len(hosts) > max(1, len(body) // 3):
        return None
    return hits


# ---- line-level layers: log prefixes ----------------------------------------------------

_MON = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_ISO_TS = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"
_FACILITY = r"(?:kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local[0-7])"
_LEVEL = r"(?:emerg|alert|crit|err|error|warn|warning|notice|info|debug)"
_PROG = r"(?P<src>[A-Za-z_][\w./-]*)(?:\[\d+\])?"

_DOCKER_JSON = re.compile(r'^\{"log":')
_CRI = re.compile(r"^(?P<wall>" + _ISO_TS + r") (?:stdout|stderr) [FP] ?(?P<rest>.*)$")
_RFC5424 = re.compile(r"^<\d{1,3}>1 (?P<wall>\S+) (?P<host>\S+) (?P<src>\S+) \S+ \S+ (?:-|\[.*?\]) ?(?P<rest>.*)$")
_PRI = re.compile(r"^<\d{1,3}>(?P<rest>.*)$")
_KMSG = re.compile(r"^\d+,\d+,(?P<usec>\d+),[^;]*;(?P<rest>.*)$")                 # /dev/kmsg records
# Talos and similar: 'kern: warning: [2025-01-17T15:36:57.683113Z]: msg'
_FAC_LVL_BRACKET = re.compile(r"^" + _FACILITY + r": *" + _LEVEL + r": *\[(?P<wall>[^\]]+)\]: ?(?P<rest>.*)$")
# dmesg --decode / -x: 'kern  :warn  : ' before the stamp
_DECODE = re.compile(r"^" + _FACILITY + r"\s*:\s*" + _LEVEL + r"\s*:\s?(?P<rest>.*)$")
_DMESG_SEC = re.compile(r"^\s*\[\s*(?P<sec>\d+\.\d+)(?:\s*<\s*[\d.]+>)?\]\s?(?P<rest>.*)$")
_DMESG_DELTA = re.compile(r"^\s*\[\s*[+<]\s*\d+\.\d+>?\]\s?(?P<rest>.*)$")
_DMESG_CTIME = re.compile(r"^\s*\[(?P<wall>" + _DAY + r" " + _MON + r"\s+\d+ \d\d:\d\d:\d\d \d{4})\]\s?(?P<rest>.*)$")
_DMESG_RELTIME = re.compile(r"^\s*\[(?P<wall>" + _MON + r"\s?\d+ \d\d:\d\d(?::\d\d)?)\]\s?(?P<rest>.*)$")
_SYSLOG = re.compile(r"^(?P<wall>(?:" + _DAY + r" )?" + _MON + r"\s+\d+ \d\d:\d\d:\d\d(?:\.\d+)?(?: \d{4})?)\s+"
                     r"(?P<host>[\w.:-]+)\s+" + _PROG + r":(?: (?P<rest>.*))?$")
_ISO_HOST_PROG = re.compile(r"^(?P<wall>" + _ISO_TS + r")\s+(?P<host>[\w.:-]+)\s+" + _PROG + r":(?: (?P<rest>.*))?$")
_ISO_BARE = re.compile(r"^(?P<wall>" + _ISO_TS + r")\s+(?P<rest>.*)$")
_BARE_KERNEL = re.compile(r"^kernel: ?(?P<rest>.*)$")
# after a monotonic stamp (journalctl -o short-monotonic): 'host kernel: msg'
_HOST_KERNEL = re.compile(r"^(?P<host>[\w.-]+) (?P<src>kernel|[A-Za-z_][\w.-]*\[\d+\]): (?P<rest>.*)$")


def _strip_log_prefixes(line: Line) -> Line:
    """Peel log prefixes off one line, outermost first, recording what they said."""
    text, seconds, wall, source, stamped = line.text, line.seconds, line.wall, line.source, line.stamped
    for _ in range(6):
        head = text[:MAX_LINE_CHARS]
        rest = None
        if _DOCKER_JSON.match(head):
            try:
                doc = json.loads(text)
                rest, wall = str(doc.get("log", "")).rstrip("\n"), str(doc.get("time") or wall or "") or None
            except (ValueError, AttributeError):
                rest = None
        if rest is None and (m := _CRI.match(head) or _FAC_LVL_BRACKET.match(head)):
            rest, wall = m["rest"], m["wall"]
        if rest is None and (m := _RFC5424.match(head)):
            rest, wall, source = m["rest"], m["wall"], m["src"]
        if rest is None and (m := _KMSG.match(head)):
            rest, seconds = m["rest"], int(m["usec"]) / 1e6
        if rest is None and (m := _PRI.match(head)):
            rest = m["rest"]
        if rest is None and (m := _DECODE.match(head)):
            rest = m["rest"]
        if rest is None and (m := _DMESG_SEC.match(head)):
            rest, seconds = m["rest"], float(m["sec"])
            if (h := _HOST_KERNEL.match(rest[:MAX_LINE_CHARS])):
                rest, source = h["rest"], h["src"].split("[")[0]
        if rest is None and (m := _DMESG_CTIME.match(head) or _DMESG_RELTIME.match(head)):
            rest, wall = m["rest"], m["wall"]
        if rest is None and (m := _DMESG_DELTA.match(head)):
            rest = m["rest"]
        if rest is None and (m := _SYSLOG.match(head) or _ISO_HOST_PROG.match(head)):
            rest, wall, source = m["rest"] or "", m["wall"], m["src"]
        if rest is None and (m := _ISO_BARE.match(head)):
            rest, wall = m["rest"], m["wall"]
        if rest is None and (m := _BARE_KERNEL.match(head)):
            rest, source = m["rest"], "kernel"
        if rest is None:
            break
        text, stamped = rest + text[len(head):] if len(text) > MAX_LINE_CHARS else rest, True
    if not stamped:
        return line
    return replace(line, text=text, seconds=seconds, wall=wall, source=source or line.source, stamped=True)


def _dedent(lines: list[Line]) -> list[Line]:
    body = [l.text for l in lines if l.text.strip()]
    if not body:
        return lines
    first = body[0]
    common = first[:len(first) - len(first.lstrip(" \t"))]
    for t in body[1:]:
        while common and not t.startswith(common):
            common = common[:-1]
        if not common:
            return lines
    return [replace(l, text=l.text[len(common):]) if l.text.startswith(common) else l for l in lines]


# ---- the whole step -----------------------------------------------------------------------


@dataclass
class Document:
    """A normalized paste: its lines, the commands its prompts showed, and its hosts."""

    lines: list[Line]
    commands: list[str]

    @property
    def text(self) -> str:
        return "\n".join(l.text for l in self.lines)

    @property
    def hosts(self) -> list[str | None]:
        seen: dict[str | None, None] = {}
        for l in self.lines:
            seen.setdefault(l.host, None)
        return list(seen) or [None]

    def for_host(self, host: str | None) -> "Document":
        return Document([l for l in self.lines if l.host == host], self.commands)

    @property
    def stamped_share(self) -> float:
        body = [l for l in self.lines if l.text.strip()]
        return sum(l.stamped for l in body) / len(body) if body else 0.0


def normalize_document(text: str) -> Document:
    raw_lines = clean(text).lstrip("\ufeff").split("\n")
    lines = [l.rstrip() for l in raw_lines]
    lines = _strip_quotes(lines)
    lines = [("" if _FENCE.match(l) else l) for l in lines]
    commands: list[str] = []
    numbered: list[tuple[int, str]] = []
    for n, l in enumerate(lines, 1):
        cmd = prompt_command(l)
        if cmd is None:
            numbered.append((n, l))
        elif cmd:
            commands.append(cmd)
    # hosts: clush -b blocks, else pdsh prefixes
    hosted: list[tuple[int, str, str | None]] = []
    blocks = _clush_blocks(numbered)
    if blocks:
        for label, block in blocks:
            for host in expand_nodeset(label):
                hosted.extend((n, l, host) for n, l in block)
    else:
        pdsh = _pdsh_hosts(numbered)
        for n, l in numbered:
            if pdsh is not None and n in pdsh:
                hosted.append((n, pdsh[n][1], pdsh[n][0]))
            else:
                hosted.append((n, l, None))
    out: list[Line] = []
    by_host: dict[str | None, list[Line]] = {}
    for n, l, h in hosted:
        by_host.setdefault(h, []).append(Line(l, raw_lines[n - 1].rstrip("\r"), n, h))
    for h, hl in by_host.items():
        texts = [l.text for l in hl]
        for pattern in (_RANK, _KUBE_PREFIX):
            if _majority(texts, pattern, 0.8):
                hl = [replace(l, text=m["rest"]) if (m := pattern.match(l.text[:MAX_LINE_CHARS])) else l for l in hl]
                texts = [l.text for l in hl]
        hl = [_strip_log_prefixes(l) for l in hl]
        out.extend(_dedent(hl))
    out.sort(key=lambda l: l.lineno)
    # a pdsh host's empty trailing lines and leading blanks carry nothing
    while out and not out[-1].text.strip():
        out.pop()
    while out and not out[0].text.strip():
        out.pop(0)
    return Document(out, commands)


def normalize_lines(text: str) -> list[Line]:
    return normalize_document(text).lines


def normalize(text: str) -> str:
    """The tool's own lines of a paste (see the module docstring); idempotent."""
    return normalize_document(text).text
