"""god runs a CLI command for its caller (protocol method "run"): a forked copy of god, which has the CLI's
modules imported and warm, takes the caller's terminal (its stdin, stdout and stderr, passed over the socket
with SCM_RIGHTS), working directory, umask and environment, and runs `pmsd.cli.main.main(argv)` exactly as the
CLI would have. What `pmsd start` costs is then the work, not Python importing the settings table, pystemd and
the API (~60 ms of a ~120 ms start, issue 17).

Only where the result cannot differ from the CLI's own run:
- the same uid (the server refuses other peers), and a user manager's god: the system god runs hardened
  (ProtectSystem=full, NoNewPrivileges=yes) where a root CLI is not;
- the same code: the CLI's pmsd package directory and version are god's, and no module god has loaded has
  changed on disk since (an upgrade or an edit without `pmsd update`);
- god has no other thread (a log rotation finishing): fork() copies only the calling thread, and a lock
  another thread held would stay held in the child forever.
Otherwise god declines and the CLI runs the command itself. The child's exit status reaches the CLI from
waitpid() (through a pidfd in god's loop), so a child that is killed is reported too.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import io
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from pmsd import __version__
from pmsd.cli import delegate
from pmsd.cli.main import main
from pmsd.god.loop import Loop

# Imported before the first fork, so that every child finds them loaded (what `pmsd start` imports).
WARM_MODULES = ("pmsd.cli.fast", "pmsd.cli.commands", "pmsd.cli.grammar", "pmsd.api.lifecycle", "pmsd.api.report",
                "pmsd.api.query", "pmsd.api.godlink", "pmsd.api.logs", "pmsd.render.table", "pmsd.render.jlist",
                "pmsd.render.logs", "pmsd.api.metrics", "pmsd.render.metrics")
STOP_DRAIN_S = 30.0  # how long a stopping god waits for the commands it runs (systemd's stop timeout is 90 s)
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _loaded_files() -> dict[str, int]:
    """mtime_ns of the source file of every pmsd module loaded in this process."""
    stamps: dict[str, int] = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if (name == "pmsd" or name.startswith("pmsd.")) and path:
            with contextlib.suppress(OSError):
                stamps[path] = os.stat(path).st_mtime_ns
    return stamps


class CommandRunner:
    """Forks a child per accepted request and reports its exit status to `on_exit(status)`."""

    def __init__(self, loop: Loop, log: Callable[[str], None], user: bool) -> None:
        self.loop = loop
        self.log = log
        self.user = user
        self.stamps: dict[str, int] | None = None  # taken when the modules are warmed
        self.children: set[int] = set()  # running commands, by pid
        self.stopping = False  # god is stopping: it finishes the commands it runs, and takes no new one

    def warm(self) -> None:
        """Import what the children need (once, ~100 ms, in god's idle time after it is ready)."""
        if self.stamps is not None:
            return
        try:
            for module in WARM_MODULES:
                importlib.import_module(module)
        except Exception as error:  # a child would then import it, and fail on its own
            self.log(f"warming the CLI's modules failed: {error}")
        self.stamps = _loaded_files()

    def refusal(self, params: Mapping[str, Any], fds: list[int], client: socket.socket | None = None) -> str | None:
        """Why this request cannot run here, or None. A caller that hung up (Ctrl-C before god answered) is not
        run for: it may be running the command itself."""
        argv = params.get("argv")
        if self.stopping:
            return "god is stopping"
        if not self.user:
            return "the system manager's god runs hardened; the CLI runs system commands itself"
        if not isinstance(argv, list) or not all(isinstance(word, str) for word in argv) or not (
                delegate.may_hand_over(argv)):
            return "god runs only short commands (start, ls, jlist, metrics, logs --nostream)"
        if len(fds) != 3:
            return "expected the caller's stdin, stdout and stderr"
        if params.get("version") != __version__ or params.get("package") != PACKAGE_DIR:
            return "the CLI is another pmsd installation or version than god's"
        if not isinstance(params.get("cwd"), str) or not isinstance(params.get("env"), dict) or not isinstance(
                params.get("umask"), int):
            return "cwd, env and umask are required"
        ours = delegate.mount_namespace()
        if not ours or params.get("mounts") != ours:
            # A CLI in another mount namespace (a unit with PrivateTmp=, a container) sees other files: its
            # paths would not mean the same here.
            return "the CLI runs in another mount namespace"
        if not _peer_waiting(client):
            return "the caller has gone"
        if threading.active_count() > 1:
            return "god is finishing a log rotation in a thread"
        if self._code_changed():
            return "pmsd's code changed on disk since god started (`pmsd update` restarts god on it)"
        return None

    def _code_changed(self) -> bool:
        """Whether a module god has loaded changed on disk since. Modules god loaded after warming up (lazily,
        for its own work) are taken as they are now: loaded moments ago, most likely."""
        self.warm()
        stamps, now = self.stamps or {}, _loaded_files()
        changed = any(now.get(path) != stamp for path, stamp in stamps.items())  # changed, or gone
        self.stamps = {**now, **stamps}
        return changed

    def drain(self, then: Callable[[], None]) -> None:
        """Take no new command; call `then` once the running ones have ended, or after STOP_DRAIN_S."""
        self.stopping = True
        deadline = time.monotonic() + STOP_DRAIN_S

        def check() -> None:
            if self.children and time.monotonic() < deadline:
                self.loop.call_later(0.02, check)
            else:
                then()

        check()

    def run(self, params: Mapping[str, Any], fds: list[int], on_exit: Callable[[int], None]) -> int:
        """Fork the child that runs the command; returns its pid."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()  # else the child would write god's buffered lines to the caller's terminal
        pid = os.fork()
        if pid == 0:  # the child: never returns into god's loop
            _child(params, fds)
        for fd in fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)

        def reap() -> None:
            self.loop.remove_reader(pidfd)
            os.close(pidfd)
            _, wait_status = os.waitpid(pid, 0)
            self.children.discard(pid)
            on_exit(os.waitstatus_to_exitcode(wait_status))

        self.loop.add_reader(pidfd, reap)
        self.children.add(pid)
        return pid


def _peer_waiting(client: socket.socket | None) -> bool:
    if client is None:
        return True
    poller = select.poll()
    poller.register(client.fileno(), select.POLLRDHUP)
    return not poller.poll(0)


def _child(params: Mapping[str, Any], fds: list[int]) -> None:
    status = 1
    # No collection in the child: one would walk every object god has, writing to each page holding one, and
    # copying it (copy-on-write); the child lives for one command, and exits without freeing anything.
    gc.disable()
    try:
        _become_the_cli(params, fds)
        delegate.IN_GOD = True  # the child runs the command: it must not hand it back to god
        status = main(list(params["argv"]))
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    except SystemExit as done:
        status = done.code if isinstance(done.code, int) else 1
    except BaseException:  # a bug: the caller sees its traceback, as from the CLI itself
        with contextlib.suppress(Exception):
            traceback.print_exc()
            sys.stderr.flush()
    finally:
        os._exit(status)


def _become_the_cli(params: Mapping[str, Any], fds: list[int]) -> None:
    """Take the caller's place: its signals' defaults, terminal, directory, umask and environment."""
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)
    for god_handled in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(god_handled, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own: KeyboardInterrupt, exit 130
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    encoding = str(params.get("encoding") or "utf-8")
    # New streams on fds 0-2; god's own objects stay referenced (sys.__stdout__), so none is collected and
    # closes an fd the child uses.
    sys.stdin = io.TextIOWrapper(open(0, "rb", closefd=False), encoding=encoding)  # noqa: SIM115
    for number, name in ((1, "stdout"), (2, "stderr")):
        binary = open(number, "wb", closefd=False)  # noqa: SIM115  (lives as long as the child)
        stream = io.TextIOWrapper(binary, encoding=encoding, errors="backslashreplace" if number == 2 else "strict",
                                  line_buffering=number == 2 or os.isatty(number), write_through=number == 2)
        setattr(sys, name, stream)
    os.chdir(str(params["cwd"]))
    os.umask(int(params["umask"]))
    os.environ.clear()
    os.environ.update({str(key): str(value) for key, value in dict(params["env"]).items()})
    sys.argv = ["pmsd", *params["argv"]]
