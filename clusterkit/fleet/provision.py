"""Provisioning through ansible-runner: site.yml per batch of nodes, then a health gate.

Each playbook run gets a fresh, absolute private data directory under the run directory
(`<run_dir>/<stamp>-batch<N>/`), so no env/extravars file of an earlier run can leak into it;
runner's artifacts (stdout, events) stay there as the run's log. The event stream feeds a
progress callback and builds, per host, the plan (tasks that changed or would change, with
their diffs) and the failure messages. Rolling mode runs batches of N nodes, and each batch
must pass `verify --suite quick` before the next starts.
"""

from __future__ import annotations

import difflib
import json
import math
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import yaml

from clusterkit.errors import ConfigError
from clusterkit.inventory import HostSpec, load_inventory
from clusterkit.paths import data_dir

if TYPE_CHECKING:
    from clusterkit.fleet.collect import FleetOptions

# (host, task, state) for a live view; state: start | ok | changed | failed | unreachable | skipped
ProgressFn = Callable[[str, str, str], None]
VerifyFn = Callable[..., Any]


def site_playbook() -> Path:
    return (data_dir("playbooks") / "site.yml").resolve()


@dataclass
class PlanItem:
    task: str                 # "role : task name"
    detail: str = ""          # what it touches or would do
    diff: str = ""            # unified diff (with --diff)


@dataclass
class HostSummary:
    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    plan: list[PlanItem] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)   # why a task failed or the host was unreachable

    @property
    def outcome(self) -> str:
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "failed"
        return "changed" if self.changed else "ok"


@dataclass
class PlaybookRun:
    batch: int
    hosts: list[str]
    private_data_dir: Path
    status: str = "unstarted"          # ansible-runner: successful | failed | timeout | canceled
    rc: int | None = None
    summaries: dict[str, HostSummary] = field(default_factory=dict)
    verify: Any = None                 # RunResult of the quick suite on this batch, when run
    verify_skipped: str | None = None

    @property
    def stdout_path(self) -> Path:
        return self.private_data_dir / "artifacts" / "provision" / "stdout"

    def failed(self) -> bool:
        if self.status != "successful" or any(s.outcome in ("failed", "unreachable") for s in self.summaries.values()):
            return True
        return bool(self.verify is not None and self.verify.failed())


@dataclass
class ProvisionResult:
    run_dir: Path
    check: bool
    batches: list[PlaybookRun] = field(default_factory=list)
    pending: list[list[str]] = field(default_factory=list)   # batches not started after a failure

    def failed(self) -> bool:
        return any(b.failed() for b in self.batches)

    def failed_hosts(self) -> list[str]:
        """Hosts to run again (failed.txt): a failed or unreachable host, one its batch's health gate failed
        or did not reach, every host of a batch whose playbook run failed as a whole, and the batches
        never started after a failure."""
        out: list[str] = []
        for b in self.batches:
            bad = {h for h, s in b.summaries.items() if s.outcome in ("failed", "unreachable")}
            if b.status != "successful" and not bad:
                bad = set(b.hosts)            # stopped (timeout, cancelled) before saying which host
            if b.verify is not None:
                bad |= {n.host for n in b.verify.nodes if n.outcome != "ok" or n.status in ("fail", "error")}
            out += [h for h in b.hosts if h in bad]
        return out + [h for batch in self.pending for h in batch]


def _host_of(event: dict[str, Any]) -> str | None:
    return (event.get("event_data") or {}).get("host")


def _dest(res: dict[str, Any]) -> str:
    """The file a task changed: in its result, or (check mode reports none) in its module arguments."""
    args = (res.get("invocation") or {}).get("module_args") or {}
    for d in (res, args):
        for key in ("dest", "path"):
            if isinstance(d.get(key), str) and d[key]:
                return d[key]
    return ""


