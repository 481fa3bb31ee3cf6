"""god's counters file (pmsd.model.counters), persisted so that the CLI shows the same figures whether god is up
or not. The file is written by god alone (atomically), read by anyone."""

from __future__ import annotations

import json
import os

from pmsd.model.counters import AppCounters
from pmsd.state.atomic import write_atomic

COUNTERS_FILE = "god-counters.json"


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


def save_counters(state_dir: str, counters: dict[int, AppCounters]) -> None:
    write_atomic(counters_path(state_dir),
                 json.dumps({str(k): v.to_json() for k, v in sorted(counters.items())}))
