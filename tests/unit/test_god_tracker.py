"""god's reading of systemd's PropertiesChanged signals: property sets as systemd 252 sends them (recorded
with a subscriber on the user manager), decoded by the adapter (pmsd.systemd.signals) and fed to an
AppTracker."""

from __future__ import annotations

from typing import Any

import pytest

from pmsd.god.tracker import AppTracker, next_backoff_ms
from pmsd.model.counters import AppCounters
from pmsd.systemd.signals import decode_change
from tests.unit.helpers import make_record

T0 = 1_795_295_005_000_000  # µs since the epoch


def _tracker(**spec: Any) -> AppTracker:
    record = make_record(pm_id=3, name="api", **spec)
    return AppTracker(record, "pmsd-api.service", AppCounters(created_at=record.created_at))


def _unit(active: str, sub: str, at: int, job: int = 0) -> dict[str, Any]:
    return {"ActiveState": active, "SubState": sub, "StateChangeTimestamp": at, "Job": (job, "/")}


def _running(pid: int, started: int, restarts: int = 0) -> dict[str, Any]:
    return {"MainPID": pid, "NRestarts": restarts, "ExecMainStartTimestamp": started, "ExecMainExitTimestamp": 0,
            "ExecMainPID": pid, "ExecMainCode": 0, "ExecMainStatus": 0, "Result": "success"}


def _exited(pid: int, started: int, exited: int, code: int = 1, status: int = 1, restarts: int = 0) -> dict[str, Any]:
    return {"MainPID": 0, "NRestarts": restarts, "ExecMainStartTimestamp": started,
            "ExecMainExitTimestamp": exited, "ExecMainPID": pid, "ExecMainCode": code, "ExecMainStatus": status,
            "Result": "exit-code" if code == 1 else "signal"}