def _render_diff(diff: Any, dest: str = "") -> str:
    """A unified diff headed by the destination file (what --diff is for): `--- /etc/nccl.conf (before)`,
    `+++ /etc/nccl.conf (after)`. Never the after_header: Ansible puts the source there (its temporary
    copy of a rendered template, or the role's file)."""
    parts = diff if isinstance(diff, list) else [diff]
    out: list[str] = []
    for d in parts:
        if not isinstance(d, dict):
            continue
        before, after = d.get("before", ""), d.get("after", "")
        if isinstance(before, str) and isinstance(after, str) and before != after:
            path = dest or str(d.get("before_header") or "") or "file"
            out += difflib.unified_diff(before.splitlines(), after.splitlines(), f"{path} (before)",
                                        f"{path} (after)", lineterm="")
        elif d.get("prepared"):
            out.append(str(d["prepared"]).rstrip())
    return "\n".join(out)


def _detail(action: str, res: dict[str, Any]) -> str:
    if action.endswith("debug"):
        return str(res.get("msg", ""))
    if _dest(res):
        return _dest(res)
    if res.get("name"):
        return str(res["name"])
    if res.get("results"):
        return ", ".join(str(r.get("item", "")) for r in res["results"] if isinstance(r, dict) and r.get("changed"))
    return ""


class EventCollector:
    """ansible-runner event handler: per-host plan, failures and counts for the live view."""

    def __init__(self, summaries: dict[str, HostSummary], progress: Optional[ProgressFn] = None):
        self.summaries = summaries
        self.progress = progress

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        host = _host_of(event)
        if not host or not kind.startswith("runner_on_"):
            return True
        s = self.summaries.setdefault(host, HostSummary(host))
        task = str(data.get("task", "")).strip()
        role = data.get("role")
        label = f"{role} : {task}" if role else task
        res = data.get("res") or {}
        state = kind[len("runner_on_"):]
        if kind == "runner_on_ok" and res.get("changed"):
            s.plan.append(PlanItem(label, _detail(str(data.get("task_action", "")), res),
                                   _render_diff(res.get("diff"), _dest(res)) if res.get("diff") else ""))
            state = "changed"
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            why = str(res.get("msg", "failed"))
            for sub in (res.get("failed_modules") or {}).values():   # fact gathering wraps the real error
                why += " " + str(sub.get("module_stderr") or sub.get("msg") or "")[:300]
            s.messages.append(f"{label}: {' '.join(why.split())}")
        elif kind == "runner_on_unreachable":
            s.messages.append(f"unreachable: {' '.join(str(res.get('msg', '')).split())}")
        if self.progress:
            self.progress(host, label, state)
        return True


