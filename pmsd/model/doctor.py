"""pmsd doctor's findings (pmsd.api.doctor): one per check, in a shape the text and JSON renderings share."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass


class Level(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    found: str  # what is there
    why: str = ""  # what it does to pmsd's apps
    fix: str = ""  # the exact command, or the file to write and its content

    def to_json(self) -> dict[str, str]:
        return {key: str(value) for key, value in asdict(self).items()}


def worst(findings: list[Finding]) -> Level:
    """The most serious level among the findings (OK for none)."""
    for level in (Level.FAIL, Level.WARN):
        if any(finding.level == level for finding in findings):
            return level
    return Level.OK
