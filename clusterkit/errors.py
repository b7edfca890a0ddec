"""Errors the CLI turns into exit code 2 with a one-line message."""

from __future__ import annotations


class ConfigError(Exception):
    """Bad inventory, profile, suite or option: the user must fix an input.

    The message is shown as is, on one line, so it names the file (and host or
    key) itself.
    """
