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

import bisect
import json
import re
from collections import Counter
from dataclasses import dataclass, field, replace

from clusterkit.evidence.text import clean

# Longer lines are matched (normalization, recognizers, log rules, Xid, link events) on their
# first MAX_LINE_CHARS characters only; their text is kept whole. The kernel prints at most
# 1,024 bytes per record and no tool a line near this, so no real line is cut; a hostile
# megabyte line costs no more than a real one.
MAX_LINE_CHARS = 8192


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
    via_iso: bool = False          # its innermost stamp was a bare ISO time (journal short-iso is decided per document)
    inner: str = ""                # the line without its document-level wrappers (host, rank), log prefix kept


# ---- document-level layers --------------------------------------------------------------

_FENCE = re.compile(r"^\s*(?:```|~~~)[\w+.-]*\s*$")
_QUOTE = re.compile(r"^\s{0,3}> ?")
# Tools whose command line users paste above their output (with or without a prompt).
_TOOLS = (r"(?:sudo\s+(?:-\S+\s+)*)?(?:\S*[/\\])?(?:nvidia-smi(?:\.exe)?|dcgmi|dmesg|journalctl|ibstat|ibstatus|iblinkinfo|ibv_devinfo|"
          r"perfquery|ibdiagnet|ibqueryerrors|ethtool|mlxlink|mlxcables|mget_temp|lspci|ipmitool|ipmi-sel|ipmi-sensors|"
          r"ipmimonitoring|all_reduce_perf|all_gather_perf|reduce_scatter_perf|alltoall_perf|broadcast_perf|reduce_perf|"
          r"sendrecv_perf|mpirun|srun|systemctl|nv-fabricmanager|dmidecode|uname|df|cat|tail|grep|docker|podman|ctr|"
          r"kubectl|singularity|apptainer|enroot|pdsh|clush)\b")
# Shell prompts followed by a command (the command is kept as a hint, the line dropped).
_PROMPTS = [
    re.compile(r"^\s*(?:\([\w.-]+\)\s*)?[\w.-]+@[\w.-]+(?::[^\s#$%]*)?\s*[#$%]\s?(?P<cmd>.*)$"),  # user@host:~$ cmd
    # [root@node ~]# cmd, [node ~]$ cmd (a directory after the host: never a dmesg -T date)
    re.compile(r"^\s*\[(?:[\w.-]+@[\w.-]+(?:\s+[^\]]*)?|[\w.-]+\s+[~/.][^\]]*)\]\s*[#$%]\s?(?P<cmd>.*)$"),
    re.compile(r"^\s*(?:sh|bash|zsh)-\d+(?:\.\d+)*[#$]\s?(?P<cmd>.*)$"),                          # bash-4.2# cmd
    re.compile(r"^\s*(?:\$|❯|➜|>>>|PS [^>]*>)\s+(?P<cmd>\S.*)$"),                                 # $ cmd, ❯ cmd, >>> cmd
    re.compile(r"^\s*#\s?(?P<cmd>" + _TOOLS + r".*)$"),                                            # root's '# tool ...'
    re.compile(r"^\s*(?:\$|❯|➜)\s*(?P<cmd>)$"),                                                  # a bare prompt
    re.compile(r"^\[sudo\] password for \S+:\s*(?P<cmd>)$"),
]
# A command line pasted without its prompt: only as the first line, and only a known tool.
_BARE_COMMAND = re.compile(r"^\s*(?P<cmd>" + _TOOLS + r"(?:\s+[^\s|]+)*(?:\s*\|\s*\S.*)?)\s*$")
_HOST_PREFIX = re.compile(r"^(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?):(?: (?P<rest>.*))?$")
# Words at a line start that are kernel subsystems, drivers or interfaces, not hosts.
_NOT_HOSTS = re.compile(
    r"^(?:kernel|NVRM|nvidia(?:-\S*)?|nv\S*|mlx\d\S*|mlx5_core|ib\d*|mlx|eth\d*|en[ops]\S*|bond\d*|veth\S*|docker\d*|"
    r"pcieport|pci|ACPI|EDAC|mce|usb\d*|sd[a-z]*|nvme\d*\S*|ata\d*|scsi\d*|xhci\S*|systemd\S*|audit|IPv[46]|"
    r"CA|Switch|Port\d*|Warning|Error|Note|INFO|WARN|ERROR|DEBUG|http|https|\d+|"
    r"kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local[0-7])$", re.I)   # last: syslog facilities
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


