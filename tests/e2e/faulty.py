"""Run one pmsd command with a fault injected at one of its steps (the reliability suite, issue 19).

`python -m tests.e2e.faulty ARGS...` runs `pmsd ARGS...` in this process, the way the CLI runs it when god does
not (no handover: the steps must happen here to be counted), and counts its *steps*: every call that changes
something outside the process: a job or a change asked of systemd (pmsd.systemd.bus.Manager's methods that
change units), a file committed (os.replace: pmsd.state.atomic's rename), a file removed (os.unlink, except
pmsd's own temporaries) and a request sent to god. The environment says what to do:

- PMSD_FAULT_TRACE=FILE: write one line per step (`kind name`), and change nothing: the dry run that finds how
  many steps there are, and which.
- PMSD_FAULT=KIND@N: just before step N (1-based), KIND happens:
  - `kill-cli`: this process is killed with SIGKILL (the user's Ctrl-\\, the OOM killer, a lost SSH session);
  - `kill-god`: god's main process (PMSD_FAULT_GOD_PID, started by the test) is killed with SIGKILL, and the
    command goes on;
  - `reexec`: the manager re-executes itself (daemon-reexec, as a systemd upgrade does: every D-Bus client is
    cut off and jobs are carried over), and the command goes on.

Only the test's own processes are signalled: this one, and the god the test started.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from pmsd.api import godlink
from pmsd.cli import delegate
from pmsd.cli.main import main
from pmsd.systemd.bus import Manager

MANAGER_CHANGES = ("start_transient", "stop", "start_unit", "try_restart_unit", "kill_unit", "reload", "reset_failed")


class Steps:
    def __init__(self, trace: str | None, fault: str | None) -> None:
        self.trace = trace
        self.kind, _, at = (fault or "").partition("@")
        self.at = int(at) if at else 0
        self.count = 0

    def step(self, kind: str, name: str) -> None:
        self.count += 1
        if self.trace:
            with open(self.trace, "a", encoding="utf-8") as handle:
                handle.write(f"{kind} {name}\n")
        if self.count != self.at:
            return
        if self.kind == "kill-cli":
            os.kill(os.getpid(), signal.SIGKILL)
        elif self.kind == "kill-god":
            os.kill(int(os.environ["PMSD_FAULT_GOD_PID"]), signal.SIGKILL)
        elif self.kind == "reexec":
            subprocess.run(["systemctl", "--user", "daemon-reexec"], check=True, timeout=60)
        else:
            raise SystemExit(f"unknown fault {self.kind!r}")


def _counted(steps: Steps, kind: str, name: Callable[..., str], function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        steps.step(kind, name(*args, **kwargs))
        return function(*args, **kwargs)

    return wrapper


def _unit_of(_manager: Manager, unit: str = "", *_args: Any, **_kwargs: Any) -> str:
    return unit


def _file(path: Any, *_args: Any, **_kwargs: Any) -> str:
    return os.path.basename(os.fsdecode(path))


def _target(_source: Any, target: Any, *_args: Any, **_kwargs: Any) -> str:
    return _file(target)


def _method(_connection: Any, method: str, **_params: Any) -> str:
    return method


def install(steps: Steps) -> None:
    for method in MANAGER_CHANGES:
        setattr(Manager, method, _counted(steps, f"systemd.{method}", _unit_of, getattr(Manager, method)))
    os.replace = _counted(steps, "commit", _target, os.replace)
    real_unlink = os.unlink

    def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        if not os.fsdecode(path).endswith(".tmp"):
            steps.step("remove", _file(path))
        real_unlink(path, *args, **kwargs)

    os.unlink = unlink
    godlink.GodConnection.ask = _counted(steps, "god", _method, godlink.GodConnection.ask)  # type: ignore[method-assign]


if __name__ == "__main__":
    install(Steps(os.environ.get("PMSD_FAULT_TRACE"), os.environ.get("PMSD_FAULT")))
    delegate.IN_GOD = True  # run the command here, where its steps are counted, not in god's child
    sys.exit(main(sys.argv[1:]))
