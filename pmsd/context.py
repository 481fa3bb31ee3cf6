"""The Context every API call receives: scope, manager connection, registry, caller environment.

No module-level state: tests and scripts build a Context of their own (`Context(user=True)`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pmsd.registry import Registry

if TYPE_CHECKING:
    from pmsd.systemd.bus import Manager


def default_state_dir(user: bool, environ: Mapping[str, str]) -> str:
    """PMSD_STATE_DIR if set (cron units carry it, so their restarts use the registry that created them)."""
    if environ.get("PMSD_STATE_DIR"):
        return environ["PMSD_STATE_DIR"]
    if not user:
        return "/var/lib/pmsd"
    state_home = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state_home, "pmsd")


@dataclass
class Context:
    user: bool = True
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    state_dir: str = ""
    warnings: list[str] = field(default_factory=list)
    _manager: Manager | None = None

    def __post_init__(self) -> None:
        if not self.state_dir:
            self.state_dir = default_state_dir(self.user, self.environ)
        self.registry = Registry(self.state_dir)

    @property
    def scope_flag(self) -> str:
        return "--user" if self.user else "--system"

    @property
    def manager(self) -> Manager:
        if self._manager is None:
            from pmsd.systemd.bus import Manager

            self._manager = Manager.connect(self.user)
        return self._manager

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None
