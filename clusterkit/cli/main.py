"""The `clusterkit` command. Each verb lives in its own module of this package
and exposes `register(app)`; this module only finds them and maps errors to
exit codes (0 nothing failed, 1 a check failed or a node was lost, 2 usage or
config error with a one-line message)."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import typer

from clusterkit.errors import ConfigError

app = typer.Typer(
    name="clusterkit",
    help="Bring up self-hosted A100/H100 GPU clusters and keep them healthy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _register_verbs() -> None:
    import clusterkit.cli as pkg

    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if mod.name in ("main", "common") or mod.name.startswith("_"):
            continue
        m = importlib.import_module(f"clusterkit.cli.{mod.name}")
        m.register(app)


def main(argv: list[str] | None = None) -> None:
    _register_verbs()
    try:
        app(args=argv, standalone_mode=True)
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
