"""The counters only god can keep, persisted so that the CLI shows the same figures whether god is up or not.

systemd's NRestarts counts the restarts its own timer makes; the ones god makes (RestartUnit after a backoff
delay, a memory limit or a file change) and PM2's unstable restarts are counted here. The file is written by
god alone (atomically), read by anyone; entries are keyed by pm_id and carry the record's created_at, so a
reused id never inherits another app's counts.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from typing import Any

COUNTERS_FILE = "god-counters.json"


@dataclass
class AppCounters:
    created_at: int
    restarts: int = 0  # restarts god made (systemd's NRestarts does not count a RestartUnit)
    unstable: int = 0  # exits after a run shorter than min_uptime
    last_exit_usec: int = 0  # newest exit already accounted for: an exit is never counted twice
    backoff_ms: int = 0  # the exponential backoff's current delay; 0 until the next crash
    seen_restarts: int = 0  # the unit's NRestarts when god last looked: restarts made while god was down
    awaiting_restart: int = 0  # 1 if the unit was waiting in auto-restart then (its exit already counted)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def counters_path(state_dir: str) -> str:
    return os.path.join(state_dir, COUNTERS_FILE)


def load_counters(state_dir: str) -> dict[int, AppCounters]:
    try:
        with open(counters_path(state_dir), encoding="utf-8") as handle:
            raw = json.load(handle)
        return {int(key): AppCounters(**{k: int(v) for k, v in value.items() if k in AppCounters.__dataclass_fields__})
                for key, value in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        # Missing (god never ran) or damaged: the counters start again from zero, never an error for `ls`.
        return {}


def counters_for(counters: dict[int, AppCounters], pm_id: int, created_at: int) -> AppCounters | None:
    entry = counters.get(pm_id)
    return entry if entry is not None and entry.created_at == created_at else None


def save_counters(state_dir: str, counters: dict[int, AppCounters]) -> None:
    path = counters_path(state_dir)
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({str(k): v.to_json() for k, v in sorted(counters.items())}, handle)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
