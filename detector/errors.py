"""The one exception family the CLI turns into a one-line message (exit 2) instead of a traceback."""


class UserError(Exception):
    """Something the user can fix: a missing package, a bad model file, unusable data."""
