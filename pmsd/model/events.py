"""Process events as god reports them (`pmsd events`, `pmsd.connect().events()`).

Names follow PM2's bus where PM2 has one (start, online, exit, restart, stop, delete, errored) and add the
restarts god makes itself (memory restart, watch restart, backoff restart) and the ones a cron timer makes.
`at` is when systemd says the change happened (its own timestamp, ms since the epoch) where it gives one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

EVENT_NAMES = ("start", "online", "exit", "restart", "waiting restart", "errored", "stop", "delete",
               "memory restart", "watch restart", "cron restart")


@dataclass(frozen=True)
class Event:
    event: str
    app: str
    pm_id: int
    at_ms: int
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "app": self.app, "pm_id": self.pm_id, "at": self.at_ms, **self.details}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        base = {"event", "app", "pm_id", "at"}
        return cls(str(data["event"]), str(data["app"]), int(data["pm_id"]), int(data["at"]),
                   {k: v for k, v in data.items() if k not in base})


def now_ms() -> int:
    return int(time.time() * 1000)
