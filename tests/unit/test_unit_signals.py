"""The adapter's reading of systemd's unit signals (pmsd.systemd.signals, and the message side in bus.py):
property sets as PropertiesChanged and GetAll carry them, decoded, merged, and turned into a ServiceState."""

from __future__ import annotations

from typing import Any

import pytest
from pystemd.dbusexc import DBusBaseError, DBusFileExistsError  # type: ignore[import-not-found, unused-ignore]

from pmsd.systemd.bus import UnitExists, _may_be_wanted, _translated, _unit_signal
from pmsd.systemd.properties import unit_path
from pmsd.systemd.signals import UnitChange, UnitChanged, UnitNew, UnitRemoved, decode_change
from pmsd.systemd.states import ActiveState, ServiceState

T0 = 1_795_295_005_000_000
INVOCATION = bytes.fromhex("5c1f0e2a9d3b4c6e8f00112233445566")

# A Unit-interface group and a Service-interface group as systemd 252 sends them (recorded), str-keyed as
# properties.decode_properties leaves them.
UNIT_GROUP: dict[str, Any] = {
    "ActiveState": "activating", "SubState": "auto-restart", "StateChangeTimestamp": T0 + 10,
    "ActiveEnterTimestamp": T0, "Job": (0, "/"), "InvocationID": INVOCATION, "LoadState": "loaded",
    "Description": "api", "ActiveExitTimestampMonotonic": 123,  # not followed: left out
}
SERVICE_GROUP: dict[str, Any] = {
    "MainPID": 0, "NRestarts": 2, "ExecMainStartTimestamp": T0, "ExecMainExitTimestamp": T0 + 5,
    "ExecMainPID": 100, "ExecMainCode": 2, "ExecMainStatus": 9, "Result": "signal",
    "ControlGroup": "/user.slice/pmsd-api.service", "StatusText": "",
}


def test_a_unit_group_decodes_to_its_fields_only() -> None:
    change = decode_change(UNIT_GROUP)
    assert change == UnitChange(active_state=ActiveState.ACTIVATING, sub_state="auto-restart",
                                state_change_usec=T0 + 10, active_enter_usec=T0, has_job=False,
                                invocation_id=INVOCATION.hex(), load_state="loaded")
    assert change.main_pid is None and change.n_restarts is None  # not in this signal
    assert isinstance(change.active_state, ActiveState)


def test_a_service_group_decodes_to_its_fields_only() -> None:
    assert decode_change(SERVICE_GROUP) == UnitChange(
        main_pid=0, n_restarts=2, exec_main_start_usec=T0, exec_main_exit_usec=T0 + 5, exec_main_pid=100,
        exec_main_code=2, exec_main_status=9, result="signal", control_group="/user.slice/pmsd-api.service")


def test_raw_bytes_from_the_bus_decode_the_same() -> None:
    raw = {b"ActiveState": b"active", b"SubState": b"running", b"Job": (7, b"/org/freedesktop/systemd1/job/7"),
           b"InvocationID": INVOCATION, b"MainPID": 42}
    assert decode_change(raw) == UnitChange(active_state=ActiveState.ACTIVE, sub_state="running", has_job=True,
                                            invocation_id=INVOCATION.hex(), main_pid=42)


def test_an_unknown_active_state_reads_as_inactive() -> None:
    assert decode_change({"ActiveState": "hibernating"}).active_state == ActiveState.INACTIVE
    assert decode_change({}) == UnitChange() and UnitChange().is_empty()


def test_merge_newer_fields_win_and_untold_ones_stay() -> None:
    older = decode_change({**UNIT_GROUP, **SERVICE_GROUP})
    newer = decode_change({"ActiveState": "active", "SubState": "running", "StateChangeTimestamp": T0 + 20,
                           "MainPID": 0})  # 0 is a value, not "untold"
    merged = older.merge(newer)
    assert (merged.active_state, merged.sub_state, merged.state_change_usec) == ("active", "running", T0 + 20)
    assert merged.main_pid == 0 and merged.n_restarts == 2 and merged.exec_main_pid == 100
    assert merged.invocation_id == INVOCATION.hex()
    assert older.merge(UnitChange()) == older and UnitChange().merge(older) == older
    assert older.active_state == ActiveState.ACTIVATING  # frozen: merge makes a new one


def test_service_state_of_a_merged_snapshot() -> None:
    snapshot = decode_change(UNIT_GROUP).merge(decode_change(SERVICE_GROUP))
    assert snapshot.service_state("pmsd-api.service", memory_bytes=1024) == ServiceState(
        name="pmsd-api.service", load_state="loaded", active_state=ActiveState.ACTIVATING,
        sub_state="auto-restart", result="signal", main_pid=0, n_restarts=2, exec_main_code=2, exec_main_status=9,
        memory_bytes=1024, cpu_nsec=None, control_group="/user.slice/pmsd-api.service",
        invocation_id=INVOCATION.hex(), active_enter_usec=T0, exec_main_start_usec=T0, has_job=False)
    assert snapshot.service_state("pmsd-api.service").waiting_restart


