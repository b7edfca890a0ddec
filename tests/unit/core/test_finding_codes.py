"""Every finding code the code base can emit is declared once (clusterkit/codes/*.toml), documented in
docs/findings*.md (tables generated from the declarations) and explained by `clusterkit explain`."""

from __future__ import annotations

import ast
import fnmatch
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from clusterkit import codes
from clusterkit.codes.docs import stale_pages
from clusterkit.plugins import load_all

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / "clusterkit"
CODE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
# UPPER_SNAKE strings in those modules that are not finding codes: environment variables (clusterkit's own,
# NCCL's named in messages), os-release keys, and code prefixes signatures.py uses to say "already reported"
NOT_CODES = {"CLUSTERKIT_ANALYSIS_WORKERS", "CLUSTERKIT_CHECK_BUDGET_S", "NCCL_ALGO", "NCCL_IB_HCA", "PRETTY_NAME", "VERSION_ID", "GPU_LOST", "GPU_COUNT", "POWER_PSU"}
# Modules whose UPPER_SNAKE strings are finding codes (the checks, and what emits codes outside them)
CODE_MODULES = [*sorted((SRC / "checks").glob("*.py")), SRC / "triage.py", SRC / "analysis.py", SRC / "results.py"]


def _strings(path: Path) -> tuple[set[str], set[str]]:
    """(UPPER_SNAKE string constants, f-string code families as globs) of one module."""
    consts, families = set(), set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and CODE.match(n.value):
            consts.add(n.value)
        elif isinstance(n, ast.JoinedStr):
            glob = "".join(v.value if isinstance(v, ast.Constant) else "*" for v in n.values)
            if "*" in glob and re.fullmatch(r"[A-Z][A-Z0-9]*_[A-Z0-9_*]*", glob):
                families.add(glob)
    return consts, families


def _grep_emitted() -> set[str]:
    """What the brief's grep finds: `Finding("CODE"` and `code="CODE"` anywhere in the package."""
    pat = re.compile(r'(?:Finding\(\s*|\bcode=)"([A-Z][A-Z0-9_]+)"')
    return {m for p in SRC.rglob("*.py") for m in pat.findall(p.read_text())}


def _runtime_emitted() -> set[str]:
    """Codes held in registries: kernel-log rules, fatal signatures, the node entries of the report."""
    load_all()
    from clusterkit.checks.kernel_log_rules import RULES
    from clusterkit.checks.signatures import TOOL_SIGNATURES
    from clusterkit.triage import _NODE_ENTRIES, _NOT_COLLECTED

    return ({r.code for r in RULES} | {s.code for s in TOOL_SIGNATURES}
            | {c for c, _ in _NODE_ENTRIES.values()} | {_NOT_COLLECTED[0]})


def _family_members() -> dict[str, set[str]]:
    """The concrete codes of each f-string family, from the tables that generate them."""
    load_all()
    from clusterkit.checks.fabric_counters import ETH_LIMITED, IB_LIMITED, ROCE_LIMITED
    from clusterkit.parsers.xid import XID_CATALOGUE

    return {"IB_*_INCREASED": {f"IB_{n.upper()}_INCREASED" for n in IB_LIMITED},
            "ROCE_*_INCREASED": {f"ROCE_{n.upper()}_INCREASED" for n in ROCE_LIMITED},
            "ETH_*_INCREASED": {f"ETH_{n.upper()}_INCREASED" for n in ETH_LIMITED},
            "GPU_XID_*": {f"GPU_XID_{x}" for x in XID_CATALOGUE} | {"GPU_XID_99999"}}   # an Xid not in the catalogue


def _all_constants() -> set[str]:
    out: set[str] = set()
    for p in CODE_MODULES:
        out |= _strings(p)[0]
    return out


def test_every_code_emitted_anywhere_is_declared():
    emitted = _grep_emitted() | _runtime_emitted() | (_all_constants() - NOT_CODES)
    members = _family_members()
    families = set().union(*(_strings(p)[1] for p in CODE_MODULES))
    assert families == set(members), "a new f-string code family: list its members in _family_members()"
    for fam in members.values():
        emitted |= fam
    undeclared = sorted(c for c in emitted if not codes.declared(c))
    assert not undeclared, f"declare these in clusterkit/codes/*.toml: {undeclared}"
    assert {"INPUT_UNUSABLE", "FABRIC_PORT_RATE_LOW", "NODE_UNREACHABLE"} <= emitted   # the scan sees real codes


