"""god's look at which apps a command added have a unit loaded (pmsd.god.snapshot.loaded_units): a GetUnit each
for a few, one listing of pmsd's units for many; never a listing of 1,000 units for the one app `start` added."""

from __future__ import annotations

from typing import cast

from pmsd.god.snapshot import FEW_UNITS, loaded_units
from pmsd.systemd.bus import Manager
from pmsd.systemd.states import ActiveState, UnitListing


class CountingManager:
    def __init__(self, loaded: set[str]) -> None:
        self.loaded = loaded
        self.calls: list[str] = []

    def loaded_path(self, unit: str) -> bytes | None:
        self.calls.append(f"GetUnit {unit}")
        return b"/org/freedesktop/systemd1/unit/x" if unit in self.loaded else None

    def list_units(self, patterns: list[str]) -> list[UnitListing]:
        self.calls.append(f"ListUnitsByPatterns {' '.join(patterns)}")
        return [UnitListing(name, "loaded", ActiveState.ACTIVE, "running", b"/p") for name in sorted(self.loaded)]


def test_nothing_new_asks_nothing() -> None:
    manager = CountingManager({"pmsd-a.service"})
    assert loaded_units(cast(Manager, manager), []) == set() and manager.calls == []


def test_a_few_new_apps_are_asked_one_by_one() -> None:
    manager = CountingManager({"pmsd-a.service", "pmsd-other.service"})
    assert loaded_units(cast(Manager, manager), ["pmsd-a.service", "pmsd-b.service"]) == {"pmsd-a.service"}
    assert manager.calls == ["GetUnit pmsd-a.service", "GetUnit pmsd-b.service"]


def test_many_new_apps_take_one_listing() -> None:
    units = [f"pmsd-app{n}.service" for n in range(FEW_UNITS + 1)]
    manager = CountingManager({units[0], units[5], "pmsd-not-asked.service"})
    assert loaded_units(cast(Manager, manager), units) == {units[0], units[5]}
    assert manager.calls == ["ListUnitsByPatterns pmsd-*.service"]
