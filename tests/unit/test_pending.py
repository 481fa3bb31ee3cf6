"""The registry's intent log (pmsd.state.pending): a command killed after systemd created its units and before
the registry was written leaves no unit pmsd does not list (regression: tests/e2e/test_faults.py found
`pmsd start` and `pmsd scale` killed there leaving a running unit no `pmsd delete` reached)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pmsd.errors import PmsdError
from pmsd.model.record import AppRecord, RegistryData
from pmsd.state.registry import Registry
from tests.unit.helpers import make_spec

pytestmark = pytest.mark.reliability


class Systemd:
    """Which units exist; None: systemd does not answer."""

    def __init__(self) -> None:
        self.units: set[str] | None = set()
        self.asked = 0

    def __call__(self, units: list[str]) -> set[str]:
        self.asked += 1
        if self.units is None:
            raise PmsdError("cannot reach the systemd user manager")
        return {unit for unit in units if unit in self.units}


def _registry(tmp_path: Path, systemd: Systemd, warnings: list[str] | None = None) -> Registry:
    return Registry(str(tmp_path), warnings if warnings is not None else [], units_present=systemd)


def _record(data: RegistryData, name: str) -> AppRecord:
    return AppRecord(pm_id=data.allocate_id(), spec=make_spec(name=name), created_at=0)


def _killed_while_starting(registry: Registry, name: str) -> AppRecord:
    """What a `pmsd start` killed after its units were asked for leaves on disk: its environment file and its
    pending record, and the registry as it was (its transaction never ended; the lock died with it)."""
    record = _record(registry.read(), name)
    os.makedirs(registry.env_dir, exist_ok=True)
    Path(registry.record_env_file(record)).write_text("A=1\n")
    Registry(registry.state_dir, units_present=Systemd()).pending.intend([record])
    return record


def test_a_unit_created_before_the_kill_is_listed_and_then_registered(tmp_path: Path) -> None:
    systemd = Systemd()
    warnings: list[str] = []
    registry = _registry(tmp_path, systemd, warnings)
    with registry.transaction() as data:
        data.apps.append(_record(data, "before"))
    record = _killed_while_starting(registry, "web")
    assert systemd.units is not None
    systemd.units.add(record.unit)
    listed = registry.read()  # `pmsd ls`: lists it already, and says why
    assert [app.name for app in listed.apps] == ["before", "web"]
    assert any("did not finish" in warning for warning in warnings)
    with registry.transaction() as data:  # the next change writes it into the registry
        assert data.by_name("web") is not None
        assert data.allocate_id() == record.pm_id + 1  # its id is taken
    assert not os.path.exists(registry.pending.path)
    asked = systemd.asked
    assert [app.name for app in registry.read().apps] == ["before", "web"]
    assert systemd.asked == asked  # nothing pending: systemd is not asked


def test_a_unit_never_created_is_dropped_with_its_environment_file(tmp_path: Path) -> None:
    systemd = Systemd()
    registry = _registry(tmp_path, systemd)
    record = _killed_while_starting(registry, "web")
    env_file = registry.record_env_file(record)
    assert registry.read().apps == []
    assert os.path.exists(env_file)  # a reader leaves it: the command may still be running
    with registry.transaction() as data:
        assert data.apps == []
    assert not os.path.exists(env_file) and not os.path.exists(registry.pending.path)


def test_pending_records_are_kept_while_systemd_does_not_answer(tmp_path: Path) -> None:
    systemd = Systemd()
    registry = _registry(tmp_path, systemd)
    record = _killed_while_starting(registry, "web")
    systemd.units = None
    with registry.transaction() as data:
        assert [app.name for app in data.apps] == ["web"]  # listed (stopped, as far as pmsd can tell)
        new = _record(data, "other")
        assert new.pm_id != record.pm_id
        data.apps.append(new)
    assert {app.name for app in registry.read().apps} == {"web", "other"}
    assert not os.path.exists(registry.pending.path)


def test_a_restart_of_known_apps_writes_nothing_pending(tmp_path: Path) -> None:
    registry = _registry(tmp_path, Systemd())
    with registry.transaction() as data:
        data.apps.append(_record(data, "web"))
    with registry.transaction() as data:
        registry.pending.intend(list(data.apps))
        assert not os.path.exists(registry.pending.path)


def test_a_transaction_removes_what_dead_writers_left_half_written(tmp_path: Path) -> None:
    """`kill -9` between a write and its rename leaves `<file>.<pid>.tmp`; the next transaction removes those
    of dead writers, and never a live writer's."""
    with open("/proc/sys/kernel/pid_max", encoding="ascii") as handle:
        dead = int(handle.read()) + 1  # no process can have it
    registry = _registry(tmp_path, Systemd())
    os.makedirs(registry.env_dir)
    stale = [tmp_path / f"registry.json.{dead}.tmp", Path(registry.env_dir) / f"3.env.{dead}.tmp"]
    alive = [tmp_path / f"registry.json.{os.getppid()}.tmp", tmp_path / "dump.json.1.tmp", tmp_path / "notes.tmp"]
    for path in stale + alive:
        path.write_text("half")
    with registry.transaction():
        pass
    assert [path.exists() for path in stale + alive] == [False] * len(stale) + [True] * len(alive)
