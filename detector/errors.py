"""The one exception family the CLI turns into a one-line message (exit 2) instead of a traceback,
and `printable`, which keeps what a user named (file names, record fields) from driving the terminal."""

import re

# C0/C1 control characters (ESC starts ANSI sequences) and bidi overrides: never raw on a terminal.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class UserError(Exception):
    """Something the user can fix: a missing package, a bad model file, unusable data."""


def printable(text: str) -> str:
    """Text safe to print on a terminal: control characters shown as escapes (\\x1b, not ESC)."""
    return _CONTROL.sub(lambda m: ascii(m.group())[1:-1], str(text))


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, cut to `limit` characters; its type's name when the
    message is empty (a bare `str(err).splitlines()[0]` raises IndexError there)."""
    lines = str(err).splitlines()
    return lines[0][:limit] if lines and lines[0].strip() else type(err).__name__
