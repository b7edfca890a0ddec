"""NVIDIA Fabric Manager's own log: /var/log/fabricmanager.log, its journal, `systemctl status`.

Three shapes of the same story are read as one kind:
- the log file: `[Dec 19 2024 19:17:49] [ERROR] [tid 1374] detected NVSwitch non-fatal error 12028 on
  fid 0 on NVSwitch pci bus id 00000000:84:00.0 physical id 1 port 35`;
- `journalctl -u nvidia-fabricmanager` (the journal prefix is peeled off by normalization; lines whose
  prefix it does not know are read all the same, every pattern is searched, not anchored);
- `systemctl status nvidia-fabricmanager`: the `Active:` line says the state now, then the journal tail.

The result says whether the service runs (the `Active:` line or `Job for ... failed` when shown, else
the last start/stop/exit in the log), the NVSwitch errors it reported, and why it failed
(driver/FM version mismatch, no NVSwitch visible, NVLink training, GPUs missing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clusterkit.evidence.kinds import declare
from clusterkit.evidence.normalize import MAX_LINE_CHARS, normalize_lines
from clusterkit.parsers import ParseError

FM_LOG_PATH = "/var/log/fabricmanager.log"
# The log file where FM writes one (the default), else its journal; exit 127 (absent) where neither exists.
FABRICMANAGER_LOG = declare(
    "fabricmanager-log", "gpu/fabricmanager-log.txt",
    command=("sh", "-c", f"if [ -r {FM_LOG_PATH} ]; then tail -n 5000 {FM_LOG_PATH}; "
                         "elif command -v nv-fabricmanager >/dev/null 2>&1; then "
                         "journalctl -u nvidia-fabricmanager -n 2000 --no-pager -o short-iso; else exit 127; fi"),
    priority=60, description="fabric manager log: /var/log/fabricmanager.log, journalctl -u nvidia-fabricmanager, "
                             "systemctl status nvidia-fabricmanager")

_STAMP = re.compile(r"^\[(?P<when>[A-Z][a-z]{2} \d\d \d{4} \d\d:\d\d:\d\d)\] \[(?P<level>[A-Z]+)\] \[tid \d+\] ?(?P<msg>.*)$")
_ACTIVE = re.compile(r"^\s*Active: (?P<state>[a-z-]+)(?: \((?P<sub>[^)]*)\))?")
_JOB_FAILED = re.compile(r"Job for nvidia-fabricmanager\S* failed")
_STARTED = re.compile(r"Started (?:\"Nvidia Fabric Manager\"|nvidia-fabricmanager|NVIDIA fabric manager)"
                      r"|Fabric Manager version \S+ is running|Successfully configured all the available NVSwitches")
_STOPPED = re.compile(r"Stopped (?:\"Nvidia Fabric Manager\"|nvidia-fabricmanager|NVIDIA fabric manager)")
_STARTING = re.compile(r"Starting (?:nvidia-fabricmanager|NVIDIA fabric manager)")
_EXITED = re.compile(r"(?:Control|Main) process exited, code=\w+, status=(?!0/)|Failed to start (?:nvidia-fabricmanager"
                     r"|NVIDIA fabric manager)|nvidia-fabricmanager\S*: Failed with result|fabricmanager[^\"]{0,200}\" failed!"
                     r"|aborting fabric manager|fabric manager (?:failed to initialize|exiting)")
_MISMATCH = re.compile(r"fabric manager NVIDIA GPU driver interface version (?P<fm>\S+?) don't match with driver "
                       r"version (?P<drv>[\w.]+?)\.?(?:\s|$)")
_VERSION = re.compile(r"Fabric Manager version (?P<v>\d[\w.]*) is running|Fabric Manager version is\s*:\s*(?P<v2>\d[\w.]*)")
_NOTHING = re.compile(r"NV_WARN_NOTHING_TO_DO")
_SWITCH_ERR = re.compile(r"detected NVSwitch (?P<kind>fatal|non-fatal) error (?P<code>\d+) on (?:fid|NodeId) \d+ on NVSwitch "
                         r"pci bus id (?P<bus>[0-9a-fA-F:.]+) physical id (?P<phys>\d+) port (?P<port>\d+)")
_TRAINING = re.compile(r"(?i)failed to train|training (?:failed|failure)|train(?:ing)? to (?:high speed|active)[^\n]{0,40}?fail")
_GPU_MISSING = re.compile(r"(?i)failed to (?:find|detect) (?:all )?(?:the )?GPUs?\b(?! handle)"
                          r"|\bGPU\b[^\n]{0,120}?\b(?:was not found|not found|is missing|are missing)\b")
# What makes a paste a fabric manager text at all (the recognizer counts these lines).
_FM_WORDS = re.compile(r"(?i)fabric ?manager|nv-fabricmanager|NV_WARN_NOTHING_TO_DO|NVSwitch(?:es)? (?:to route|device "
                       r"information|routing configuration)|detected NVSwitch (?:non-)?fatal error|Detected (?:Pre-)?NVL\d"
                       r"|Connected to \d+ node|multicast (?:group|team)|inband (?:message|response)|GPU base board")
_PROBE_LINE = re.compile(r"^(?:Fabric Manager version is\s*:|[a-z]+$)")   # the `fabricmanager` kind's short probe
_UNIT_FIELD = re.compile(r"^\s*(?:Loaded|Active|Docs|Process|Main PID|Tasks|Memory|CPU|CGroup|TriggeredBy): |^\s*[└├│]")


@dataclass
class SwitchError:
    fatal: bool
    code: int                 # the SXid
    switch: str               # NVSwitch PCI bus id as FM prints it
    physical_id: int
    ports: list[int] = field(default_factory=list)
    count: int = 0
    first: str | None = None  # when, as printed
    sample: str = ""


@dataclass
class FabricManagerLog:
    state: str | None = None          # active | failed | inactive | activating | deactivating; None: not shown
    state_line: str | None = None     # the line that said so
    version: str | None = None        # fabric manager's own version, when it printed it
    mismatch: tuple[str, str] | None = None   # (FM's driver interface version, the loaded driver's)
    nothing_to_do: str | None = None  # the NV_WARN_NOTHING_TO_DO line: the driver sees no NVSwitch
    switch_errors: list[SwitchError] = field(default_factory=list)
    training: list[str] = field(default_factory=list)
    gpus_missing: list[str] = field(default_factory=list)
    starts: int = 0                   # times it (re)started in this text
    lines: int = 0


def _line_parts(text: str, wall: str | None) -> tuple[str, str | None]:
    m = _STAMP.match(text[:MAX_LINE_CHARS])
    return (m["msg"], m["when"]) if m else (text, wall)


@FABRICMANAGER_LOG.recognizer
def is_fabricmanager_log(text: str) -> bool:
    """Fabric manager's log, journal or `systemctl status`: most lines are its own."""
    lines = [l[:MAX_LINE_CHARS] for l in text.split("\n")[:5000] if l.strip()]
    if not lines:
        return False
    stamped = sum(1 for l in lines if _STAMP.match(l))
    own = sum(1 for l in lines if _FM_WORDS.search(l) or _UNIT_FIELD.match(l))
    return (any(_FM_WORDS.search(l) and not _PROBE_LINE.match(l) for l in lines)
            and (stamped + own) >= 0.5 * len(lines))


