"""sd_notify(3) through sdnotify: READY=1, WATCHDOG=1, STATUS=, STOPPING=1; and the watchdog's keep-alive."""

from __future__ import annotations

import time
from collections.abc import Callable

import sdnotify

from pmsd.god.loop import Loop


def notifier() -> Callable[[str], None]:
    sender = sdnotify.SystemdNotifier()

    def notify(text: str) -> None:
        sender.notify(text)

    return notify


class KeepAlive:
    """WATCHDOG=1 every `every_s` (half of WatchdogSec=), as long as god's loop turns: from a timer while the loop
    sleeps, and from every turn while it is busy. A timer alone waited behind every timer due before it: when 100
    crash-looping apps' backoff restarts fell due faster than god could ask a busy manager for them, the
    keep-alive came more than WatchdogSec= late and systemd killed a god that was working (the soak, CI). A loop
    that stops turning (a call that never returns) still sends nothing, which is what the watchdog is for."""

    def __init__(self, loop: Loop, notify: Callable[[str], None], every_s: float) -> None:
        self.loop = loop
        self.notify = notify
        self.every_s = every_s
        self.next_at = 0.0
        self._on_timer()

    def beat(self) -> None:
        now = time.monotonic()
        if now >= self.next_at:
            self.notify("WATCHDOG=1")
            self.next_at = now + self.every_s

    def _on_timer(self) -> None:
        self.beat()
        self.loop.call_later(self.every_s, self._on_timer)