def _any_of(patterns: list[re.Pattern[str]]) -> re.Pattern[str]:
    """One pattern that matches where any of `patterns` matches (groups unnamed, flags kept):
    most lines match none, and one test in C is much cheaper than one call per pattern."""
    def part(p: re.Pattern[str]) -> str:
        flags = "".join(f for f, bit in (("i", re.I), ("s", re.S), ("x", re.X)) if p.flags & bit)
        body = re.sub(r"\(\?P<\w+>", "(?:", p.pattern)
        return f"(?{flags}:{body})" if flags else f"(?:{body})"

    return re.compile("|".join(part(p) for p in patterns))


_ANY_PROMPT = _any_of(_PROMPTS)


def prompt_command(line: str) -> str | None:
    """The command of a shell prompt line ('' for a bare prompt), None if it is no prompt line."""
    # no prompt is blank (a million empty lines cost no pattern); one combined test rules most lines out
    if not line or line.isspace() or not _ANY_PROMPT.match(line[:MAX_LINE_CHARS]):
        return None
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

_MON = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec|1[0-2]月|[1-9]月)"   # journalctl in a zh/ja locale
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_ISO_TS = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"
_FACILITY = r"(?:kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local[0-7])"
_LEVEL = r"(?:emerg|alert|crit|err|error|warn|warning|notice|info|debug)"
_PROG = r"(?P<src>[A-Za-z_][\w./-]*(?: [A-Za-z][\w./-]*){0,2}?)(?:\[\d+\])?"   # 'Server Administrator' has a space

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
                     r"(?:(?P<host>[\w.-]*\w)\s+)?" + _PROG + r":(?: (?P<rest>.*))?$")   # some syslogs omit the host
# journalctl -o short-iso after its ISO stamp: 'host identifier[pid]: '. Whether a document has it is decided
# on the whole document (one host on most lines), since 'Firmware version: 28.39' looks the same.
_HOST_PROG = re.compile(r"^(?P<host>[A-Za-z0-9][\w.-]*) (?P<src>[A-Za-z_][\w./-]*)(?:\[\d+\])?:(?: (?P<rest>.*))?$")
_ISO_BARE = re.compile(r"^(?P<wall>" + _ISO_TS + r")(?: (?P<rest>.*))?$")   # one space: the line's own indent is kept
_BARE_KERNEL = re.compile(r"^kernel:(?: (?P<rest>.*))?$")
_BARE_PROG_PID = re.compile(r"^(?P<src>[A-Za-z_][\w.-]*)\[\d+\]:(?: (?P<rest>.*))?$")     # journalctl -o with identifier
# after a monotonic stamp (journalctl -o short-monotonic): 'host kernel: msg'
_HOST_KERNEL = re.compile(r"^(?P<host>[\w.-]+) (?P<src>kernel|[A-Za-z_][\w.-]*\[\d+\]):(?: (?P<rest>.*))?$")


# Each layer: its pattern, and whether it carries a stamp (the innermost stamp is the line's own time:
# an outer one only says when a collector or container runtime saw the line).
_LAYERS: list[tuple[re.Pattern[str], bool]] = [
    (_CRI, True), (_FAC_LVL_BRACKET, True), (_RFC5424, True), (_KMSG, True), (_PRI, False), (_DECODE, False),
    (_DMESG_SEC, True), (_DMESG_CTIME, True), (_DMESG_RELTIME, True), (_DMESG_DELTA, False),
    (_SYSLOG, True), (_ISO_BARE, True), (_BARE_KERNEL, False), (_BARE_PROG_PID, False),
]


_ANY_LAYER = _any_of([p for p, _ in _LAYERS])


def _docker_json(text: str) -> tuple[str, str | None] | None:
    try:
        doc = json.loads(text)
        return str(doc["log"]).rstrip("\n"), (str(doc["time"]) if doc.get("time") else None)
    except (ValueError, KeyError, TypeError):
        return None


