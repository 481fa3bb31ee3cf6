"""The warning a user without lingering needs: their user manager, and every app pmsd started under it, stops
when their last session ends (systemd-logind's default for users without lingering, logind.conf(5)
KillUserProcesses= aside). PM2 users expect apps to outlive their SSH session."""

from __future__ import annotations

import contextlib
import os
import pwd

from pmsd.context import Context
from pmsd.state.atomic import write_atomic
from pmsd.systemd.paths import LINGER_DIR, lingering

WARNED_FILE = "linger-warned"  # in the state directory: the warning is given once


def linger_warning(ctx: Context, linger_dir: str = LINGER_DIR) -> str | None:
    """The warning, the first time a user without lingering starts apps in user mode; None otherwise."""
    uid = os.getuid()
    if not ctx.user or uid == 0:
        return None  # root's user manager is not tied to a login session pmsd would start apps from
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return None  # no passwd entry: logind would not know the user either
    stamp = os.path.join(ctx.state_dir, WARNED_FILE)
    if lingering(name, linger_dir) or os.path.exists(stamp):
        return None
    with contextlib.suppress(OSError):  # a full state directory (issue 19): warn again, never fail the start
        write_atomic(stamp, "")
    return (f"user {name} has no lingering: systemd stops your user manager, and every app pmsd started under "
            f"it, when your last session ends (logout). To keep them running: `loginctl enable-linger {name}` "
            "(once; it may ask for a password). This warning is shown once.")