@FABRICMANAGER_LOG.parser
def parse_fabricmanager_log(text: str) -> FabricManagerLog:
    out = FabricManagerLog()
    current: tuple[str, str] | None = None     # what `systemctl` says now: it outranks the history
    switches: dict[tuple[str, int, bool], SwitchError] = {}
    for ln in normalize_lines(text):
        raw = ln.text.strip()
        if not raw:
            continue
        out.lines += 1
        msg, when = _line_parts(raw, ln.wall)
        head = msg[:MAX_LINE_CHARS]
        if (m := _ACTIVE.match(head)) and current is None:
            current = (m["state"], raw)
        elif _JOB_FAILED.search(head):
            current = ("failed", raw)
        if _STARTED.search(head):
            if "is running" in head:
                out.starts += 1
            out.state, out.state_line = "active", raw
        elif _STOPPED.search(head):
            out.state, out.state_line = "inactive", raw
        elif _STARTING.search(head):
            out.state, out.state_line = "activating", raw
        elif _EXITED.search(head):
            out.state, out.state_line = "failed", raw
        if (m := _VERSION.search(head)):
            out.version = m["v"] or m["v2"]
        if (m := _MISMATCH.search(head)):
            out.mismatch = (m["fm"], m["drv"])
            out.state, out.state_line = "failed", raw     # FM aborts on a mismatch
        if _NOTHING.search(head):
            out.nothing_to_do = raw
            out.state, out.state_line = "failed", raw     # and exits when it finds no NVSwitch
        if (m := _SWITCH_ERR.search(head)):
            key = (m["bus"], int(m["code"]), m["kind"] == "fatal")
            e = switches.get(key)
            if e is None:
                e = switches[key] = SwitchError(key[2], key[1], m["bus"], int(m["phys"]), first=when, sample=raw[:240])
            e.count += 1
            if int(m["port"]) not in e.ports:
                e.ports.append(int(m["port"]))
        if _TRAINING.search(head):
            out.training.append(raw[:240])
        if _GPU_MISSING.search(head):
            out.gpus_missing.append(raw[:240])
    if current is not None:
        out.state, out.state_line = current
    out.switch_errors = list(switches.values())
    if not out.lines:
        raise ParseError("empty fabric manager log")
    return out
