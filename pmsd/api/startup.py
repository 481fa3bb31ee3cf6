"""`pmsd startup` / `unstartup`: the saved apps come back when the manager starts, that is at boot.

PM2's `startup` writes an init script that starts PM2's daemon, which then resurrects its dump. Here the
manager itself runs `pmsd resurrect` (pmsd.definition.startup_unit), enabled the way `systemctl enable` does
it: a symlink in the target's .wants directory. In user mode the user manager only starts at boot for a user
with lingering, so startup turns it on (`loginctl enable-linger`), or says the exact command when it cannot.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import subprocess
import sys
from dataclasses import dataclass

from pmsd.context import Context
from pmsd.definition.startup_unit import STARTUP_UNIT, startup_unit_text
from pmsd.errors import PmsdError, UsageError
from pmsd.state.atomic import write_atomic
from pmsd.systemd.paths import config_unit_dir, lingering

LINGER_TIMEOUT_S = 30
# What systemd takes in a plain unit name (unit_name_is_valid(), src/basic/unit-name.c): ASCII letters,
# digits and ":-_.\\", at most 255 characters with the suffix; "@" is left out (that would make a template).
_UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\-]{1,247}")


@dataclass(frozen=True)
class StartupResult:
    unit_path: str
    linger: str | None  # None: nothing to do; else what happened, or the command the user must run


def startup(ctx: Context, service_name: str = STARTUP_UNIT, wait_network: bool = False) -> StartupResult:
    unit = _unit_name(service_name)
    directory = config_unit_dir(ctx.user, ctx.environ)
    path = os.path.join(directory, unit)
    text = startup_unit_text(ctx.user, sys.executable, ctx.state_dir, wait_network,
                             no_god=ctx.environ.get("PMSD_NO_GOD", "") not in ("", "0"))
    try:
        write_atomic(path, text, mode=0o644, dir_mode=0o755)
        _link(os.path.join(directory, _wants_dir(ctx.user), unit), os.path.join("..", unit))
    except PermissionError:
        raise PmsdError(f"cannot write {path}: permission denied",
                        "system mode needs root (sudo pmsd --system startup)") from None
    ctx.manager.reload()
    return StartupResult(path, _enable_linger(ctx))


def unstartup(ctx: Context, service_name: str = STARTUP_UNIT) -> list[str]:
    """Remove the unit and its symlink; the paths removed. Lingering is left as it is (other services of the
    user may need it)."""
    unit = _unit_name(service_name)
    directory = config_unit_dir(ctx.user, ctx.environ)
    removed = []
    for path in (os.path.join(directory, _wants_dir(ctx.user), unit), os.path.join(directory, unit)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed.append(path)
    with contextlib.suppress(OSError):  # the .wants directory startup made, when nothing else is in it
        os.rmdir(os.path.join(directory, _wants_dir(ctx.user)))
    if removed:
        # The oneshot stays "active (exited)" after its boot-time run: stopping it only unloads it (it has no
        # ExecStop=; the apps it started are units of their own and keep running).
        with contextlib.suppress(PmsdError):
            ctx.manager.stop(unit)
        ctx.manager.reload()
    return removed


def _unit_name(service_name: str) -> str:
    stem = service_name.removesuffix(".service")
    if not _UNIT_NAME.fullmatch(stem):
        raise UsageError(f"--service-name {service_name!r}: not a name systemd takes for a unit",
                         "use ASCII letters, digits and : - _ . (e.g. pmsd.resurrect)")
    return f"{stem}.service"


def _wants_dir(user: bool) -> str:
    return ("default.target" if user else "multi-user.target") + ".wants"


def _link(path: str, target: str) -> None:
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.symlink(target, path)


def _enable_linger(ctx: Context) -> str | None:
    """Lingering for the user (user mode): their manager then starts at boot, without a login."""
    if not ctx.user:
        return None
    name = pwd.getpwuid(os.getuid()).pw_name
    if lingering(name):
        return None
    command = ["loginctl", "enable-linger", name]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=LINGER_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"could not run `{' '.join(command)}` ({error}): run it yourself (as root: sudo {' '.join(command)})"
    if result.returncode != 0 or not lingering(name):
        why = (result.stderr.strip().splitlines() or ["lingering is still off"])[-1]
        return f"`{' '.join(command)}` failed ({why}): run it as root: sudo {' '.join(command)}"
    return f"lingering is on for {name}: your user manager starts at boot"