def test_every_declared_code_is_still_emitted_and_earlier_names_are_not():
    members = set().union(*_family_members().values())
    consts = _all_constants() | _runtime_emitted() | members
    for e in codes.catalog():
        if e.pattern:
            assert any(fnmatch.fnmatchcase(m, e.pattern) for m in members), e.name
            continue
        for c in e.codes:
            assert c in consts, f"{c} is declared but nothing emits it (retire it as an alias of its successor)"
        for a in e.aliases:
            assert a not in _grep_emitted(), f"{a} is an earlier name of {e.codes[0]} but is still emitted"


def test_each_code_is_declared_once_and_aliases_resolve():
    names = [c for e in codes.catalog() for c in (*e.codes, *e.aliases)]
    assert [n for n, k in Counter(names).items() if k > 1] == []
    assert codes.canonical("IB_PORT_RATE_LOW") == "FABRIC_PORT_RATE_LOW"
    assert codes.lookup("ib_port_rate_low").codes == ("FABRIC_PORT_RATE_LOW",)
    assert codes.lookup("IB_SYMBOL_ERROR_INCREASED").pattern == "IB_*_INCREASED"
    assert codes.lookup("IB_LINK_DOWNED_INCREASED").codes == ("IB_LINK_DOWNED_INCREASED",)   # exact beats family
    assert codes.lookup("NO_SUCH_CODE") is None


def test_declarations_name_real_checks_kinds_profile_keys_and_severities():
    load_all()
    from clusterkit.checks.registry import CHECKS, PROFILE_KEYS
    from clusterkit.evidence.kinds import KINDS

    for e in codes.catalog():
        assert e.levels and set(e.levels) <= set(codes.LEVELS), (e.name, e.severity)
        assert e.meaning and e.action, e.name
        assert e.checks or e.emitter, f"{e.name}: say which check (or what else) emits it"
        for c in e.checks:
            assert c == "*" or c in CHECKS, (e.name, c)
        for k in e.evidence:
            assert k in KINDS, (e.name, k)
        for key in e.thresholds:
            assert any(fnmatch.fnmatchcase(p, key) for p in PROFILE_KEYS), (e.name, key)


def test_a_code_declared_for_a_check_is_in_that_checks_module_or_its_helpers():
    """`checks` is checked against the source: the code's literal (or its family) appears in the module of
    one of its checks, or in a private helper module that module imports."""
    load_all()
    from clusterkit.checks.registry import CHECKS

    def sources(check_id: str) -> str:
        mod = Path(sys.modules[CHECKS[check_id].func.__module__].__file__ or "")
        text = mod.read_text()
        helpers = re.findall(r"from clusterkit\.checks\.(_\w+|kernel_log_rules|signatures|fabric_\w+) import", text)
        return text + "".join((SRC / "checks" / f"{h}.py").read_text() for h in helpers)

    runtime = _runtime_emitted()
    family_of = {m: fam for fam, ms in _family_members().items() for m in ms}
    for e in codes.catalog():
        for cid in e.checks:
            if cid == "*" or cid == "evidence.fatal_signatures":   # that one re-reports other checks' codes
                continue
            text = sources(cid)
            probes = [e.pattern.split("*")[0]] if e.pattern else list(e.codes)
            probes += ['f"' + family_of[c].split("*")[0] for c in e.codes if c in family_of]
            assert any(p in text for p in probes) or any(c in runtime for c in e.codes), (e.name, cid)


def test_the_findings_pages_are_generated_from_the_declarations():
    assert stale_pages(ROOT) == [], "run: python -m clusterkit.codes --write"
    text = "".join((ROOT / path).read_text() for path, _ in codes.PAGES.values())
    for e in codes.catalog():
        for c in e.codes:
            assert c.replace("<", "&lt;") in text, c
    assert "<counter>" not in text.replace("`max_<counter>_delta`", "")    # no raw tag outside code spans


@pytest.mark.parametrize("code", ["GPU_XID_79", "FABRIC_PORT_RATE_LOW", "IB_SYMBOL_ERROR_INCREASED"])
def test_family_thresholds_name_the_codes_own_key(code):
    e = codes.lookup(code)
    keys = e.threshold_keys(code)
    if code == "IB_SYMBOL_ERROR_INCREASED":
        assert keys == ["fabric.max_symbol_error_delta"]
    elif code == "GPU_XID_79":
        assert keys == ["gpu.xid_ignore"]
    else:
        assert keys == ["fabric.port_rate_far_below_fraction"]
