"""god's loop stays responsive when systemd's signals come as fast as god handles them (issue 19's soak: 100 apps
starting while a client followed the events; god drained signals for over WatchdogSec= and systemd aborted it)."""

from __future__ import annotations

import functools
import time
from typing import Any, cast

import pytest

from pmsd.god.daemon import BUSY_S, _handle_for_a_while
from pmsd.god.loop import TIMERS_BUSY_S, Loop
from pmsd.god.notify import KeepAlive
from pmsd.god.policies import Restarter
from pmsd.god.tracker import AppTracker
from pmsd.model.counters import AppCounters
from pmsd.systemd.bus import Manager
from pmsd.systemd.states import UnitListing, active_state
from tests.unit.helpers import make_record

pytestmark = pytest.mark.reliability


class Flood:
    """A manager whose every read brings more signals: numbered, so their order can be checked."""

    def __init__(self, signals: list[Any], endless: bool) -> None:
        self.signals = signals
        self.endless = endless
        self.sent = 0

    def dispatch(self, _deadline: float) -> bool:
        for _ in range(20):
            if not self.endless and self.sent >= 200:
                return True
            self.sent += 1
            self.signals.append(self.sent)
        return False  # more are queued


def _work(handled: list[int], cost_s: float) -> Any:
    def handle(signal: int) -> None:
        handled.append(signal)
        until = time.monotonic() + cost_s  # what handling one signal costs god (D-Bus calls, events)
        while time.monotonic() < until:
            pass

    return handle


def test_an_endless_flood_is_handled_for_busy_s_then_the_loop_gets_its_turn() -> None:
    signals: list[Any] = []
    handled: list[int] = []
    began = time.monotonic()
    done = _handle_for_a_while(cast(Manager, Flood(signals, endless=True)), signals, _work(handled, 0.0005))
    took = time.monotonic() - began
    assert not done
    assert BUSY_S <= took < BUSY_S + 0.5  # bounded (a loaded CI machine may add a little)
    assert handled == list(range(1, len(handled) + 1))  # in order, none skipped
    assert signals == list(range(len(handled) + 1, len(handled) + 1 + len(signals)))  # the rest wait, in order


def test_a_burst_that_ends_is_handled_whole() -> None:
    signals: list[Any] = []
    handled: list[int] = []
    assert _handle_for_a_while(cast(Manager, Flood(signals, endless=False)), signals,
                              _work(handled, BUSY_S / 1000))
    assert handled == list(range(1, 201)) and not signals


def test_due_timers_run_for_a_while_then_the_loop_looks_at_its_descriptors() -> None:
    """100 crash-looping apps' backoff restarts fall due together, each a D-Bus call to a busy manager: clients
    waited behind all of them (`pmsd ls` took 4 s in the soak)."""
    loop = Loop()
    ran: list[int] = []

    def restart(index: int) -> None:
        ran.append(index)
        until = time.monotonic() + 0.002
        while time.monotonic() < until:
            pass

    for index in range(200):
        loop.call_later(0, functools.partial(restart, index))
    began = time.monotonic()
    loop.run_once(lambda: None)
    assert time.monotonic() - began < TIMERS_BUSY_S + 0.3
    assert 0 < len(ran) < 200 and ran == sorted(ran)  # in order; the rest wait for the next turn
    while len(ran) < 200:
        loop.run_once(lambda: None)  # does not sleep: they are due
    assert ran == list(range(200))


class Listing:
    """A manager that lists one unit in `sub_state` and counts the restart jobs asked of it."""

    def __init__(self, sub_state: str) -> None:
        self.sub_state = sub_state
        self.restarts = 0

    def list_units(self, patterns: list[str]) -> list[UnitListing]:
        state = active_state("inactive" if self.sub_state == "dead" else "activating")
        return [UnitListing(patterns[0], "loaded", state, self.sub_state, b"/unit")]

    def try_restart_unit(self, _unit: str) -> None:
        self.restarts += 1


@pytest.mark.parametrize(("sub_state", "restarted"), [("auto-restart", True), ("auto-restart-queued", True),
                                                     ("dead", False)])
def test_a_backoff_restart_comes_only_while_systemd_still_waits_to_restart(sub_state: str, restarted: bool) -> None:
    """god's view lags behind its signals when many apps crash-loop: an app `pmsd stop` or `delete` stopped
    meanwhile was started again by the backoff restart that fell due (soak: units left after `delete all`)."""
    manager = Listing(sub_state)
    record = make_record(pm_id=0, name="api")
    tracker = AppTracker(record, "pmsd-api.service", AppCounters(created_at=0))
    restarter = Restarter(cast(Manager, manager), lambda _event: None, lambda: None)
    assert restarter.restart(tracker, "backoff", delay_ms=100) is restarted
    assert manager.restarts == (1 if restarted else 0)


def test_the_watchdog_keep_alive_comes_while_due_timers_wait() -> None:
    """The soak (CI): 100 apps' backoff restarts fell due faster than god could ask a busy manager for them, the
    keep-alive timer waited behind them all, and systemd killed god after WatchdogSec=. Every turn of the loop
    now sends it once due."""
    loop = Loop()
    beats: list[float] = []
    keep_alive = KeepAlive(loop, lambda _text: beats.append(time.monotonic()), 0.1)

    def restart() -> None:
        until = time.monotonic() + 0.02  # one backoff restart: two calls to a busy manager
        while time.monotonic() < until:
            pass

    for _ in range(100):  # 2 s of work, all due before the keep-alive's timer
        loop.call_later(0, restart)
    began = time.monotonic()
    while time.monotonic() - began < 1.0:
        loop.run_once(keep_alive.beat)
    gaps = [later - earlier for earlier, later in zip([began, *beats], beats, strict=False)]
    # One turn past the interval at most: the timers' share (TIMERS_BUSY_S, finishing the one under way).
    assert len(beats) >= 8 and max(gaps) < 0.1 + TIMERS_BUSY_S + 0.02 + 0.2, gaps
