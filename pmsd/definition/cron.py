"""Validate PM2's `cron_restart` pattern and translate it into systemd `OnCalendar=` expressions.

PM2 (v5.3+) hands `cron_restart` to the croner library: five fields (`min hour dom month dow`) or six
(`sec min hour dom month dow`), with `*`, numbers, `a-b`, lists, steps `*/n`, `a/n`, `a-b/n`, JAN-DEC and
SUN-SAT (any case, 0 and 7 both Sunday) and the @nicknames. croner's own extensions (`L`, `W`, `#`, `?`) are
refused rather than guessed at.

The output uses systemd's calendar event syntax, `[DOW] YYYY-MM-DD HH:MM:SS` (man systemd.time, "CALENDAR
EVENTS"). We translate each field to the set of values it matches and write that set back in the form
`systemd-analyze calendar` prints as "Normalized form": sorted, `*` for everything, `a..b` for a run of three
or more, otherwise a list. Two differences force care:

- systemd has repetitions (`*:00/7`, `01..19/3`; man systemd.time: "the value itself and the value plus all
  multiples of the repetition value are matched"), but its next-elapse search mishandles them when a
  repetition runs past the end of its unit: systemd 252 computes `*-*-* *:00/7:00` from 23:58:30 as 00:07,
  skipping 00:00 (the same class of bug as systemd issues #22665, at month ends, and #40260, at year ends
  in systemd 258). It also refuses a repetition with a single value (`*:50/10`), which cron's `50/10` is.
  So a cron step is always expanded into an explicit list: `*/15` becomes `00,15,30,45`.
- Day-of-month and day-of-week are ANDed: the day must match both, even when both are restricted. That is
  not Vixie cron's rule (it ORs them then: "0 0 1 * MON" fires on the 1st and on every Monday) but it is
  what PM2 users get: PM2 7.0.4 pins croner 4.1.97, whose CronDate.increment (src/date.js:200-231) finds a
  day matching the day-of-month and month fields, then steps a day at a time until the weekday matches
  too (date.js:233-241, "the user isn't able to combine date/month patterns with weekday patterns") and
  searches again from there until nothing changes (date.js:243-249). `new Cron("0 0 1 * MON").enumerate(3)`
  from 2024-02-28 gives 2024-04-01, 2024-07-01, 2025-09-01. systemd ANDs them the same way (man
  systemd.time: "Thu,Fri 2012-*-1,5 11:12:13" is the 1st or 5th "but only if that day is a Thursday or
  Friday"), so every pattern is one expression, `[DOW] *-MM-DD HH:MM:SS`. A date that never comes ("31 2")
  is refused: croner 4.1.97 takes it and never fires (its search gives up at year 4000, date.js:224-227).
  Every (month, day) that exists falls on each weekday within the 400-year Gregorian cycle, so a weekday
  cannot make a pattern impossible, only rare ("0 0 29 2 MON": 2044, 2072, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CronError", "on_calendar"]


class CronError(ValueError):
    """A `cron_restart` pattern croner would reject, or that pmsd cannot translate; says which field."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int  # highest value accepted literally (7 for day-of-week: Sunday again)
    open_high: int  # where `*` and `a/n` stop (6 for day-of-week, like croner)
    names: tuple[str, ...] = ()  # names[i] stands for low + i


_SECOND = _Field("second", 0, 59, 59)
_MINUTE = _Field("minute", 0, 59, 59)
_HOUR = _Field("hour", 0, 23, 23)
_DOM = _Field("day-of-month", 1, 31, 31)
_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTH = _Field("month", 1, 12, 12, _MONTH_NAMES)
_DOW = _Field("day-of-week", 0, 7, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))

_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",  # Vixie cron's; croner does not know it, but it can only mean this
    "@hourly": "0 * * * *",
}
_NUMBER = re.compile(r"[0-9]+")
_CRONER_EXTENSION = re.compile(r"[0-9]*(L|W|LW)|.*[#?].*", re.IGNORECASE)
_SYSTEMD_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # systemd's order: Monday first
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February 29 exists in leap years


