"""Errors meant for people, and the exit statuses that go with them.

Every failure a user can cause (bad input, no systemd, permission) is a `PmsdError`: the CLI prints its
message and hint and exits with its status, no traceback. Anything else escaping is a bug.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """pmsd's exit statuses; part of the documented interface (README, "Exit statuses")."""

    OK = 0
    ERROR = 1  # the operation failed (an app failed to start, systemd refused a job, ...)
    USAGE = 2  # bad command line or bad definition (ecosystem file, option value)
    NOT_FOUND = 3  # no app, id or namespace matches
    NO_SYSTEMD = 4  # no reachable systemd manager
    PERMISSION = 5  # systemd or the file system said no


class PmsdError(Exception):
    """A failure explained to the person at the terminal: what is wrong, where, and what to do."""

    def __init__(self, message: str, hint: str | None = None, status: ExitStatus = ExitStatus.ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.status = status

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\n  hint: {self.hint}"


class UsageError(PmsdError):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint, ExitStatus.USAGE)


class NotFoundError(PmsdError):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint, ExitStatus.NOT_FOUND)


# Control characters but the newline, as Python escapes them: a value quoted in a message (a file name, a target,
# a key) must not move the cursor, clear the screen or forge a line of its own on the user's terminal.
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0)) if code != 0x0A}


def printable(text: str) -> str:
    """A message as pmsd prints it: control characters (C0 but the newline, DEL, C1) escaped."""
    return text.translate(_CONTROLS)
