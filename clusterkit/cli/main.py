"""The `clusterkit` command. Each verb lives in its own module of this package
and exposes `register(app)`; this module only finds them and maps errors to
exit codes (0 nothing failed, 1 a check failed or a node was lost, 2 usage or
config error with a one-line message)."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from typing import Any

import typer

from clusterkit import __version__
from clusterkit.errors import ConfigError

app = typer.Typer(
    name="clusterkit",
    help="Bring up self-hosted A100/H100 GPU clusters and keep them healthy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"clusterkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print clusterkit's version and exit.")) -> None:
    """Bring up self-hosted A100/H100 GPU clusters and keep them healthy."""


_registered = False


def _register_verbs() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    import clusterkit.cli as pkg

    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if mod.name in ("main", "common") or mod.name.startswith("_"):
            continue
        m = importlib.import_module(f"clusterkit.cli.{mod.name}")
        m.register(app)


def _plain_help(cmd: Any) -> None:
    """Help as ansible and pdsh print it: `-f, --forks INTEGER`, a flag with no value placeholder."""
    if hasattr(cmd, "rich_markup_mode"):
        cmd.rich_markup_mode = None  # type: ignore[attr-defined]
    for sub in getattr(cmd, "commands", {}).values():
        _plain_help(sub)


def command() -> Any:
    """The whole command tree (every verb registered), as click runs it."""
    _register_verbs()
    cmd = typer.main.get_command(app)
    _plain_help(cmd)
    return cmd


def main(argv: list[str] | None = None) -> None:
    cmd = command()
    try:
        cmd.main(args=argv, prog_name="clusterkit", standalone_mode=True)
    except ConfigError as e:
        typer.echo(f"clusterkit: error: {' '.join(str(e).split())}", err=True)
        sys.exit(EXIT_CONFIG)
    except Exception as e:  # a bug: one line for the user, the traceback on request
        if os.environ.get("CLUSTERKIT_DEBUG"):
            raise
        typer.echo(f"clusterkit: internal error: {type(e).__name__}: {e} (set CLUSTERKIT_DEBUG=1 for the traceback)",
                   err=True)
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":
    main()
