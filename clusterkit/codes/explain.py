"""What `clusterkit explain` and `clusterkit checks list` say, gathered from the registries the checks
themselves use: the code declarations, the check registry (what each check reads, which profile keys
it takes), the evidence kinds (path and command), and the profiles (which one sets each threshold)."""

from __future__ import annotations

import fnmatch
import functools
import sys
from pathlib import Path
from typing import Any

from clusterkit.codes import CodeInfo, by_check, canonical, lookup
from clusterkit.codes.examples import examples_of
from clusterkit.plugins import load_all

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _kinds_of(needs: tuple[str, ...]) -> list[str]:
    from clusterkit.evidence.kinds import KINDS, VARIANTS

    out = []
    for need in needs:
        for k in [*KINDS.values(), *VARIANTS]:
            if k.glob == need or k.path == need:
                out.append(k.name)
                break
        else:
            out.append(need)
    return list(dict.fromkeys(out))


def evidence(e: CodeInfo) -> list[dict[str, str]]:
    """The evidence kinds a code comes from: its declared ones, else what its checks read."""
    from clusterkit.checks.registry import CHECKS
    from clusterkit.evidence.kinds import KINDS

    load_all()
    names = list(e.evidence)
    if not names:
        checks = CHECKS.values() if "*" in e.checks else [CHECKS[c] for c in e.checks if c in CHECKS]
        names = _kinds_of(tuple(n for c in checks for n in c.needs))
    out = []
    for n in names:
        k = KINDS.get(n)
        out.append({"kind": n, "path": k.path if k else n, "command": k.command_line if k else ""})
    return out


@functools.lru_cache(maxsize=1)
def _profile_files() -> dict[str, tuple[Path, dict[str, Any]]]:
    from clusterkit.profiles import profile_dirs

    out: dict[str, tuple[Path, dict[str, Any]]] = {}
    for d in reversed(profile_dirs()):
        for p in sorted(d.glob("*.toml")) if d.is_dir() else []:
            try:
                out[p.stem] = (p, tomllib.loads(p.read_text()))
            except (OSError, tomllib.TOMLDecodeError):
                continue
    return out


def threshold(key: str) -> dict[str, Any]:
    """A profile key: its value in each profile file that sets it (the file and line to edit)."""
    section, name = key.split(".", 1)
    set_in = []
    for prof, (path, doc) in _profile_files().items():
        sec = doc.get(section)
        if isinstance(sec, dict) and name in sec:
            set_in.append({"profile": prof, "value": sec[name], "file": str(path)})
    return {"key": key, "set_in": set_in}


def threshold_keys(e: CodeInfo, code: str) -> list[str]:
    """Its profile keys; a glob (`fabric.max_*_delta`) becomes the keys it matches."""
    from clusterkit.checks.registry import PROFILE_KEYS

    out: list[str] = []
    for k in e.threshold_keys(code):
        out += sorted(p for p in PROFILE_KEYS if fnmatch.fnmatchcase(p, k)) if "*" in k else [k]
    return out


def explain_code(code: str) -> dict[str, Any] | None:
    """Everything known about a code, or None when no declaration documents it."""
    from clusterkit.checks.registry import CHECKS

    load_all()
    e = lookup(code)
    if e is None:
        return None
    asked = code.strip().upper()
    name = canonical(asked) if e.pattern is None or asked in e.aliases else asked
    if e.pattern is None and name not in e.codes:
        name = e.codes[0]
    checks = [{"id": c, "description": CHECKS[c].description if c in CHECKS else ""} for c in e.checks if c != "*"]
    d: dict[str, Any] = {
        "code": name, "asked": asked, "documented_as": e.name, "aliases": list(e.aliases), "alias_note": e.alias_note,
        "severity": e.severity, "levels": list(e.levels), "meaning": e.meaning, "action": e.action,
        "checks": checks, "any_check": "*" in e.checks, "emitter": e.emitter,
        "evidence": evidence(e), "thresholds": [threshold(k) for k in threshold_keys(e, name)],
        "docs": e.doc, "examples": examples_of(name) or [x for c in e.codes for x in examples_of(c)],
    }
    if name.startswith("GPU_XID_") and name[8:].isdigit():
        from clusterkit.parsers.xid import UNKNOWN_XID, XID_CATALOGUE

        info = XID_CATALOGUE.get(int(name[8:]), UNKNOWN_XID)
        d["xid"] = {"severity": info.severity, "meaning": info.meaning, "action": info.action}
    return d