def _names(tracker: AppTracker, *changes: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for changed in changes:
        names += [event.event for event in tracker.update(decode_change(changed)).events]
    return names


def test_start_then_online() -> None:
    tracker = _tracker()
    assert _names(tracker, _running(100, T0), _unit("active", "running", T0 + 10)) == ["start", "online"]
    assert tracker.state() is not None
    assert tracker.status() == "online"


def test_the_state_is_kept_until_systemd_tells_a_change_and_then_read_anew() -> None:
    """state() is kept between listings (god asks it of every app per `pmsd ls`); each signal, a learnt cgroup
    and a collected unit are seen at once."""
    tracker = _tracker()
    assert tracker.state() is None
    _names(tracker, _running(100, T0), _unit("active", "running", T0 + 10))
    first = tracker.state()
    assert first is not None and tracker.state() is first
    tracker.learn(decode_change({"ControlGroup": "/app.slice/pmsd-api.service"}))
    learnt = tracker.state()
    assert learnt is not None and learnt is not first and learnt.control_group == "/app.slice/pmsd-api.service"
    _names(tracker, _exited(100, T0, T0 + 400_000, status=3))
    exited = tracker.state()
    assert exited is not None and exited.main_pid == 0 and exited.exec_main_status == 3
    tracker.forget_unit()
    assert tracker.state() is None


def test_crash_is_an_exit_with_code_and_uptime_then_waiting_restart() -> None:
    tracker = _tracker(restart_delay=250)
    _names(tracker, _running(100, T0), _unit("active", "running", T0))
    outcome = tracker.update(decode_change(_exited(100, T0, T0 + 400_000, status=3)))
    (exit_event,) = outcome.events
    assert exit_event.event == "exit"
    assert exit_event.details["code"] == 3 and exit_event.details["signal"] is None
    assert exit_event.details["uptime_ms"] == 400 and not exit_event.details["manually"]
    assert exit_event.at_ms == (T0 + 400_000) // 1000
    # systemd 252 passes through "failed" on the way to "auto-restart": no verdict until it settles.
    assert _names(tracker, _unit("failed", "failed", T0 + 401_000)) == []
    assert _names(tracker, _unit("activating", "auto-restart", T0 + 401_000)) == ["waiting restart"]
    assert tracker.settle() == []
    assert tracker.counters.unstable == 1  # 400 ms < min_uptime 1000 ms


def test_signal_death_names_the_signal() -> None:
    tracker = _tracker()
    _names(tracker, _running(100, T0), _unit("active", "running", T0))
    (event,) = tracker.update(decode_change(_exited(100, T0, T0 + 5_000_000, code=2, status=9))).events
    assert event.details["signal"] == "SIGKILL" and event.details["code"] is None
    assert tracker.counters.unstable == 0  # ran 5 s


def test_systemd_restart_counts_as_restart_event() -> None:
    tracker = _tracker()
    _names(tracker, _running(100, T0), _unit("active", "running", T0))
    tracker.update(decode_change(_exited(100, T0, T0 + 2_000_000)))
    names = _names(tracker, _unit("activating", "auto-restart", T0 + 2_000_000), _running(101, T0 + 3_000_000, 1))
    assert names == ["waiting restart", "restart", "start"]
    assert tracker.restart_time == 1


def test_an_exit_is_counted_once_even_when_seen_again() -> None:
    tracker = _tracker()
    crash = _exited(100, T0, T0 + 100_000)
    tracker.update(decode_change(crash))
    tracker.update(decode_change(dict(crash)))  # the same exit in a later signal (e.g. with the Unit group)
    assert tracker.counters.unstable == 1
    # A new god seeds from systemd: the exit it already counted is not counted again.
    fresh = AppTracker(tracker.record, tracker.unit, tracker.counters)
    fresh.seed(decode_change({**crash, **_unit("activating", "auto-restart", T0 + 100_000)}))
    assert tracker.counters.unstable == 1


def test_seed_counts_an_exit_god_missed_without_events() -> None:
    tracker = _tracker()
    outcome = tracker.seed(decode_change({**_exited(100, T0, T0 + 100_000, restarts=4),
                                          **_unit("activating", "auto-restart", T0)}))
    assert outcome.events == []
    assert tracker.counters.unstable == 1 and tracker.counters.last_exit_usec == T0 + 100_000
    assert tracker.restart_time == 4


def test_user_stop_is_a_manual_exit_and_a_stop() -> None:
    tracker = _tracker()
    _names(tracker, _running(100, T0), _unit("active", "running", T0))
    assert _names(tracker, _unit("deactivating", "stop-sigterm", T0 + 1, job=7)) == []
    (event,) = tracker.update(decode_change(_exited(100, T0, T0 + 200_000, code=1, status=0))).events
    assert event.details["manually"]
    assert tracker.counters.unstable == 0  # a stop is not an unstable restart
    assert _names(tracker, _unit("inactive", "dead", T0 + 200_000)) == []
    assert [e.event for e in tracker.settle()] == ["stop"]


def test_start_limit_hit_is_errored() -> None:
    tracker = _tracker()
    _names(tracker, _running(100, T0), _unit("active", "running", T0))
    tracker.update(decode_change(_exited(100, T0, T0 + 100_000, restarts=16)))
    tracker.update(decode_change(_unit("failed", "failed", T0 + 100_000)))
    (event,) = tracker.settle()
    assert event.event == "errored"
    assert event.details["restart_time"] == 16


def test_autorestart_off_exit_is_a_stop_not_errored() -> None:
    tracker = _tracker(autorestart=False)
    _names(tracker, _running(100, T0), _unit("active", "running", T0))
    tracker.update(decode_change(_exited(100, T0, T0 + 100_000)))
    tracker.update(decode_change(_unit("failed", "failed", T0 + 100_000)))
    (event,) = tracker.settle()
    assert event.event == "stop" and "not restarted" in event.details["reason"]
    assert tracker.counters.unstable == 0


@pytest.mark.parametrize(("previous", "uptime", "expected"), [
    (0, 0, 100), (100, 50, 150), (150, 50, 225), (225, 50, 337), (337, 50, 505), (505, 50, 757),
    (12921, 50, 15000), (15000, 50, 15000),
    (15000, 30_000, 100),  # a run of 30 s starts the curve again
])
def test_backoff_follows_pm2s_curve(previous: int, uptime: int, expected: int) -> None:
    assert next_backoff_ms(previous, 100, uptime) == expected


def test_backoff_schedules_a_restart_after_the_current_delay() -> None:
    tracker = _tracker(exp_backoff_restart_delay=100)
    delays = []
    started = T0
    for _ in range(4):
        outcome = tracker.update(decode_change(_exited(100, started, started + 50_000)))
        delays.append((outcome.backoff_due_usec - (started + 50_000)) // 1000)
        started += 10_000_000
    assert delays == [100, 150, 225, 337]


def test_backoff_at_the_cap_is_left_to_systemd() -> None:
    tracker = _tracker(exp_backoff_restart_delay=100)
    tracker.counters.backoff_ms = 15000
    # RestartSec=15s fires itself
    assert tracker.update(decode_change(_exited(100, T0, T0 + 50_000))).backoff_due_usec == 0


def test_seed_after_god_was_down_counts_the_crash_loop_it_missed() -> None:
    tracker = _tracker(restart_delay=100)
    # god saw the 2nd exit (NRestarts 1, waiting in auto-restart), then died.
    tracker.update(decode_change(_running(100, T0, 1)))
    tracker.update(decode_change(_exited(100, T0, T0 + 50_000, restarts=1)))
    tracker.update(decode_change(_unit("activating", "auto-restart", T0 + 50_000)))
    assert tracker.counters.unstable == 1
    # 5 more restarts of 50 ms runs happened meanwhile; the unit now waits after the 7th exit.
    fresh = AppTracker(tracker.record, tracker.unit, tracker.counters)
    fresh.seed(decode_change({**_exited(200, T0 + 850_000, T0 + 900_000, restarts=6),
                              **_unit("activating", "auto-restart", T0)}))
    # Exits after the one god counted: those followed by restarts 3..6 and the newest, waiting: 5 in all.
    assert fresh.counters.unstable == 1 + 5
    assert fresh.counters.seen_restarts == 6 and fresh.counters.awaiting_restart == 1
    # Seeding again (god restarted twice) adds nothing.
    again = AppTracker(tracker.record, tracker.unit, fresh.counters)
    again.seed(decode_change({**_exited(200, T0 + 850_000, T0 + 900_000, restarts=6),
                              **_unit("activating", "auto-restart", T0)}))
    assert again.counters.unstable == 6


def test_seed_does_not_call_long_runs_unstable() -> None:
    tracker = _tracker()
    tracker.update(decode_change(_exited(100, T0, T0 + 50_000, restarts=0)))
    tracker.update(decode_change(_unit("activating", "auto-restart", T0 + 50_000)))
    fresh = AppTracker(tracker.record, tracker.unit, tracker.counters)
    # 3 restarts over 10 minutes while god was down: runs of minutes, not unstable; the app runs now.
    fresh.seed(decode_change({**_running(300, T0 + 600_000_000, restarts=3), **_unit("active", "running", T0)}))
    assert fresh.counters.unstable == 1


def test_seed_of_a_running_app_estimates_the_short_runs_it_missed() -> None:
    tracker = _tracker()
    tracker.update(decode_change(_exited(100, T0, T0 + 50_000, restarts=0)))
    tracker.update(decode_change(_unit("activating", "auto-restart", T0 + 50_000)))
    fresh = AppTracker(tracker.record, tracker.unit, tracker.counters)
    # 4 restarts within 400 ms, and the 5th run is going on now: 3 short runs god did not see end.
    fresh.seed(decode_change({**_running(300, T0 + 450_000, restarts=4), **_unit("active", "running", T0)}))
    assert fresh.counters.unstable == 1 + 3


def test_a_signal_older_than_the_seeded_state_is_ignored() -> None:
    tracker = _tracker()
    tracker.seed(decode_change({**_exited(100, T0, T0 + 50_000, restarts=5),
                                **_unit("activating", "auto-restart", T0 + 60_000)}))
    stale_service = _exited(90, T0 - 1_000_000, T0 - 900_000, restarts=4)
    stale_unit = _unit("active", "running", T0 - 1_000_000)
    assert tracker.update(decode_change(stale_service)).events == []
    assert tracker.update(decode_change(stale_unit)).events == []
    assert tracker.counters.seen_restarts == 5 and tracker.sub_state == "auto-restart"
