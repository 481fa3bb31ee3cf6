"""god as a systemd unit: start it on demand (the way `pm2` spawns its daemon, but through systemd), stop it,
and find its unit file."""

from __future__ import annotations

import os
import socket
import sys
import time

from pmsd.context import Context
from pmsd.definition.god_unit import GOD_UNIT_HEAD, god_unit_text
from pmsd.errors import ExitStatus, PmsdError
from pmsd.model.status import exit_detail
from pmsd.state.atomic import write_if_changed
from pmsd.state.paths import socket_path
from pmsd.systemd.bus import UnitGone
from pmsd.systemd.jobs import stop_and_wait
from pmsd.systemd.names import GOD_UNIT
from pmsd.systemd.paths import journalctl_command, runtime_unit_dir
from pmsd.systemd.states import ActiveState, ServiceState

GOD_START_S = 5.0  # how long a command waits for a god it had to start

PACKAGED_USER_DIRS = ("/etc/systemd/user", "/usr/local/lib/systemd/user", "/usr/lib/systemd/user",
                      "/lib/systemd/user")
PACKAGED_SYSTEM_DIRS = ("/etc/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system",
                        "/lib/systemd/system")


def god_disabled(ctx: Context) -> bool:
    return ctx.god_disabled


def runtime_unit_path(ctx: Context) -> str:
    return os.path.join(runtime_unit_dir(ctx.user, ctx.environ), GOD_UNIT)


def packaged_unit(ctx: Context) -> str | None:
    home_dir = os.path.join(ctx.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "systemd",
                            "user")
    dirs = (home_dir, *PACKAGED_USER_DIRS) if ctx.user else PACKAGED_SYSTEM_DIRS
    for directory in dirs:
        path = os.path.join(directory, GOD_UNIT)
        if os.path.exists(path):
            return path
    return None


def god_command() -> str:
    """This interpreter, as invoked: a venv's (or pipx's) `python` is a symlink to the base interpreter, and
    resolving it would leave the venv, where pmsd is installed (god then crash-loops on `No module named
    'pmsd'`). Running the symlink keeps the venv: Python finds pyvenv.cfg beside it. -P (Python >= 3.11): the
    working directory (the user's home) is not put first on sys.path, where a checkout in ~/pmsd would shadow
    the installed package (god then failed with "cannot import name '__version__' from 'pmsd'")."""
    return f"{os.path.abspath(sys.executable)} -P -m pmsd.god"


def _install_runtime_unit(ctx: Context) -> bool:
    """Write pmsd-god.service for this interpreter; True when the file changed (systemd must reload)."""
    return write_if_changed(runtime_unit_path(ctx), god_unit_text(ctx.user, god_command()))


def ensure_god(ctx: Context) -> None:
    """Ask systemd to start god if it is not running. A god already running costs one StartUnit (a no-op job);
    one that is not is waited for (about 0.2 s, at most GOD_START_S), so that a god that cannot start is
    reported now, with systemd's reason. Never fails a command: apps do not need god."""
    if god_disabled(ctx) or ctx.run_by_god:
        return
    try:
        if _start(ctx):
            _wait_started(ctx, GOD_START_S)
    except PmsdError as error:
        if error.status in (ExitStatus.NO_SYSTEMD, ExitStatus.PERMISSION):
            raise  # the command itself cannot work either: one error, not a warning and the same error
        ctx.warnings.append(f"{error.message}; apps run without it" + (f" ({error.hint})" if error.hint else ""))


def remove_shadowing_runtime_unit(ctx: Context) -> bool:
    """Remove the god unit a pip-installed pmsd wrote to the runtime directory once a packaged one exists: the
    runtime directory comes first in systemd's search path (systemd.unit(5), "Unit File Load Path"), so the
    old file would keep god on the venv's code after the distro package is installed. Only a file pmsd wrote
    (its Description) is removed. True when one was (systemd must reload)."""
    path = runtime_unit_path(ctx)
    try:
        with open(path, encoding="utf-8") as file:
            ours = file.read(4096).startswith(GOD_UNIT_HEAD)
    except OSError:
        return False
    if ours:
        os.unlink(path)
    return ours


def _start(ctx: Context) -> bool:
    """StartUnit god; True when it was not running (so the caller may wait for it)."""
    manager = ctx.manager
    if packaged_unit(ctx) is None:
        if _install_runtime_unit(ctx):
            manager.reload()
    elif remove_shadowing_runtime_unit(ctx):
        manager.reload()
    # One ListUnitsByPatterns call: this runs on every start and restart, and god is usually up.
    active = next((unit.active_state for unit in manager.list_units([GOD_UNIT])), ActiveState.INACTIVE)
    if active == ActiveState.ACTIVE:
        return False
    if active == ActiveState.FAILED:
        manager.reset_failed(GOD_UNIT)  # a god that gave up earlier (start limit) may start again now
    try:
        manager.start_unit(GOD_UNIT)
    except UnitGone:
        manager.reload()
        manager.start_unit(GOD_UNIT)
    return True


def _wait_started(ctx: Context, timeout: float) -> None:
    """Until god is active (READY=1: Type=notify); PmsdError with systemd's reason when the god started for
    this command exits first, or gave up."""
    manager = ctx.manager
    asked_usec = int(time.time() * 1_000_000)
    deadline = time.monotonic() + timeout
    while True:
        state = manager.service_state(GOD_UNIT)
        if state is not None and state.active_state == ActiveState.ACTIVE:
            return
        failure = start_failure(state, asked_usec)
        if failure is not None or time.monotonic() > deadline:
            detail = failure or f"still {state.active_state if state else 'not loaded'} after {timeout:g} s"
            raise PmsdError(f"pmsd's god daemon cannot start: {detail}",
                            f"see `{journalctl_command(ctx.user, GOD_UNIT)}`")
        time.sleep(0.01)


def start_failure(state: ServiceState | None, asked_usec: int) -> str | None:
    """Why god, started at `asked_usec`, is not coming up; None while it may still."""
    if state is None:
        return f"systemd has no unit {GOD_UNIT}"
    if state.active_state == ActiveState.FAILED:
        return exit_detail(state)
    # Restart=always: after a crash the unit waits in auto-restart with the exit status of the run that
    # ended. That run is ours when it started after we asked (ExecMainStartTimestamp).
    if state.exec_main_code and state.exec_main_start_usec >= asked_usec:
        return exit_detail(state)
    return None


def start_and_wait(ctx: Context, timeout: float = 15.0) -> None:
    """Start god (even with PMSD_NO_GOD: the caller asked for it) and wait until its socket answers."""
    if _start(ctx):
        _wait_started(ctx, timeout)
    path = socket_path(ctx.user, ctx.environ)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.connect(path)
            return
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise PmsdError(f"pmsd's god daemon did not open {path} within {timeout:g} s",
                                f"see `{journalctl_command(ctx.user, GOD_UNIT)}`") from None
            time.sleep(0.02)


def stop_god(ctx: Context, timeout: float = 15.0) -> bool:
    """Stop god; True if it was running."""
    manager = ctx.manager
    state = manager.service_state(GOD_UNIT)
    if state is not None and state.active_state == ActiveState.FAILED:
        manager.reset_failed(GOD_UNIT)  # a god that could not start leaves nothing behind either
    if state is None or not state.running:
        return False
    stop_and_wait(manager, GOD_UNIT, timeout, "god to stop")
    return True
