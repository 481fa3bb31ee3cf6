"""Hand a command to god, which runs it as this process would, from modules it already has loaded
(pmsd.god.runner): `pmsd start` then costs the work rather than the imports. Light on purpose: this module
imports only what a connection needs.

The command is handed over only when god takes it before anything is done: if god is not running, declines
(another version, its code changed on disk, the system manager), or the socket fails before it said yes, this
returns None and the CLI runs the command itself. Once god said yes, the command is god's child's: this
process forwards Ctrl-C and termination to it and exits with its status.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

from pmsd import __version__
from pmsd.state.paths import socket_path

IN_GOD = False  # set in god's child (pmsd.god.runner): the command runs there, and is not handed over again
HANDED_OVER = ("start",)  # pmsd.god.runner.RUN_COMMANDS: what god accepts
ACCEPT_TIMEOUT_S = 5.0  # god answers at once (a fork); longer means a god too busy to be worth waiting for
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def wanted(argv: Sequence[str], environ: dict[str, str] | os._Environ[str]) -> bool:
    """Whether to try god: a handed-over command of the user manager (global options such as --system come
    before the command, so argv[0] is the command), god allowed, and not one that follows logs afterwards."""
    return (not IN_GOD and bool(argv) and argv[0] in HANDED_OVER and environ.get("PMSD_NO_GOD", "") in ("", "0")
            and "--attach" not in argv)


def run_in_god(argv: list[str]) -> int | None:
    """The command's exit status, run by god; None when god did not take it."""
    path = socket_path(True, os.environ)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(ACCEPT_TIMEOUT_S)
        sock.connect(path)
        request = {"id": 1, "method": "run", "params": {
            "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "umask": _umask(),
            "encoding": getattr(sys.stdout, "encoding", None) or "utf-8", "version": __version__,
            "package": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}}
        payload = json.dumps(request, separators=(",", ":")).encode() + b"\n"
        socket.send_fds(sock, [payload], [0, 1, 2])
        reader = sock.makefile("rb")
        accepted = _result(reader)
    except (OSError, ValueError):
        sock.close()
        return None
    if not accepted or not isinstance(accepted.get("pid"), int):
        sock.close()
        return None
    return _wait(sock, reader, accepted["pid"])


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _result(reader: Any) -> dict[str, Any] | None:
    """The next reply's result; None for an error (god declined) or a connection that ended."""
    line = reader.readline()
    if not line:
        return None
    message = json.loads(line)
    result = message.get("result") if isinstance(message, dict) else None
    return result if isinstance(result, dict) else None


def _wait(sock: socket.socket, reader: Any, pid: int) -> int:
    """Forward signals to god's child while it runs; its exit status, as a CLI's (128 + N for signal N)."""

    def forward(number: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, number)  # god's child, run for this command as this user

    previous = {number: signal.signal(number, forward) for number in FORWARDED_SIGNALS}
    try:
        sock.settimeout(None)
        while True:
            try:
                result = _result(reader)
            except (OSError, ValueError):
                result = None
            if result is None:
                print("[pmsd][ERROR] pmsd's god stopped while it ran the command; it may be partly done",
                      file=sys.stderr)
                print("  hint: `pmsd ls` shows what is there; run the command again", file=sys.stderr)
                return 1
            if isinstance(result.get("exit"), int):
                status: int = result["exit"]
                return 128 - status if status < 0 else status
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        sock.close()
