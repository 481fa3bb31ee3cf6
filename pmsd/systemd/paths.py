"""Where a systemd manager lives and reads its files, for the user and the system scope.

The one place that knows the `XDG_RUNTIME_DIR` fallback and how `--user`/`--system` are spelled.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def scope_flag(user: bool) -> str:
    """systemctl's and pmsd's own scope switch."""
    return "--user" if user else "--system"


def runtime_dir(environ: Mapping[str, str]) -> str:
    """The user's runtime directory: $XDG_RUNTIME_DIR, or /run/user/<uid> where pam_systemd would put it."""
    return environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"


def runtime_unit_dir(user: bool, environ: Mapping[str, str]) -> str:
    """Where a manager reads runtime unit files (systemd.unit(5), "Unit File Load Path"); gone at reboot."""
    if user:
        return os.path.join(runtime_dir(environ), "systemd", "user")
    return "/run/systemd/system"


def config_unit_dir(user: bool, environ: Mapping[str, str]) -> str:
    """Where an administrator's (or a user's own) persistent unit files go (systemd.unit(5), "Unit File Load
    Path"): /etc/systemd/system, or $XDG_CONFIG_HOME/systemd/user (~/.config by default)."""
    if not user:
        return "/etc/systemd/system"
    config = environ.get("XDG_CONFIG_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".config")
    return os.path.join(config, "systemd", "user")


def private_socket(user: bool, environ: Mapping[str, str]) -> str:
    """The manager's own D-Bus socket (no dbus-daemon in between)."""
    if user:
        return os.path.join(runtime_dir(environ), "systemd", "private")
    return "/run/systemd/private"


# logind keeps one empty file per lingering user here (`loginctl enable-linger`, src/login/logind-user.c):
# their user manager starts at boot and outlives their sessions.
LINGER_DIR = "/var/lib/systemd/linger"


def lingering(user_name: str, linger_dir: str = LINGER_DIR) -> bool:
    return os.path.exists(os.path.join(linger_dir, user_name))


def journalctl_command(user: bool, unit: str) -> str:
    """How to read a unit's journal: `--user-unit` for a user manager's units, `-u` for the system's."""
    return f"journalctl {'--user-unit' if user else '-u'} {unit}"
