"""god's policy restarts (backoff, memory, watch) against the real manager: they start an app that waits in
auto-restart or runs, and never one that `pmsd stop` or `pmsd delete` stopped meanwhile. CI on d5c59d4: the soak's
`delete all` timed out on an app seen in auto-restart for 6.6 s; god's view lagged behind 100 crash-looping apps,
and its RestartUnit ("replace") came after the CLI's stop and started the app again."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pmsd.god.policies import Restarter
from pmsd.god.tracker import AppTracker
from pmsd.model.counters import AppCounters
from pmsd.model.events import Event
from pmsd.systemd.bus import Manager
from pmsd.systemd.properties import UnitProperty
from pmsd.systemd.states import DOWN_STATES
from tests.e2e.helpers import wait_for
from tests.unit.helpers import make_record

pytestmark = pytest.mark.e2e
HOUR_USEC = 3600 * 1_000_000


@pytest.fixture
def manager(user_manager: dict[str, str]) -> Iterator[Manager]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in user_manager.items():
            patch.setenv(key, value)
        connected = Manager.connect(user=True)
        try:
            yield connected
        finally:
            connected.close()


@pytest.fixture
def unit(manager: Manager) -> Iterator[str]:
    name = f"pmsd-policytest{uuid.uuid4().hex[:6]}.service"
    yield name
    _stop(manager, name)


def _stop(manager: Manager, unit: str) -> None:
    if manager.service_state(unit) is not None:
        manager.stop(unit)
    wait_for(lambda: _down(manager, unit), 30, f"{unit} to stop")
    manager.reset_failed(unit)


def _down(manager: Manager, unit: str) -> bool:
    state = manager.service_state(unit)
    return state is None or state.active_state in DOWN_STATES


def _start(manager: Manager, unit: str, script: str, *extra: UnitProperty) -> None:
    manager.start_transient(unit, [
        UnitProperty("ExecStart", "a(sasb)", [("/bin/sh", ["/bin/sh", "-c", script], False)]),
        UnitProperty("Restart", "s", "always"),
        UnitProperty("RestartUSec", "t", HOUR_USEC),  # systemd's own restart never comes during the test
        *extra])


def _restarter(manager: Manager, events: list[Event]) -> Restarter:
    return Restarter(manager, events.append, lambda: None)


def _tracker(unit: str) -> AppTracker:
    return AppTracker(make_record(pm_id=0, name="policytest"), unit, AppCounters(created_at=0))


def _runs(starts: Path) -> int:
    return len(starts.read_text(encoding="ascii").split()) if starts.exists() else 0


def _running(manager: Manager, unit: str) -> bool:
    state = manager.service_state(unit)
    return state is not None and state.running and not state.waiting_restart


def _stays_stopped(manager: Manager, unit: str, starts: Path) -> None:
    deadline = time.monotonic() + 1.0  # a start would show within this: the script writes as it begins
    while time.monotonic() < deadline:
        assert _down(manager, unit) and _runs(starts) == 1, "god's restart started an app that was stopped"
        time.sleep(0.05)


def _waiting(manager: Manager, unit: str) -> bool:
    state = manager.service_state(unit)
    return state is not None and state.waiting_restart


def test_a_policy_restart_starts_an_app_waiting_in_auto_restart(manager: Manager, unit: str, tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    _start(manager, unit, f"echo run >> {starts}; exit 3")
    wait_for(lambda: _waiting(manager, unit), 30, "the app to wait in auto-restart")
    events: list[Event] = []
    assert _restarter(manager, events).restart(_tracker(unit), "backoff", delay_ms=100)
    wait_for(lambda: _runs(starts) == 2 or None, 30, "the app to run again", describe=lambda: str(_runs(starts)))
    assert [event.event for event in events] == ["restart"]


def test_a_policy_restart_after_a_stop_leaves_the_app_stopped(manager: Manager, unit: str, tmp_path: Path) -> None:
    """The memory policy does not ask systemd first (only backoff does): it stands for god's view lagging."""
    starts = tmp_path / "starts"
    _start(manager, unit, f"echo run >> {starts}; exit 3")
    wait_for(lambda: _waiting(manager, unit), 30, "the app to wait in auto-restart")
    manager.stop(unit)
    wait_for(lambda: _down(manager, unit), 30, "the app to stop")
    events: list[Event] = []
    assert not _restarter(manager, events).restart(_tracker(unit), "memory", memory_bytes=2, limit_bytes=1)
    _stays_stopped(manager, unit, starts)
    assert events == []


def test_a_policy_restart_beside_a_pending_stop_lets_the_stop_win(manager: Manager, unit: str,
                                                                 tmp_path: Path) -> None:
    """The soak's window: the CLI's stop job is queued, not yet run, when god's restart comes. A unit ordered
    After= the app stops first (units stop in the reverse of their start order, systemd.unit(5)), taking a second
    in ExecStop=, so the app's stop job waits that long. RestartUnit "replace" cancelled it and started the app."""
    starts = tmp_path / "starts"
    _start(manager, unit, f"echo run >> {starts}; exit 3")
    wait_for(lambda: _waiting(manager, unit), 30, "the app to wait in auto-restart")
    blocker = unit.replace(".service", "-after.service")
    manager.start_transient(blocker, [
        UnitProperty("ExecStart", "a(sasb)", [("/bin/sleep", ["/bin/sleep", "infinity"], False)]),
        UnitProperty("ExecStop", "a(sasb)", [("/bin/sleep", ["/bin/sleep", "1"], False)]),
        UnitProperty("After", "as", [unit])])
    try:
        wait_for(lambda: _running(manager, blocker), 30, "the unit ordered after the app to run")
        manager.stop(blocker)
        manager.stop(unit)
        events: list[Event] = []
        assert not _restarter(manager, events).restart(_tracker(unit), "memory", memory_bytes=2, limit_bytes=1)
        wait_for(lambda: _down(manager, unit) and _down(manager, blocker), 30, "both units to stop")
        _stays_stopped(manager, unit, starts)
        assert events == []
    finally:
        _stop(manager, blocker)
