"""Parsers: tool output text -> typed records. Pure functions; no I/O, no thresholds."""


class ParseError(ValueError):
    """The text is not usable output of the tool (the message says why)."""
