"""A write god makes after changes, at most once every so often: the first change is written at once, those that
follow within `every_s` together when it has passed (a trailing write, never lost)."""

from __future__ import annotations

import time
from collections.abc import Callable

from pmsd.god.loop import Loop, Timer


class ThrottledWrite:
    def __init__(self, loop: Loop, write: Callable[[], None], every_s: float) -> None:
        self.loop = loop
        self.write = write
        self.every_s = every_s
        self.dirty = False
        self.written_at = float("-inf")
        self.timer: Timer | None = None

    def changed(self) -> None:
        self.dirty = True

    def write_if_due(self) -> None:
        """Write now if something changed and the last write is `every_s` old; else make sure a timer brings
        the loop back then (call it from the loop's before_wait)."""
        if not self.dirty:
            return
        wait_s = self.written_at + self.every_s - time.monotonic()
        if wait_s <= 0:
            self.write_now()
        elif self.timer is None:
            self.timer = self.loop.call_later(wait_s, self._due)

    def write_now(self) -> None:
        self.dirty = False
        self.written_at = time.monotonic()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.write()

    def _due(self) -> None:
        self.timer = None  # the loop's turn after a timer runs before_wait, which writes
