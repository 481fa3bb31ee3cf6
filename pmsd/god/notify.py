"""sd_notify(3) through sdnotify: READY=1, WATCHDOG=1, STATUS=, STOPPING=1."""

from __future__ import annotations

from collections.abc import Callable

import sdnotify


def notifier() -> Callable[[str], None]:
    sender = sdnotify.SystemdNotifier()

    def notify(text: str) -> None:
        sender.notify(text)

    return notify
