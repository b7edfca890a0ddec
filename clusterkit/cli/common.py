"""Options shared by the verbs, and the exit-code decision (only the CLI picks it)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from clusterkit.errors import ConfigError


class Format(str, Enum):
    table = "table"
    json = "json"
    junit = "junit"


InventoryOpt = typer.Option(None, "--inventory", "-i", help="Ansible inventory (INI or YAML).")
ProfileOpt = typer.Option(None, "--profile", help="Profile for every host (default: from each host's gpu_model).")
SuiteOpt = typer.Option("quick", "--suite", help="Suite name (quick, full) or a suite .toml file.")
FormatOpt = typer.Option(None, "--format", "-f", help="table (default on a terminal), json or junit.")
OutputOpt = typer.Option(None, "--output", "-o", help="Write the report to this file.")
LimitOpt = typer.Option(None, "--limit", "-l", help="Host name glob(s) or group(s), comma separated.")


def require_inventory(path: Optional[Path]) -> Path:
    if path is None:
        raise ConfigError("missing option --inventory/-i (or use --simulate)")
    return path


def emit(text: str, output: Optional[Path]) -> None:
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