def on_calendar(pattern: str) -> tuple[str, ...]:
    """The OnCalendar= expression firing as `pattern`, in a tuple (always one, since croner ANDs the day fields)."""
    text = pattern.strip()
    if not text:
        raise CronError("the pattern is empty")
    if text.startswith("@"):
        if text.lower() not in _NICKNAMES:
            raise CronError(f"unknown nickname {text!r} (known: {', '.join(_NICKNAMES)})")
        text = _NICKNAMES[text.lower()]
    parts = text.split()
    if len(parts) not in (5, 6):
        raise CronError(
            f"expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second first), got {len(parts)}"
        )
    if len(parts) == 5:
        parts.insert(0, "0")  # croner: seconds default to 0
    fields = (_SECOND, _MINUTE, _HOUR, _DOM, _MONTH, _DOW)
    seconds, minutes, hours, days, months, weekdays = (_values(f, p) for f, p in zip(fields, parts, strict=True))
    if not any(day <= _DAYS_IN_MONTH[m - 1] for m in months for day in days):
        raise CronError(f"field 'day-of-month': {parts[3]!r} never occurs in month(s) {parts[4]!r}")

    # The day must match the weekday AND the date, like croner 4.1.97 (see the module docstring).
    weekday = f"{_render_weekdays(weekdays)} " if len(weekdays) < 7 else ""
    date = f"*-{_render(_MONTH, months)}-{_render(_DOM, days)}"
    time = f"{_render(_HOUR, hours)}:{_render(_MINUTE, minutes)}:{_render(_SECOND, seconds)}"
    return (f"{weekday}{date} {time}",)


def _values(field: _Field, text: str) -> list[int]:
    """The sorted values of one field (day-of-week: 0-6, Sunday 0), or CronError saying what is wrong."""
    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            step = _number(field, step_text, item, "step")
            if step == 0:
                raise CronError(f"field {field.name!r}: step 0 in {item!r} is not allowed")
            if step > field.open_high - field.low + 1:
                raise CronError(f"field {field.name!r}: step {step} in {item!r} is larger than the field's range")
        if base == "*":
            start, end = field.low, field.open_high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _atom(field, first, item), _atom(field, last, item, range_end=True)
            if start > end:
                raise CronError(f"field {field.name!r}: range {item!r} goes backwards (cron ranges do not wrap)")
        else:
            start = _atom(field, base, item)
            end = max(start, field.open_high) if slash else start  # `a/n` is `a-<max>/n`; `7/n` is Sunday
        values.update(range(start, end + 1, step))
    if field is _DOW:
        values = {value % 7 for value in values}  # 7 is Sunday too
    return sorted(values)


def _atom(field: _Field, text: str, item: str, range_end: bool = False) -> int:
    upper = text.upper()
    if upper in field.names:
        value = field.names.index(upper) + field.low
        # croner reads "-SUN" as 7 so that FRI-SUN is a forward range.
        return 7 if field is _DOW and range_end and value == 0 else value
    value = _number(field, text, item, "value")
    if not field.low <= value <= field.high:
        raise CronError(f"field {field.name!r}: {value} is out of range {field.low}-{field.high}")
    return value


def _number(field: _Field, text: str, item: str, what: str) -> int:
    if _NUMBER.fullmatch(text):
        if len(text) > 9:  # out of every field's range, and maybe more digits than int() reads (4300)
            raise CronError(f"field {field.name!r}: {what} {text[:9]}... is out of range {field.low}-{field.high}")
        return int(text)
    if not text:
        raise CronError(f"field {field.name!r}: a {what} is missing in {item!r}")
    if _CRONER_EXTENSION.fullmatch(text):
        raise CronError(f"field {field.name!r}: {text!r} (a croner extension: L, W, # or ?) is not supported")
    names = f" or a name ({field.names[0]}-{field.names[-1]})" if field.names and what == "value" else ""
    raise CronError(f"field {field.name!r}: {text!r} is not a number{names}")


def _render(field: _Field, values: list[int]) -> str:
    """Write a sorted set of values in systemd's syntax, as `systemd-analyze calendar` normalizes it."""
    if values == list(range(field.low, field.high + 1)):
        return "*"
    # Never systemd's repetition (`a/n`, `a..b/n`): see the module docstring.
    return ",".join(
        f"{a:02d}..{b:02d}" if b - a >= 2 else ",".join(f"{v:02d}" for v in range(a, b + 1)) for a, b in _runs(values)
    )


def _render_weekdays(weekdays: list[int]) -> str:
    """Weekday names in systemd's Monday-first order; systemd cannot wrap a range past Sunday (Sat..Mon)."""
    order = sorted((day + 6) % 7 for day in weekdays)  # cron 0=Sunday -> systemd index 6
    return ",".join(
        f"{_SYSTEMD_WEEKDAYS[a]}..{_SYSTEMD_WEEKDAYS[b]}" if b - a >= 2
        else ",".join(_SYSTEMD_WEEKDAYS[i] for i in range(a, b + 1))
        for a, b in _runs(order)
    )


def _runs(values: list[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive integers in a sorted list, as (first, last)."""
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs
