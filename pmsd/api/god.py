"""god as a systemd unit: start it on demand (the way `pm2` spawns its daemon, but through systemd), stop it,
and find its unit file."""

from __future__ import annotations

import os
import socket
import sys
import time

from pmsd.context import Context
from pmsd.definition.god_unit import god_unit_text
from pmsd.errors import PmsdError
from pmsd.state.atomic import write_if_changed
from pmsd.state.paths import socket_path
from pmsd.systemd.bus import UnitGone
from pmsd.systemd.jobs import stop_and_wait
from pmsd.systemd.names import GOD_UNIT
from pmsd.systemd.paths import runtime_unit_dir

PACKAGED_USER_DIRS = ("/etc/systemd/user", "/usr/local/lib/systemd/user", "/usr/lib/systemd/user",
                      "/lib/systemd/user")
PACKAGED_SYSTEM_DIRS = ("/etc/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system",
                        "/lib/systemd/system")


def god_disabled(ctx: Context) -> bool:
    """PMSD_NO_GOD=1: never start god (scripts and tests that want systemd alone)."""
    return ctx.environ.get("PMSD_NO_GOD", "") not in ("", "0")


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


def _install_runtime_unit(ctx: Context) -> bool:
    """Write pmsd-god.service for this interpreter; True when the file changed (systemd must reload)."""
    text = god_unit_text(ctx.user, f"{os.path.realpath(sys.executable)} -m pmsd.god")
    return write_if_changed(runtime_unit_path(ctx), text)


def ensure_god(ctx: Context) -> None:
    """Ask systemd to start god if it is not running; returns without waiting (StartUnit is a no-op job
    for a running unit). Never fails a command: apps do not need god."""
    if god_disabled(ctx):
        return
    try:
        _start(ctx)
    except PmsdError as error:
        ctx.warnings.append(f"could not start pmsd's god daemon ({error.message}); apps run without it")


def _start(ctx: Context) -> None:
    manager = ctx.manager
    if packaged_unit(ctx) is None and _install_runtime_unit(ctx):
        manager.reload()
    try:
        manager.start_unit(GOD_UNIT)
    except UnitGone:
        manager.reload()
        manager.start_unit(GOD_UNIT)


def start_and_wait(ctx: Context, timeout: float = 15.0) -> None:
    """Start god (even with PMSD_NO_GOD: the caller asked for it) and wait until its socket answers."""
    _start(ctx)
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
                                f"see `journalctl {ctx.scope_flag}-unit {GOD_UNIT}`") from None
            time.sleep(0.02)


def stop_god(ctx: Context, timeout: float = 15.0) -> bool:
    """Stop god; True if it was running."""
    manager = ctx.manager
    state = manager.service_state(GOD_UNIT)
    if state is None or not state.running:
        return False
    stop_and_wait(manager, GOD_UNIT, timeout, "god to stop")
    return True