def _strip_log_prefixes(line: Line) -> Line:
    """Peel log prefixes off one line, outermost first, recording what they said."""
    if not line.text or line.text.isspace():   # no log prefix is blank
        return line
    text, seconds, wall, source, stamped, via_iso = line.text, line.seconds, line.wall, line.source, False, line.via_iso
    for _ in range(6):
        head = text[:MAX_LINE_CHARS]
        if _DOCKER_JSON.match(head) and (got := _docker_json(text)) is not None:
            text, wall, seconds, stamped = got[0], got[1], None, True
            continue
        if not _ANY_LAYER.match(head):
            break
        for pattern, is_stamp in _LAYERS:
            m = pattern.match(head)
            if m is None:
                continue
            g = m.groupdict()
            rest = g["rest"] or ""
            if is_stamp:
                seconds = float(g["sec"]) if g.get("sec") else int(g["usec"]) / 1e6 if g.get("usec") else None
                wall = g.get("wall")
                via_iso = pattern is _ISO_BARE
            if g.get("src"):
                source = g["src"].split("[")[0]
            if pattern is _DMESG_SEC and (h := _HOST_KERNEL.match(rest[:MAX_LINE_CHARS])):
                rest, source = h["rest"] or "", h["src"].split("[")[0]   # journalctl -o short-monotonic
            if pattern is _BARE_KERNEL:
                source = "kernel"
            text, stamped = rest + text[len(head):] if len(text) > MAX_LINE_CHARS else rest, True
            break
        else:
            break
    if not stamped:
        return line
    return replace(line, text=text, seconds=seconds, wall=wall, source=source or line.source, stamped=True,
                   via_iso=via_iso)


def _journal_iso(lines: list[Line]) -> list[Line]:
    """journalctl -o short-iso: after the stamp, 'host identifier: ' with one host on most stamped lines."""
    cands = [l for l in lines if l.via_iso]
    hosts = Counter(m["host"] for l in cands if (m := _HOST_PROG.match(l.text[:MAX_LINE_CHARS])))
    if not hosts:
        return lines
    top, n = hosts.most_common(1)[0]
    if n < 0.6 * len(cands):
        return lines
    out = []
    for l in lines:
        m = _HOST_PROG.match(l.text[:MAX_LINE_CHARS]) if l.via_iso else None
        if m and m["host"] == top:
            l = _strip_log_prefixes(replace(l, text=(m["rest"] or "") + l.text[MAX_LINE_CHARS:], source=m["src"],
                                            via_iso=False))
        out.append(l)
    return out


def _unquote(lines: list[Line]) -> list[Line]:
    """Markdown quoting inside the log prefixes or indentation (a quoted paste logged, or indented)."""
    texts = [l.text for l in lines]
    if not _majority(texts, _QUOTE, 0.6):
        return lines
    return _dedent([replace(l, text=t) for l, t in zip(lines, _strip_quotes(texts))])


