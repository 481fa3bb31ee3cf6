"""Where pmsd keeps its own files: the state directory (registry, counters, env files) and god's runtime
directory and socket, for the daemon and its clients alike."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pmsd.systemd.paths import runtime_dir as user_runtime_dir

SOCKET_NAME = "god.sock"
METRICS_SOCKET_NAME = "metrics.sock"


def default_state_dir(user: bool, environ: Mapping[str, str]) -> str:
    """PMSD_STATE_DIR if set (cron units carry it, so their restarts use the registry that created them)."""
    if environ.get("PMSD_STATE_DIR"):
        return environ["PMSD_STATE_DIR"]
    if not user:
        return "/var/lib/pmsd"
    state_home = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state_home, "pmsd")


def runtime_dir(user: bool, environ: Mapping[str, str]) -> str:
    """The god unit's RuntimeDirectory=pmsd: $XDG_RUNTIME_DIR/pmsd for a user manager, /run/pmsd otherwise."""
    return os.path.join(user_runtime_dir(environ), "pmsd") if user else "/run/pmsd"


def socket_path(user: bool, environ: Mapping[str, str]) -> str:
    return environ.get("PMSD_GOD_SOCKET") or os.path.join(runtime_dir(user, environ), SOCKET_NAME)


def metrics_socket_path(user: bool, environ: Mapping[str, str]) -> str:
    """Where god serves Prometheus metrics when `pmsd set metrics_listen unix`: beside its API socket."""
    return os.path.join(os.path.dirname(socket_path(user, environ)), METRICS_SOCKET_NAME)
