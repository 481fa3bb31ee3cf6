"""god's loop stays responsive when systemd's signals come as fast as god handles them (issue 19's soak: 100 apps
starting while a client followed the events; god drained signals for over WatchdogSec= and systemd aborted it)."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest

from pmsd.god.daemon import BUSY_S, _handle_for_a_while
from pmsd.systemd.bus import Manager

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


def _work(handled: list[int]) -> Any:
    def handle(signal: int) -> None:
        handled.append(signal)
        until = time.monotonic() + 0.0005  # what handling one signal costs god (D-Bus calls, events)
        while time.monotonic() < until:
            pass

    return handle


def test_an_endless_flood_is_handled_for_busy_s_then_the_loop_gets_its_turn() -> None:
    signals: list[Any] = []
    handled: list[int] = []
    began = time.monotonic()
    done = _handle_for_a_while(cast(Manager, Flood(signals, endless=True)), signals, _work(handled))
    took = time.monotonic() - began
    assert not done
    assert BUSY_S <= took < BUSY_S + 0.5  # bounded (a loaded CI machine may add a little)
    assert handled == list(range(1, len(handled) + 1))  # in order, none skipped
    assert signals == list(range(len(handled) + 1, len(handled) + 1 + len(signals)))  # the rest wait, in order


def test_a_burst_that_ends_is_handled_whole() -> None:
    signals: list[Any] = []
    handled: list[int] = []
    assert _handle_for_a_while(cast(Manager, Flood(signals, endless=False)), signals, _work(handled))
    assert handled == list(range(1, 201)) and not signals
