"""The counters only god can keep: the restarts it made and PM2's unstable restarts, per app.

systemd's NRestarts counts the restarts its own timer makes; the ones god makes (TryRestartUnit after a backoff
delay, a memory limit or a file change) and PM2's unstable restarts are counted here. Entries are keyed by
pm_id and carry the record's created_at, so a reused id never inherits another app's counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class AppCounters:
    created_at: int
    restarts: int = 0  # restarts god made (systemd's NRestarts does not count a TryRestartUnit)
    unstable: int = 0  # exits after a run shorter than min_uptime
    last_exit_usec: int = 0  # newest exit accounted for (or the start of a run seeded since): never counted twice
    backoff_ms: int = 0  # the exponential backoff's current delay; 0 until the next crash
    seen_restarts: int = 0  # the unit's NRestarts when god last looked: restarts made while god was down
    awaiting_restart: int = 0  # 1 if the unit was waiting in auto-restart then (its exit already counted)

    def to_json(self) -> dict[str, Any]:
        # The instance's own dict (every field, none nested): dataclasses.asdict() deep-copies field by field,
        # which made god's counters write of 1,000 apps ~20 ms, once per batch of signals.
        return dict(self.__dict__)


def counters_for(counters: dict[int, AppCounters], pm_id: int, created_at: int) -> AppCounters | None:
    entry = counters.get(pm_id)
    return entry if entry is not None and entry.created_at == created_at else None