def ssh_settings(options: "FleetOptions | None", control_dir: Path) -> tuple[dict[str, str], int | None]:
    """The fleet options as Ansible settings: (environment for ansible-playbook, forks).

    ssh_args come first on OpenSSH's command line, and OpenSSH keeps the first value of an option, so
    --known-hosts and the host-key policy win over an inventory's ansible_ssh_common_args. The control
    sockets live in a directory of this run: a master left by an earlier run (another known_hosts)
    would otherwise skip the host-key check. Keys given by the inventory still win over --identity.
    """
    env = {"ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir)}
    if options is None:
        return env, None
    policy = "accept-new" if options.accept_new_host_keys else "yes"
    args = ["-C", "-o", "ControlMaster=auto", "-o", "ControlPersist=60s", "-o", f"StrictHostKeyChecking={policy}"]
    if options.known_hosts is not None:
        args += ["-o", f"UserKnownHostsFile={Path(options.known_hosts).expanduser().resolve()}"]
    env.update({"ANSIBLE_SSH_ARGS": shlex.join(args), "ANSIBLE_HOST_KEY_CHECKING": "True",
                "ANSIBLE_TIMEOUT": str(max(1, math.ceil(options.connect_timeout_s)))})
    if options.identity_file is not None:
        env["ANSIBLE_PRIVATE_KEY_FILE"] = str(Path(options.identity_file).expanduser().resolve())
    if options.user:
        env["ANSIBLE_REMOTE_USER"] = options.user
    return env, options.concurrency


def parse_extra_vars(items: list[str] | None) -> tuple[dict[str, Any], list[str]]:
    """`-e` values as ansible-playbook reads them: (variables, @files). key=value pairs and inline
    YAML/JSON become variables (handed to ansible-runner's extravars file, not its command line, so
    a value never shows in the process list); @FILE stays a file reference."""
    from ansible.parsing.splitter import parse_kv

    merged: dict[str, Any] = {}
    files: list[str] = []
    for item in items or []:
        text = item.strip()
        if text.startswith("@"):
            path = Path(text[1:]).expanduser()
            if not path.is_file():
                raise ConfigError(f"-e {item}: no such file")
            files.append(str(path.resolve()))
        elif text.startswith(("{", "[")):
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise ConfigError(f"-e {item}: not valid YAML/JSON ({' '.join(str(e).split())})") from None
            if not isinstance(value, dict):
                raise ConfigError(f"-e {item}: inline variables must be a mapping")
            merged.update(value)
        else:
            kv = parse_kv(text)
            if not kv or "_raw_params" in kv:
                raise ConfigError(f"-e {item}: expected key=value, inline YAML/JSON or @FILE")
            merged.update(kv)
    return merged, files


def run_playbook(inventory: Path, private_data_dir: Path, hosts: list[str], *, batch: int = 1,
                 check: bool = False, diff: bool = False, tags: str | None = None,
                 timeout_s: int | None = None, extravars: dict[str, Any] | None = None,
                 extravar_files: list[str] | None = None, verbosity: int = 0,
                 fleet: "FleetOptions | None" = None,
                 playbook: Path | None = None, progress: Optional[ProgressFn] = None) -> PlaybookRun:
    """Run site.yml on these hosts with ansible-runner; the private data dir must not exist yet."""
    import ansible_runner

    private_data_dir = private_data_dir.resolve()
    private_data_dir.mkdir(parents=True, exist_ok=False)   # fresh: no env file of another run
    run = PlaybookRun(batch, hosts, private_data_dir)
    run.summaries = {h: HostSummary(h) for h in hosts}
    flags = [f for f, on in (("--check", check), ("--diff", diff)) if on]
    for f in extravar_files or []:
        flags += ["-e", "@" + f]
    # short: a unix socket path is at most 107 bytes, and pytest's or a run dir's paths are long
    control_dir = Path(tempfile.mkdtemp(prefix="ck-ssh-"))
    ssh_env, forks = ssh_settings(fleet, control_dir)
    try:
        r = ansible_runner.run(
            private_data_dir=str(private_data_dir),
            ident="provision",
            playbook=str((playbook or site_playbook()).resolve()),
            inventory=str(Path(inventory).resolve()),
            limit=",".join(hosts),
            tags=tags or None,
            cmdline=shlex.join(flags) or None,
            extravars=json.loads(json.dumps(extravars)) if extravars else None,
            forks=forks,
            verbosity=verbosity or None,
            timeout=timeout_s,
            quiet=True,
            event_handler=EventCollector(run.summaries, progress),
            envvars={"ANSIBLE_PIPELINING": "True", "ANSIBLE_RETRY_FILES_ENABLED": "False",
                     "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", **ssh_env},
        )
    finally:
        shutil.rmtree(control_dir, ignore_errors=True)
    run.status, run.rc = r.status, r.rc
    stats = r.stats or {}
    for h, s in run.summaries.items():
        s.ok = int((stats.get("ok") or {}).get(h, 0))
        s.changed = int((stats.get("changed") or {}).get(h, 0))
        s.failed = int((stats.get("failures") or {}).get(h, 0))
        s.unreachable = int((stats.get("dark") or {}).get(h, 0))
        s.skipped = int((stats.get("skipped") or {}).get(h, 0))
    if r.status == "timeout":
        for s in run.summaries.values():
            s.messages.append(f"the run passed its timeout of {timeout_s} s and was stopped")
    return run


def provision_targets(inventory: Path, limit: str | None) -> list[HostSpec]:
    """Hosts site.yml provisions, after config and version-coherence checks (ConfigError on any)."""
    from clusterkit.versions import coherence_problems, is_skipped

    inv, _ = load_inventory(inventory)
    hosts = [h for h in inv.limit(limit).hosts if not is_skipped(h)]
    if not hosts:
        raise ConfigError(f"{inventory}: no host to provision (bastion and clusterkit_skip hosts are left out)")
    problems = coherence_problems(inv.hosts, source=str(inventory))
    if problems:
        more = f" (+{len(problems) - 1} more; run 'clusterkit inventory check')" if len(problems) > 1 else ""
        raise ConfigError(str(problems[0]) + more)
    return hosts


def provision(inventory: Path, run_dir: Path, *, limit: str | None = None, check: bool = False,
              diff: bool = False, tags: str | None = None, serial: int | None = None, verify: bool = True,
              timeout_s: int | None = None, extravars: dict[str, Any] | None = None,
              extra_vars: list[str] | None = None, verbosity: int = 0, fleet: "FleetOptions | None" = None,
              verify_suite: str = "quick", verify_fn: VerifyFn | None = None, verify_kwargs: dict[str, Any] | None = None,
              progress: Optional[ProgressFn] = None,
              on_batch: Optional[Callable[[PlaybookRun], None]] = None) -> ProvisionResult:
    """Provision in batches; stop at the first batch that fails its playbook or its health gate.

    The gate is `verify_fn` (clusterkit.pipeline.verify_inventory) with `verify_suite` on the batch's hosts.
    `fleet` (the SSH options) reaches Ansible (known_hosts, host-key policy, key, forks) and the gate;
    `extra_vars` are `-e` values as ansible-playbook takes them, `verbosity` its -v count.
    """
    if serial is not None and serial < 1:
        raise ConfigError("--serial must be at least 1")
    if timeout_s is not None and timeout_s < 1:
        raise ConfigError("--timeout must be at least 1 second")
    cli_vars, var_files = parse_extra_vars(extra_vars)
    hosts = [h.name for h in provision_targets(inventory, limit)]
    size = serial or len(hosts)
    batches = [hosts[i:i + size] for i in range(0, len(hosts), size)]
    run_dir = Path(run_dir).resolve()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    result = ProvisionResult(run_dir, check)
    if verify and not check and verify_fn is None:
        from clusterkit.pipeline import verify_inventory as verify_fn
    for i, names in enumerate(batches, 1):
        pdd = run_dir / f"{stamp}-batch{i:03d}"
        n = 1
        while pdd.exists():   # two runs in the same second
            n += 1
            pdd = run_dir / f"{stamp}.{n}-batch{i:03d}"
        run = run_playbook(inventory, pdd, names, batch=i, check=check, diff=diff, tags=tags,
                           timeout_s=timeout_s, extravars={**(extravars or {}), **cli_vars},
                           extravar_files=var_files, verbosity=verbosity, fleet=fleet, progress=progress)
        result.batches.append(run)
        if not run.failed():
            if check:
                run.verify_skipped = "check mode changed nothing"
            elif not verify:
                run.verify_skipped = "--no-verify"
            else:
                gate_kwargs = {**({"fleet_options": fleet} if fleet is not None else {}), **(verify_kwargs or {})}
                run.verify = verify_fn(str(inventory), suite=verify_suite, limit=",".join(names), **gate_kwargs)
        if on_batch:
            on_batch(run)
        if run.failed():
            result.pending = batches[i:]
            break
    return result
