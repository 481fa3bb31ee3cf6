"""god's look at which apps a command added have a unit loaded (pmsd.god.snapshot.loaded_units): a GetUnit each
for a few, one listing of pmsd's units for many; never a listing of 1,000 units for the one app `start` added.
And the cgroup of a running app, which no signal tells (pmsd.god.snapshot.control_group)."""

from __future__ import annotations

from typing import cast

from pmsd.god.snapshot import FEW_UNITS, control_group, loaded_units
from pmsd.god.tracker import AppTracker
from pmsd.model.counters import AppCounters
from pmsd.systemd.bus import Manager
from pmsd.systemd.signals import UnitChange
from pmsd.systemd.states import ActiveState, UnitListing
from tests.unit.helpers import make_record


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


class CgroupManager:
    """Answers ControlGroup as systemd does: the unit's cgroup while it runs."""

    def __init__(self, cgroup: str) -> None:
        self.cgroup = cgroup
        self.asked = 0

    def service_property(self, unit: str, name: str, signature: str) -> str:
        assert (name, signature) == ("ControlGroup", "s")
        self.asked += 1
        return self.cgroup


def test_the_cgroup_no_signal_tells_is_asked_once_even_after_a_seed_read_it_empty() -> None:
    """systemd's change signals never carry ControlGroup: an app started after god, or seeded while stopped
    (ControlGroup ""), had no cgroup in god, which then summed the main process's RSS instead of the cgroup's
    memory (seen: 13.7 MB against 7.4 MB)."""
    path = "/user.slice/user-0.slice/user@0.service/app.slice/pmsd-api.service"
    for seeded in (UnitChange(active_state=ActiveState.ACTIVE), UnitChange(control_group="")):
        tracker = AppTracker(make_record(name="api"), "pmsd-api.service", AppCounters(created_at=0))
        tracker.learn(seeded)
        manager = CgroupManager(path)
        assert control_group(cast(Manager, manager), tracker) == path
        assert control_group(cast(Manager, manager), tracker) == path
        assert manager.asked == 1 and tracker.known.control_group == path
    idle = AppTracker(make_record(name="api"), "pmsd-api.service", AppCounters(created_at=0))
    assert control_group(cast(Manager, CgroupManager("")), idle) == ""  # no cgroup yet: asked again next time
