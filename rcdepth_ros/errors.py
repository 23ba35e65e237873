"""Errors of the user, as opposed to bugs of ours (STYLE 14).

A :class:`UserError` is something the user can fix: a file that is missing, unreadable or of
the wrong kind, or an argument out of range. ``rcdepth`` prints it as one line (exit code 1);
any other exception is a bug and prints its traceback. Each class also derives from the
builtin that callers already catch (``ValueError``, ``FileNotFoundError``).
"""

from __future__ import annotations


class UserError(Exception):
    """A failure the user can act on; its message is the whole report."""


class BadInputFile(UserError, ValueError):
    """A file exists but cannot be read: corrupt, truncated, wrong format or mismatched."""


class MissingData(UserError, FileNotFoundError):
    """A file or folder the command needs does not exist."""


class BadArgument(UserError, ValueError):
    """A command-line argument or parameter value that cannot be used."""
