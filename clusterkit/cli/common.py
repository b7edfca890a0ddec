"""Options shared by the verbs (the SSH ones as one FleetOptions), and output helpers."""

from __future__ import annotations

import functools
import inspect
import math
import os
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import typer

from clusterkit.errors import ConfigError

if TYPE_CHECKING:
    from clusterkit.fleet.collect import FleetOptions


class Format(str, Enum):
    table = "table"
    json = "json"
    junit = "junit"


# Option names follow Ansible and pdsh where they overlap: -i inventory ($ANSIBLE_INVENTORY), -l/--limit
# (@FILE reads hosts from a file, as ansible's retry files), -f/--forks, -u/--user, --private-key, -o output.
# tests/unit/core/test_cli_options.py walks every verb and holds them to it.
InventoryOpt = typer.Option(None, "--inventory", "-i", help="Ansible inventory (INI or YAML); default: "
                                                           "$ANSIBLE_INVENTORY.")
ProfileOpt = typer.Option(None, "--profile", help="Profile for every host (default: from each host's gpu_model).")
SuiteOpt = typer.Option("quick", "--suite", help="Suite name (quick, full) or a suite .toml file.")
FormatOpt = typer.Option(None, "--format", help="table (default on a terminal), json or junit.")
OutputOpt = typer.Option(None, "--output", "-o", help="Write the report to this file (failed.txt goes beside it).")
LimitOpt = typer.Option(None, "--limit", "-l", help="Host name glob(s) or group(s), comma separated; @FILE reads "
                        "host names from a file, one a line (@failed.txt reruns what failed).")
DbOpt = typer.Option(None, "--db", help="History database (default: under $XDG_DATA_HOME).")
ChecksOpt = typer.Option(None, "--checks", help="Run only the checks matching these globs, comma separated "
                         "('gpu.*,fabric.ports'), from every check; the suite's parameters still apply.")
SkipOpt = typer.Option(None, "--skip", help="Leave out the checks matching these globs, comma separated.")


def env_inventory(path: Optional[Path]) -> Optional[Path]:
    """-i, else $ANSIBLE_INVENTORY (as ansible-playbook reads it), else None."""
    if path is not None:
        return path
    env = os.environ.get("ANSIBLE_INVENTORY", "").strip()
    if not env:
        return None
    if "," in env and not Path(env).exists():
        raise ConfigError(f"$ANSIBLE_INVENTORY '{env}' names several inventories: give one with -i")
    return Path(env).expanduser()


def checked_number(option: str, value: float, *, low: float = 0.0, high: float = math.inf,
                   low_inclusive: bool = True, unit: str = "") -> float:
    """A numeric option's value; NaN, infinity or a value out of range is a ConfigError (exit 2).
    `nan` compares false with everything, so a plain `value <= 0` test would let it through."""
    ok = math.isfinite(value) and (value >= low if low_inclusive else value > low) and value <= high
    if not ok:
        lo = f"{'at least' if low_inclusive else 'more than'} {low:g}"
        hi = f" and at most {high:g}" if math.isfinite(high) else ""
        raise ConfigError(f"{option} must be a finite number {lo}{hi}{' ' + unit if unit else ''}, got {value!r}")
    return value


def require_inventory(path: Optional[Path]) -> Path:
    found = env_inventory(path)
    if found is None:
        raise ConfigError("missing option --inventory/-i (or $ANSIBLE_INVENTORY, or --simulate)")
    return found


def refuse_with_simulate(simulate: bool, *, inventory: Optional[Path] = None, limit: Optional[str] = None,
                         nodes: Optional[int] = None, seed: Optional[int] = None) -> None:
    """`--simulate` generates its own cluster: options about a real one (-i, --limit) are refused, not
    ignored ($ANSIBLE_INVENTORY, from the environment, gives way); without it, its own (--nodes, --seed)
    are. The option values are None unless typed."""
    if simulate:
        bad = [n for n, v in (("-i/--inventory", inventory), ("--limit", limit)) if v is not None]
        if bad:
            raise ConfigError(f"{' and '.join(bad)} cannot go with --simulate (it generates its own cluster): "
                              "drop one of them")
    else:
        bad = [n for n, v in (("--nodes", nodes), ("--seed", seed)) if v is not None]
        if bad:
            raise ConfigError(f"{' and '.join(bad)} only go with --simulate")


def emit(text: str, output: Optional[Path]) -> None:
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)


# The SSH options of every verb that reaches the nodes (verify, collect, provision, burnin), declared once.
# parameter name -> (type, typer option); the names are fleet_options()'s parameters
_OPTIONS: dict[str, tuple[Any, Any]] = {
    "known_hosts": (Optional[Path], typer.Option(
        None, "--known-hosts", help="known_hosts file (default ~/.ssh/known_hosts).")),
    "accept_new_host_keys": (bool, typer.Option(
        False, "--accept-new-host-keys", help="Accept and record host keys not yet known (a changed key is always refused).")),
    "connect_timeout": (float, typer.Option(10.0, "--connect-timeout", help="SSH connect timeout per host, seconds.")),
    "deadline": (float, typer.Option(1800.0, "--deadline", help="Global deadline for the whole collection, seconds.")),
    "concurrency": (int, typer.Option(64, "--forks", "-f", "--concurrency",
                                      help="Hosts worked on at once (Ansible's forks).")),
    "probe_timeout": (Optional[float], typer.Option(
        None, "--probe-timeout", help="Cap every probe's own timeout, seconds (a quick pass over a suspect fleet).")),
    "identity": (Optional[Path], typer.Option(
        None, "--private-key", "--key-file", "--identity", help="SSH private key (default: the inventory's or "
                                                               "ssh-agent).")),
    "user": (Optional[str], typer.Option(None, "--user", "-u", help="SSH user where the inventory names none.")),
}


def fleet_options(known_hosts: Optional[Path] = None, accept_new_host_keys: bool = False,
                  connect_timeout: float = 10.0, deadline: float = 1800.0, concurrency: int = 64,
                  identity: Optional[Path] = None, probe_timeout: Optional[float] = None,
                  user: Optional[str] = None) -> "FleetOptions":
    from clusterkit.fleet.collect import FleetOptions

    checked_number("--forks", concurrency, low=1)
    checked_number("--connect-timeout", connect_timeout, low_inclusive=False, unit="(seconds)")
    checked_number("--deadline", deadline, low_inclusive=False, unit="(seconds)")
    if probe_timeout is not None:
        checked_number("--probe-timeout", probe_timeout, low_inclusive=False, unit="(seconds)")
    return FleetOptions(known_hosts=known_hosts, accept_new_host_keys=accept_new_host_keys,
                        connect_timeout_s=connect_timeout, deadline_s=deadline, concurrency=concurrency,
                        identity_file=identity, probe_timeout_s=probe_timeout, user=user)


def option_group(param: str, options: dict[str, tuple[Any, Any]],
                 build: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator giving a typer command the `options` (name -> (type, typer option)); the command
    receives `build(**their values)` as its `param` argument."""

    def deco(command: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(command)
        own = [p for name, p in sig.parameters.items() if name != param]
        extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=typ)
                 for name, (typ, opt) in options.items()]

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in options}
            return command(**{param: build(**values)}, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=own + extra)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {k: v for k, v in command.__annotations__.items() if k != param}
        wrapper.__annotations__.update({name: typ for name, (typ, _) in options.items()})
        return wrapper

    return deco


# Give a typer command the SSH options; it receives them as one `fleet: FleetOptions` argument.
with_ssh_options = option_group("fleet", _OPTIONS, fleet_options)