def _dedent(lines: list[Line]) -> list[Line]:
    body = [l.text for l in lines if l.text.strip()]
    if not body:
        return lines
    first = body[0]
    common = first[:len(first) - len(first.lstrip(" \t"))]
    if not common:
        return lines
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
    # (line number, host, command) of each prompt line that ran a command
    prompts: list[tuple[int, str | None, str]] = field(default_factory=list)

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
        return Document([l for l in self.lines if l.host == host], self.commands,
                        [p for p in self.prompts if p[1] == host])

    def inner_text(self) -> str:
        """The lines without host/rank prefixes but with their log prefixes: what one host printed,
        for splitting a pdsh/clush paste into one file per host (timestamps kept for the parsers)."""
        return "\n".join(l.inner for l in self.lines)

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
    prompts: list[tuple[int, str | None, str]] = []
    numbered: list[tuple[int, str]] = []
    first = next((n for n, l in enumerate(lines) if l.strip()), None)
    for n, l in enumerate(lines, 1):
        cmd = prompt_command(l)
        if cmd is None and n - 1 == first and (m := _BARE_COMMAND.match(l[:MAX_LINE_CHARS])):
            cmd = m["cmd"].strip()
        if cmd is None:
            numbered.append((n, l))
        elif cmd:
            commands.append(cmd)
            prompts.append((n, None, cmd))
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
    if blocks and prompts:     # a prompt inside a clush -b block ran on that block's host
        after = sorted((n, h) for n, _l, h in hosted)
        nums = [m for m, _h in after]
        prompts = [(n, after[i][1] if (i := bisect.bisect_right(nums, n)) < len(after) else None, cmd)
                   for n, _h, cmd in prompts]
    out: list[Line] = []
    by_host: dict[str | None, list[Line]] = {}
    for n, l, h in hosted:
        by_host.setdefault(h, []).append(Line(l, raw_lines[n - 1].rstrip("\r"), n, h, inner=l))
    for h, hl in by_host.items():
        texts = [l.text for l in hl]
        ranked: set[int] = set()     # lines behind an srun rank or kubectl prefix: a session inside a log
        for pattern in (_RANK, _KUBE_PREFIX):
            if _majority(texts, pattern, 0.8):
                hl = [replace(l, text=m["rest"], inner=m["rest"]) if (m := pattern.match(l.text[:MAX_LINE_CHARS])) else l
                      for l in hl]
                ranked |= {l.lineno for l, t in zip(hl, texts) if l.text != t}
                texts = [l.text for l in hl]
        # indentation outside the log prefixes (a paste indented as a block) goes first
        hl = _journal_iso([_strip_log_prefixes(l) for l in _dedent(hl)])
        # a terminal session captured in a log (CI, kubectl logs) or behind host prefixes: its prompts,
        # command echo and fences sit inside the prefixes
        kept: list[Line] = []
        printed = False      # a kept line with text: a command echo can only come before it
        for l in hl:
            wrapped = l.stamped or l.host is not None or l.lineno in ranked
            cmd = prompt_command(l.text) if wrapped else None
            if cmd is None and wrapped and not printed and (m := _BARE_COMMAND.match(l.text[:MAX_LINE_CHARS])):
                cmd = m["cmd"].strip()
            if cmd is None and wrapped and _FENCE.match(l.text):
                cmd = ""
            if cmd is None:
                kept.append(l)
                printed = printed or bool(l.text.strip())
            elif cmd:
                commands.append(cmd)
                prompts.append((l.lineno, l.host, cmd))
        out.extend(_unquote(_dedent(kept)))
    out.sort(key=lambda l: l.lineno)
    # a pdsh host's empty trailing lines and leading blanks carry nothing
    while out and not out[-1].text.strip():
        out.pop()
    first = next((i for i, l in enumerate(out) if l.text.strip()), len(out))
    return Document(out[first:], commands, sorted(prompts, key=lambda p: p[0]))   # sliced: popping from the front is quadratic


def command_sections(doc: Document, host: str | None = None) -> list[str] | None:
    """A paste of several commands (of one host), each shell prompt followed by what it printed -> one
    text per command, so that each is recognized and parsed as its own paste (an `nvidia-smi` screen,
    then `dmesg | grep Xid`: neither tool's lines are read as the other's). The prompts may sit inside
    log, rank or host prefixes; each text is the command's lines without those document-level wrappers
    (log prefixes kept), headed by `$ <command>`; text above the first prompt is a text of its own.
    None unless at least two of the texts hold output."""
    starts = [(n, cmd) for n, h, cmd in doc.prompts if h == host]
    if not starts:
        return None
    nums = [n for n, _cmd in starts]
    sections: list[tuple[str | None, list[str]]] = [(None, [])] + [(cmd, []) for _n, cmd in starts]
    for l in doc.lines:
        if l.host == host:     # the section of the last prompt above the line (0: above every prompt)
            sections[bisect.bisect_right(nums, l.lineno)][1].append(l.inner)
    if sum(1 for _, body in sections if any(t.strip() for t in body)) < 2:
        return None
    return ["\n".join(([f"$ {cmd}"] if cmd else []) + body) for cmd, body in sections]


def normalize_lines(text: str) -> list[Line]:
    return normalize_document(text).lines


def normalize(text: str) -> str:
    """The tool's own lines of a paste (see the module docstring); idempotent."""
    return normalize_document(text).text
