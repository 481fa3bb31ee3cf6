"""The Context every API call receives: scope, manager connection, registry, caller environment.

No module-level state: tests and scripts build a Context of their own (`Context(user=True)`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pmsd.state.paths import default_state_dir
from pmsd.state.registry import Registry
from pmsd.systemd.paths import scope_flag

if TYPE_CHECKING:
    from pmsd.model.record import RegistryData
    from pmsd.systemd.bus import Manager


@dataclass
class Context:
    user: bool = True
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    state_dir: str = ""
    warnings: list[str] = field(default_factory=list)
    # This process is a command god forked to run for a CLI (pmsd.god.runner): god is running, so nothing
    # needs to start it or check that it runs.
    run_by_god: bool = False
    _manager: Manager | None = None

    def __post_init__(self) -> None:
        if not self.state_dir:
            self.state_dir = default_state_dir(self.user, self.environ)
        self.registry = Registry(self.state_dir, self.warnings, rebuild=self._rebuild_registry,
                                 units_present=self._units_present)

    def _units_present(self, units: list[str]) -> set[str]:
        """The units of these names systemd has loaded (pmsd.state.pending: a command killed mid-way)."""
        return {unit for unit in units if self.manager.unit_summary(unit) is not None}

    def _rebuild_registry(self) -> RegistryData:
        """Only for a registry that is lost (pmsd.state.rebuild): imported then, it needs D-Bus."""
        from pmsd.state.rebuild import rebuild_from_units  # lazy: it imports pystemd, which `ls` via god never needs

        return rebuild_from_units(self.manager, self.registry.env_dir)

    @property
    def god_disabled(self) -> bool:
        """PMSD_NO_GOD=1: never start god (scripts and tests that want systemd alone)."""
        return self.environ.get("PMSD_NO_GOD", "") not in ("", "0")

    @property
    def scope_flag(self) -> str:
        return scope_flag(self.user)

    @property
    def manager(self) -> Manager:
        if self._manager is None:
            # lazy: pystemd costs ~120 ms to import; `pmsd logs`, usage errors and pure tests never need it.
            from pmsd.systemd.bus import Manager

            self._manager = Manager.connect(self.user)
        return self._manager

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None