def _wrap(label: str, text: str, width: int) -> list[str]:
    import textwrap

    pad = " " * 12
    return textwrap.wrap(text, width, initial_indent=f"{label:<12}", subsequent_indent=pad,
                         break_long_words=False, break_on_hyphens=False) or [f"{label:<12}"]


def render_code(d: dict[str, Any], width: int = 100) -> str:
    lines = [f"{d['code']}  ({' / '.join(d['levels'])})"]
    if d["asked"] != d["code"] and d["asked"] in d["aliases"]:
        lines.append(f"  {d['asked']} is an earlier name of {d['code']}" + (f": {d['alias_note']}" if d['alias_note']
                                                                             else " (same meaning)"))
    elif d["aliases"]:
        lines.append(f"  earlier name{'s' if len(d['aliases']) > 1 else ''}: {', '.join(d['aliases'])}")
    if d["documented_as"] != d["code"]:
        lines.append(f"  documented as {d['documented_as']}")
    lines.append("")
    if "xid" in d:
        x = d["xid"]
        lines += _wrap("Xid:", f"{x['meaning']} ({x['severity']}); {x['action']}", width)
    lines += _wrap("Meaning:", d["meaning"], width)
    lines += _wrap("Severity:", d["severity"], width)
    lines += _wrap("Action:", d["action"], width)
    who = [f"{c['id']}: {c['description']}" if c["description"] else c["id"] for c in d["checks"]]
    if d["any_check"]:
        who.append("any check (for a file it cannot use)")
    if d["emitter"]:
        who.append(d["emitter"])
    for i, w in enumerate(who):
        lines += _wrap("Emitted by:" if i == 0 else "", w, width)
    for i, ev in enumerate(d["evidence"]):
        text = ev["path"] + (f"  ({ev['command']})" if ev["command"] and not ev["command"].startswith("(") else "")
        lines += _wrap("Evidence:" if i == 0 else "", text, width)
    if not d["thresholds"]:
        lines += _wrap("Thresholds:", "none: the finding is not a matter of a profile limit", width)
    for i, t in enumerate(d["thresholds"]):
        where = "; ".join(f"{s['profile']} = {s['value']!r}" for s in t["set_in"]) or "not set by any profile"
        lines += _wrap("Thresholds:" if i == 0 else "", f"{t['key']}: {where}", width)
    if d["thresholds"]:
        files = sorted({Path(s["file"]).parent for t in d["thresholds"] for s in t["set_in"]})
        lines += _wrap("", f"(set in {', '.join(str(f) for f in files) or 'checks/profiles'}/<profile>.toml, "
                           f"section [{d['thresholds'][0]['key'].split('.')[0]}]; `clusterkit profile show NAME`)",
                       width)
    for i, x in enumerate(d["examples"][:2]):
        lines += _wrap("Example:" if i == 0 else "", f"{x['key']} (real output: {x['source']})", width)
    if not d["examples"]:
        lines += _wrap("Example:", "no real output recorded for it yet", width)
    lines += _wrap("Docs:", d["docs"], width)
    return "\n".join(lines) + "\n"


def check_rows(check_ids: list[str]) -> list[dict[str, Any]]:
    """`clusterkit checks list`: per check, its family, scope, the evidence it needs and the codes it finds."""
    from clusterkit.checks.registry import CHECKS

    load_all()
    rows = []
    for cid in check_ids:
        c = CHECKS[cid]
        finds = [n for e in by_check(cid) for n in e.codes]
        rows.append({"id": cid, "family": c.family, "scope": c.scope, "description": c.description,
                     "needs": _kinds_of(c.needs), "needs_any": c.needs_any, "params": sorted(c.params),
                     "finds": finds})
    return rows


def explain_check(check_id: str) -> dict[str, Any] | None:
    from clusterkit.checks.registry import CHECKS

    load_all()
    if check_id not in CHECKS:
        return None
    return check_rows([check_id])[0]


def render_check(d: dict[str, Any], width: int = 100) -> str:
    lines = [f"{d['id']}  ({d['scope']} check, family {d['family']})", ""]
    lines += _wrap("Does:", d["description"], width)
    needs = ", ".join(d["needs"]) or "the other checks' results / the cluster bundle"
    lines += _wrap("Reads:", needs + (" (any one of them)" if d["needs_any"] and len(d["needs"]) > 1 else ""), width)
    lines += _wrap("Profile:", ", ".join(d["params"]) or "no profile keys", width)
    lines += _wrap("Finds:", ", ".join(d["finds"]) or "-", width)
    lines += _wrap("", "(`clusterkit explain CODE` for each)", width)
    return "\n".join(lines) + "\n"
