"""Hand a command to god, which runs it as this process would, from modules it already has loaded
(pmsd.god.runner): `pmsd start`, `ls`, `jlist`, `metrics` then cost the work rather than the imports.

The command is handed over only when god takes it before anything is done: if god is not running, declines
(another version, its code changed on disk, the system manager), or the socket fails before it said yes, this
returns None and the CLI runs the command itself. Once god said yes, the command is god's child's: this
process forwards Ctrl-C and termination to it and exits with its status.

Light on purpose, since it is all a handed-over command imports: `_socket` rather than `socket` (whose import
builds its enums, ~3 ms), no `typing` at run time.
"""

from __future__ import annotations

import _socket
import array
import json
import os
import signal
import sys

from pmsd import __version__
from pmsd.state.paths import socket_path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import FrameType
    from typing import Any

IN_GOD = False  # set in god's child (pmsd.god.runner): the command runs there, and is not handed over again
LISTING_COMMANDS = ("ls", "list", "status", "l", "ps", "jlist", "prettylist", "metrics")
CONNECT_TIMEOUT_S = 5.0
# god answers at once (it forks). A god stuck longer is killed by its watchdog (WatchdogSec=10s) with its whole
# cgroup, a child it forked included, and the connection ends: the CLI may then run the command itself. Past
# this, god may still run it, so the CLI must not: it says so and exits.
ACCEPT_TIMEOUT_S = 30.0
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def may_hand_over(argv: Sequence[str]) -> bool:
    """The commands god runs (the CLI asks, god checks again): short ones that are run often, never one that
    goes on until Ctrl-C (following logs), so that god's children stay few and brief. Global options such as
    --system come before the command: argv[0] is the command only for the user manager's."""
    if not argv:
        return False
    command, options = argv[0], argv[1:]
    if command == "start":
        return "--attach" not in options
    if command in ("logs", "log"):
        return "--nostream" in options
    return command in LISTING_COMMANDS and "--watch" not in options


def wanted(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether to try god: a command it runs, god allowed, and this is not god's child already."""
    return not IN_GOD and may_hand_over(argv) and environ.get("PMSD_NO_GOD", "") in ("", "0")


def run_in_god(argv: list[str]) -> int | None:
    """The command's exit status, run by god; None when god did not take it."""
    sock = _connected()
    if sock is None:
        return None
    try:
        request = {"id": 1, "method": "run", "params": {
            "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "umask": _umask(),
            "encoding": getattr(sys.stdout, "encoding", None) or "utf-8", "version": __version__,
            "package": os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mounts": mount_namespace()}}
        payload = json.dumps(request, separators=(",", ":")).encode() + b"\n"
        descriptors = array.array("i", [0, 1, 2]).tobytes()
        sock.sendmsg([payload], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, descriptors)])
        reader = _Lines(sock)
        accepted = _result(reader)
    except TimeoutError:
        sock.close()
        print(f"[pmsd][ERROR] pmsd's god took the command but did not answer in {ACCEPT_TIMEOUT_S:.0f} s",
              file=sys.stderr)
        print("  hint: `pmsd ls` shows whether it was done; `journalctl --user -u pmsd-god` says what god is doing",
              file=sys.stderr)
        return 1
    except (OSError, ValueError):
        sock.close()
        return None
    if not accepted or not isinstance(accepted.get("pid"), int):
        sock.close()
        return None
    return _wait(sock, reader, accepted["pid"])


class _Lines:
    """Reply lines from the socket (what socket.makefile().readline() would give, without importing socket)."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def readline(self) -> bytes:
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                line, self.buffer = self.buffer, b""
                return line
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"


def mount_namespace() -> str:
    """This process's mount namespace ("mnt:[4026531841]"): god runs a command only where it sees the same files."""
    try:
        return os.readlink("/proc/self/ns/mnt")
    except OSError:
        return ""


def _connected() -> _socket.socket | None:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(CONNECT_TIMEOUT_S)
        sock.connect(socket_path(True, os.environ))
    except OSError:
        sock.close()
        return None
    sock.settimeout(ACCEPT_TIMEOUT_S)
    return sock


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _result(reader: _Lines) -> dict[str, Any] | None:
    """The next reply's result; None for an error (god declined) or a connection that ended."""
    line = reader.readline()
    if not line:
        return None
    message = json.loads(line)
    result = message.get("result") if isinstance(message, dict) else None
    return result if isinstance(result, dict) else None


def _wait(sock: _socket.socket, reader: _Lines, pid: int) -> int:
    """Forward signals to god's child while it runs; its exit status, as a CLI's (128 + N for signal N)."""

    def forward(number: int, _frame: FrameType | None) -> None:
        try:  # noqa: SIM105  (contextlib is one more import)
            os.kill(pid, number)  # god's child, run for this command as this user
        except ProcessLookupError:
            pass  # it has just ended: its status is on the way

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
