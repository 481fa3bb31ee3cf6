"""A small single-threaded event loop: file descriptors through `selectors`, and one-shot timers.

god has nothing to do between events, so the loop sleeps until a descriptor is readable or the next timer is
due; with no timers it sleeps indefinitely (apart from the watchdog keep-alive).
"""

from __future__ import annotations

import heapq
import itertools
import selectors
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# The longest one turn runs due timers before it looks at its descriptors again: 100 crash-looping apps' backoff
# restarts fall due together, each a D-Bus call that waits for a busy manager, and clients (`pmsd ls`) waited
# behind all of them (4 s, issue 19's soak).
TIMERS_BUSY_S = 0.05


@dataclass(order=True)
class Timer:
    due: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class _Handlers:
    """What runs when a descriptor is ready: its reader, and its writer while one is set (Loop.set_writer)."""

    def __init__(self, reader: Callable[[], None]) -> None:
        self.reader = reader
        self.writer: Callable[[], None] | None = None

    def __call__(self, mask: int = selectors.EVENT_READ) -> None:
        if mask & selectors.EVENT_WRITE and self.writer is not None:
            self.writer()
        if mask & selectors.EVENT_READ:
            self.reader()


class Loop:
    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._timers: list[Timer] = []
        self._seq = itertools.count()
        self.running = True

    def add_reader(self, fileobj: int, callback: Callable[[], None]) -> None:
        self.selector.register(fileobj, selectors.EVENT_READ, _Handlers(callback))

    def remove_reader(self, fileobj: int) -> None:
        """Stop watching the descriptor (its writer too)."""
        self.selector.unregister(fileobj)

    def set_writer(self, fileobj: int, callback: Callable[[], None] | None) -> None:
        """Call `callback` whenever the descriptor (already added with add_reader) can be written to; None stops."""
        handlers: _Handlers = self.selector.get_key(fileobj).data
        if (handlers.writer is None) == (callback is None):
            handlers.writer = callback
            return
        handlers.writer = callback
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if callback is not None else 0)
        self.selector.modify(fileobj, events, handlers)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(time.monotonic() + max(0.0, delay), next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    def run_once(self, before_wait: Callable[[], None]) -> None:
        before_wait()
        timeout = None
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        if self._timers:
            timeout = max(0.0, self._timers[0].due - time.monotonic())
        for key, mask in self.selector.select(timeout):
            key.data(mask)
        now = time.monotonic()
        deadline = now + TIMERS_BUSY_S
        while self._timers and (self._timers[0].cancelled or self._timers[0].due <= now):
            if time.monotonic() >= deadline:
                break  # the timers left are due: the next turn polls the descriptors without sleeping
            timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.callback()

    def stop(self) -> None:
        self.running = False

    def run(self, before_wait: Callable[[], None]) -> None:
        while self.running:
            self.run_once(before_wait)
