"""Where god's socket and files live, for the daemon and its clients alike."""

from __future__ import annotations

import os
from collections.abc import Mapping

GOD_UNIT = "pmsd-god.service"
SOCKET_NAME = "god.sock"


def runtime_dir(user: bool, environ: Mapping[str, str]) -> str:
    """The god unit's RuntimeDirectory=pmsd: $XDG_RUNTIME_DIR/pmsd for a user manager, /run/pmsd otherwise."""
    if not user:
        return "/run/pmsd"
    base = environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return os.path.join(base, "pmsd")


def socket_path(user: bool, environ: Mapping[str, str]) -> str:
    return environ.get("PMSD_GOD_SOCKET") or os.path.join(runtime_dir(user, environ), SOCKET_NAME)