def test_service_state_of_what_was_never_told_is_a_unit_that_has_not_run() -> None:
    state = UnitChange(active_state=ActiveState.ACTIVE).service_state("pmsd-api.service")
    assert state == ServiceState(
        name="pmsd-api.service", load_state="loaded", active_state=ActiveState.ACTIVE, sub_state="dead",
        result="success", main_pid=0, n_restarts=0, exec_main_code=0, exec_main_status=0, memory_bytes=None,
        cpu_nsec=None, control_group="", invocation_id="", active_enter_usec=0, exec_main_start_usec=0,
        has_job=False)


PREFIX = "pmsd"


def _signal(path: bytes, member: bytes, body: Any) -> object:
    return _unit_signal(path, member, body, unit_path(PREFIX), PREFIX)


def test_properties_changed_of_a_followed_unit_is_a_unit_changed() -> None:
    body: tuple[bytes, dict[bytes, Any], list[bytes]] = (
        b"org.freedesktop.systemd1.Service", {b"NRestarts": 3, b"MainPID": 7}, [])
    assert _signal(unit_path("pmsd-my api.service"), b"PropertiesChanged", body) == UnitChanged(
        "pmsd-my api.service", UnitChange(n_restarts=3, main_pid=7))
    cron = _signal(unit_path("pmsd.cron-web.service"), b"PropertiesChanged",
                   (b"org.freedesktop.systemd1.Unit", {b"ActiveState": b"activating"}, []))
    assert cron == UnitChanged("pmsd.cron-web.service", UnitChange(active_state=ActiveState.ACTIVATING))


@pytest.mark.parametrize("path", [
    unit_path("dbus.service"), unit_path("pm.service"), b"/org/freedesktop/systemd1",
    b"/org/freedesktop/systemd1/job/7",
])
def test_other_objects_signals_are_dropped(path: bytes) -> None:
    assert _signal(path, b"PropertiesChanged", (b"org.freedesktop.systemd1.Unit", {b"ActiveState": b"x"}, [])) \
        is None


def test_manager_signals_about_units() -> None:
    path = unit_path("pmsd-api.service")
    assert _signal(b"/org/freedesktop/systemd1", b"UnitNew", (b"pmsd-api.service", path)) == UnitNew(
        "pmsd-api.service")
    assert _signal(b"/org/freedesktop/systemd1", b"UnitRemoved", (b"pmsd-api.service", path)) == UnitRemoved(
        "pmsd-api.service")
    assert _signal(b"/org/freedesktop/systemd1", b"UnitNew", (b"dbus.service", unit_path("dbus.service"))) is None
    assert _signal(b"/org/freedesktop/systemd1", b"JobRemoved", (7, b"/j/7", b"pmsd-api.service", b"done")) is None


def test_without_a_prefix_every_unit_is_followed() -> None:
    body: tuple[bytes, dict[bytes, Any], list[bytes]] = (
        b"org.freedesktop.systemd1.Unit", {b"SubState": b"running"}, [])
    assert _unit_signal(unit_path("dbus.service"), b"PropertiesChanged", body,
                        b"/org/freedesktop/systemd1/unit/", "") == UnitChanged("dbus.service",
                                                                              UnitChange(sub_state="running"))
    assert _unit_signal(b"/org/freedesktop/systemd1", b"PropertiesChanged", body,
                        b"/org/freedesktop/systemd1/unit/", "") is None


def test_what_the_header_rules_out_is_never_decoded() -> None:
    """god decodes a signal's body only when its header (path, member) may make it a UnitSignal: a job's
    PropertiesChanged, another unit's, JobNew/JobRemoved are dropped unread (~50 us each, 15 a unit at start)."""
    prefix = unit_path("pmsd")
    assert _may_be_wanted(unit_path("pmsd-api.service"), b"PropertiesChanged", prefix)
    assert _may_be_wanted(b"/org/freedesktop/systemd1", b"UnitNew", prefix)
    assert _may_be_wanted(b"/org/freedesktop/systemd1", b"UnitRemoved", prefix)
    for path, member in [(b"/org/freedesktop/systemd1/job/7", b"PropertiesChanged"),
                         (unit_path("dbus.service"), b"PropertiesChanged"),
                         (b"/org/freedesktop/systemd1", b"JobNew"), (b"/org/freedesktop/systemd1", b"JobRemoved"),
                         (b"/org/freedesktop/systemd1", b"Reloading")]:
        assert not _may_be_wanted(path, member, prefix), (path, member)


def test_a_taken_unit_name_is_unit_exists() -> None:
    """StartTransientUnit of a loaded unit's name: pystemd's error (its name, or -EEXIST) becomes UnitExists,
    which a new app's start answers by making room (pmsd.api.launch._submit)."""
    named = DBusBaseError(-17, b"org.freedesktop.systemd1.UnitExists", b"Unit x.service was already loaded")
    exists = _translated(named, "x.service", "user")
    assert isinstance(exists, UnitExists)
    # Raised to the user when room cannot be made: worded as any other error of the manager.
    assert exists.message == "systemd user manager: Unit x.service was already loaded (x.service)"
    assert isinstance(_translated(DBusFileExistsError(-17, None, b"exists"), "x.service", "user"), UnitExists)
    assert not isinstance(_translated(DBusBaseError(-5, b"org.freedesktop.DBus.Error.Failed", b"no"), "x", "user"),
                          UnitExists)
