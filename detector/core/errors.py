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


class ModelError(UserError):
    """A model cannot be loaded or used; the message says why, in one line."""


class BadArrays(ValueError):
    """Stored forest arrays that prediction must not read; the message says which, in one line."""


class UnsafeModel(ValueError):
    """A fitted array that prediction would read is malformed; the message says which, in one line."""


class BadNovelty(ValueError):
    """A novelty file that `Novelty.save` cannot have written: wrong shapes, non-finite numbers."""


class BadMachineRows(ValueError):
    """A machine-rows file that `MachineRows.save` cannot have written."""


class BadAdaptation(ValueError):
    """A profile's adaptation that is not one `cross_fit` can have made (the message says which part)."""


class ProfileError(UserError):
    """A calibration profile that cannot be used: not a profile, damaged, or made for another model."""


class CalibrationError(UserError):
    """The human texts cannot set thresholds for the rate asked (too few); the message says why."""


class ServeError(UserError):
    """The server cannot start as asked (exposed without a token, port taken, extra missing): one line, exit 2."""


class OutputError(UserError):
    """An output path that would overwrite or clobber something the user has."""


class DataError(UserError):
    """A dataset cannot be used as given; the message says why, in one line."""


class InvalidField(ValueError):
    """One field of a profile is missing or wrong; the message names it."""


class LMUnavailable(UserError):
    """The requested language model cannot be loaded here (not installed, no network, bad path)."""
