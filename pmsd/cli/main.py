"""Entry point: run one command, and route every expected failure through one place.

A PmsdError prints its message and hint and exits with its status; anything else is a bug and keeps its
traceback. PMSD_DEBUG=1 shows tracebacks for PmsdErrors too.
"""

from __future__ import annotations

import os
import sys

from pmsd.cli import delegate

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms of every command god runs)

if TYPE_CHECKING:
    from pmsd.errors import PmsdError

# Commands that take `pmsd start`'s flags (pmsd.cli.grammar), PM2's optional-value ones included.
START_COMMANDS = ("start", "startOrRestart", "startOrReload", "startOrGracefulReload")


def report_error(error: PmsdError) -> int:
    from pmsd.errors import printable  # lazy: as in _run_here, only an error needs it

    colour = sys.stderr.isatty() and "NO_COLOR" not in os.environ
    label = "\x1b[31m[pmsd][ERROR]\x1b[0m" if colour else "[pmsd][ERROR]"
    print(f"{label} {printable(error.message)}", file=sys.stderr)
    if error.hint:
        print(f"  hint: {printable(error.hint)}", file=sys.stderr)
    return int(error.status)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if delegate.wanted(args, os.environ):
        try:
            status = delegate.run_in_god(args)
        except KeyboardInterrupt:
            return 130
        if status is not None:
            return status
    return _run_here(args)


def _run_here(args: list[str]) -> int:
    # lazy: a command god runs for this process (pmsd.cli.delegate) never needs these here (enum is ~2 ms)
    from pmsd.errors import ExitStatus, PmsdError

    try:
        from pmsd.cli.fast import normalize_logs_argv, try_fast_path

        if args and args[0] in ("logs", "log"):
            args = normalize_logs_argv(args)
        command = next((index for index, word in enumerate(args) if not word.startswith("-")), None)
        if command is not None and args[command] in START_COMMANDS:  # after global options (--user, --system)
            from pmsd.cli.grammar import normalize_start_argv

            args = [*args[: command + 1], *normalize_start_argv(args[command + 1 :])]
        status = try_fast_path(args)
        if status is not None:
            return status
        from pmsd.cli.app import run

        return run(args)
    except PmsdError as error:
        if os.environ.get("PMSD_DEBUG"):
            raise
        return report_error(error)
    except PermissionError as error:
        # The file system said no somewhere pmsd did not expect it (a state file of another user, a directory
        # made unreadable): not a bug in pmsd, so no traceback.
        if os.environ.get("PMSD_DEBUG"):
            raise
        return report_error(PmsdError(f"permission denied: {error.filename or error}",
                                      "run pmsd as the user who owns these files (for --system, as root)",
                                      ExitStatus.PERMISSION))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `pmsd jlist | head`: the reader left; not an error worth a traceback.
        sys.stderr.close()
        return int(ExitStatus.OK)
