"""pmsd.definition.cron: PM2 `cron_restart` patterns (croner semantics) to systemd OnCalendar= expressions.

The expected expressions are written in the form `systemd-analyze calendar` prints as "Normalized form", and
the systemd tests check that it does. The equivalence tests compare systemd's next elapses with a small,
independent cron matcher below (predicates over candidate times, not the module's value sets), and, where node
and croner 4.1.97 (the version PM2 7.0.4 pins) can be found, with croner's own next run times.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
from datetime import date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmsd.definition.cron import CronError, on_calendar

_ODD = "01,03,05,07,09,11,13,15,17,19,21,23,25,27,29,31"  # */2 in day-of-month

CASES: list[tuple[str, tuple[str, ...]]] = [
    # wildcards and plain values
    ("* * * * *", ("*-*-* *:*:00",)),
    ("* * * * * *", ("*-*-* *:*:*",)),
    ("0 * * * *", ("*-*-* *:00:00",)),
    ("30 4 * * *", ("*-*-* 04:30:00",)),
    ("00 09 01 01 *", ("*-01-01 09:00:00",)),
    ("  0   9\t* *  1-5 ", ("Mon..Fri *-*-* 09:00:00",)),
    # lists and ranges: sorted, deduplicated, runs of three or more as a..b
    ("0,0,30 * * * *", ("*-*-* *:00,30:00",)),
    ("30,0 * * * *", ("*-*-* *:00,30:00",)),
    ("1,2 * * * *", ("*-*-* *:01,02:00",)),
    ("1,2,3,10 * * * *", ("*-*-* *:01..03,10:00",)),
    ("* 9-17 * * *", ("*-*-* 09..17:*:00",)),
    ("0-59 0-23 1-31 1-12 *", ("*-*-* *:*:00",)),
    ("0-10/5,30 * * * *", ("*-*-* *:00,05,10,30:00",)),
    # steps: always an explicit list, never systemd's `a/n` (it skips elapses where the progression overflows)
    ("*/5 * * * *", ("*-*-* *:00,05,10,15,20,25,30,35,40,45,50,55:00",)),
    ("*/7 * * * *", ("*-*-* *:00,07,14,21,28,35,42,49,56:00",)),
    ("*/1 * * * *", ("*-*-* *:*:00",)),
    ("*/30 * * * *", ("*-*-* *:00,30:00",)),
    ("*/60 * * * *", ("*-*-* *:00:00",)),
    ("50/10 * * * *", ("*-*-* *:50:00",)),
    ("5/15 * * * *", ("*-*-* *:05,20,35,50:00",)),
    ("10-40/10 * * * *", ("*-*-* *:10,20,30,40:00",)),
    ("10-59/10 * * * *", ("*-*-* *:10,20,30,40,50:00",)),
    ("10-45/10 * * * *", ("*-*-* *:10,20,30,40:00",)),
    ("0 */6 * * *", ("*-*-* 00,06,12,18:00:00",)),
    ("0 0-23/2 * * *", ("*-*-* 00,02,04,06,08,10,12,14,16,18,20,22:00:00",)),
    ("0 1-20/3 * * *", ("*-*-* 01,04,07,10,13,16,19:00:00",)),
    ("30 */6 1-5,10 JAN-JUN/2 *", ("*-01,03,05-01..05,10 00,06,12,18:30:00",)),
    # day of month and month
    ("0 0 1 * *", ("*-*-01 00:00:00",)),
    ("0 0 1,15 * *", ("*-*-01,15 00:00:00",)),
    ("0 0 1-7 * *", ("*-*-01..07 00:00:00",)),
    ("0 0 */2 * *", (f"*-*-{_ODD} 00:00:00",)),
    ("0 0 31 * *", ("*-*-31 00:00:00",)),
    ("0 0 29 2 *", ("*-02-29 00:00:00",)),
    ("0 0 30 1-3 *", ("*-01..03-30 00:00:00",)),
    ("0 0 1 1 *", ("*-01-01 00:00:00",)),
    ("0 0 1 JAN *", ("*-01-01 00:00:00",)),
    ("0 0 1 jan *", ("*-01-01 00:00:00",)),
    ("0 0 1 Jan-Mar *", ("*-01..03-01 00:00:00",)),
    ("0 0 1 JAN,JUL *", ("*-01,07-01 00:00:00",)),
    ("0 0 1 */3 *", ("*-01,04,07,10-01 00:00:00",)),
    ("0 0 1 JAN-DEC/4 *", ("*-01,05,09-01 00:00:00",)),
    ("0 0 1 2/5 *", ("*-02,07,12-01 00:00:00",)),
    # day of week: 0 and 7 are Sunday, names any case, systemd lists Monday first and never wraps
    ("0 9 * * MON-FRI", ("Mon..Fri *-*-* 09:00:00",)),
    ("0 9 * * mon-fri", ("Mon..Fri *-*-* 09:00:00",)),
    ("0 0 * * 0", ("Sun *-*-* 00:00:00",)),
    ("0 0 * * 7", ("Sun *-*-* 00:00:00",)),
    ("0 0 * * SUN", ("Sun *-*-* 00:00:00",)),
    ("0 0 * * 0,7", ("Sun *-*-* 00:00:00",)),
    ("0 0 * * 0-7", ("*-*-* 00:00:00",)),
    ("0 0 * * SUN-SAT", ("*-*-* 00:00:00",)),
    ("0 0 * * 5-7", ("Fri..Sun *-*-* 00:00:00",)),
    ("0 0 * * FRI-SUN", ("Fri..Sun *-*-* 00:00:00",)),
    ("0 0 * * SAT,SUN", ("Sat,Sun *-*-* 00:00:00",)),
    ("0 0 * * 0-2", ("Mon,Tue,Sun *-*-* 00:00:00",)),
    ("0 0 * * SUN,MON,TUE,WED", ("Mon..Wed,Sun *-*-* 00:00:00",)),
    ("0 0 * * 1,3,5", ("Mon,Wed,Fri *-*-* 00:00:00",)),
    ("0 0 * * */2", ("Tue,Thu,Sat,Sun *-*-* 00:00:00",)),
    ("0 0 * * 1/2", ("Mon,Wed,Fri *-*-* 00:00:00",)),
    ("0 0 * * 1-7/3", ("Mon,Thu,Sun *-*-* 00:00:00",)),
    ("0 12 * * 1-5/2", ("Mon,Wed,Fri *-*-* 12:00:00",)),
    ("0 0 * * 7/2", ("Sun *-*-* 00:00:00",)),  # `a/n` runs to 6, but 7 is Sunday
    ("0 0 * 6 MON", ("Mon *-06-* 00:00:00",)),
    # both restricted: croner 4.1.97 ANDs them (unlike Vixie cron), as systemd does: one expression
    ("0 0 1 * MON", ("Mon *-*-01 00:00:00",)),
    ("30 4 1,15 * 5", ("Fri *-*-01,15 04:30:00",)),
    ("0 0 13 * FRI", ("Fri *-*-13 00:00:00",)),
    ("0 0 1,15 * 1-5", ("Mon..Fri *-*-01,15 00:00:00",)),
    ("0 12 1 JAN,JUN SUN", ("Sun *-01,06-01 12:00:00",)),
    ("0 0 */2 * MON", (f"Mon *-*-{_ODD} 00:00:00",)),
    ("0 0 1 * */1", ("*-*-01 00:00:00",)),  # every weekday: the date alone decides
    ("0 0 1-31 * MON", ("Mon *-*-* 00:00:00",)),  # every date: the weekday alone decides
    ("0 0 29 2 MON", ("Mon *-02-29 00:00:00",)),  # rare (2044, 2072, 2112) but possible
    ("0 0 13 6 FRI", ("Fri *-06-13 00:00:00",)),
    # six fields: seconds first
    ("*/10 * * * * *", ("*-*-* *:*:00,10,20,30,40,50",)),
    ("0 */15 * * * *", ("*-*-* *:00,15,30,45:00",)),
    ("15,45 0 12 * * *", ("*-*-* 12:00:15,45",)),
    ("30 0 0 1 1 *", ("*-01-01 00:00:30",)),
    ("0 0 0 * * 1", ("Mon *-*-* 00:00:00",)),
    # nicknames
    ("@yearly", ("*-01-01 00:00:00",)),
    ("@annually", ("*-01-01 00:00:00",)),
    ("@monthly", ("*-*-01 00:00:00",)),
    ("@weekly", ("Sun *-*-* 00:00:00",)),
    ("@daily", ("*-*-* 00:00:00",)),
    ("@midnight", ("*-*-* 00:00:00",)),
    ("@hourly", ("*-*-* *:00:00",)),
    (" @DAILY ", ("*-*-* 00:00:00",)),
]


@pytest.mark.parametrize(("pattern", "expected"), CASES)
def test_translation(pattern: str, expected: tuple[str, ...]) -> None:
    assert on_calendar(pattern) == expected


ERRORS: list[tuple[str, str]] = [
    ("", "the pattern is empty"),
    (" \t ", "the pattern is empty"),
    ("* * * *", "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second first), got 4"),
    ("* * * * * * *", "got 7"),
    ("0 25 * * *", "field 'hour': 25 is out of range 0-23"),
    ("60 * * * *", "field 'minute': 60 is out of range 0-59"),
    ("60 * * * * *", "field 'second': 60 is out of range 0-59"),
    ("0 0 0 * *", "field 'day-of-month': 0 is out of range 1-31"),
    ("0 0 32 * *", "field 'day-of-month': 32 is out of range 1-31"),
    ("0 0 1 13 *", "field 'month': 13 is out of range 1-12"),
    ("0 0 1 0 *", "field 'month': 0 is out of range 1-12"),
    ("0 0 * * 8", "field 'day-of-week': 8 is out of range 0-7"),
    ("0 0-30 * * *", "field 'hour': 30 is out of range 0-23"),
    ("70/5 * * * *", "field 'minute': 70 is out of range 0-59"),
    ("*/0 * * * *", "field 'minute': step 0 in '*/0' is not allowed"),
    ("0 0-23/0 * * *", "field 'hour': step 0 in '0-23/0' is not allowed"),
    ("5/0 * * * *", "step 0"),
    ("*/61 * * * *", "field 'minute': step 61 in '*/61' is larger than the field's range"),
    ("0 0 * */13 *", "field 'month': step 13"),
    ("5-1 * * * *", "field 'minute': range '5-1' goes backwards"),
    ("0 0 * * SAT-MON", "field 'day-of-week': range 'SAT-MON' goes backwards"),
    ("0 0 * DEC-JAN *", "field 'month': range 'DEC-JAN' goes backwards"),
    ("abc * * * *", "field 'minute': 'abc' is not a number"),
    ("0 0 * FOO *", "field 'month': 'FOO' is not a number or a name (JAN-DEC)"),
    ("0 0 * * MONDAY", "field 'day-of-week': 'MONDAY' is not a number or a name (SUN-SAT)"),
    ("0 0 MON * *", "field 'day-of-month': 'MON' is not a number"),
    ("0 JAN * * *", "field 'hour': 'JAN' is not a number"),
    ("0 0 0 * MON *", "field 'month': 'MON' is not a number or a name (JAN-DEC)"),  # six fields: shifted
    ("0 0 * * */MON", "field 'day-of-week': 'MON' is not a number"),
    ("\u0663 * * * *", "is not a number"),  # an Arabic-Indic three is a digit to str.isdigit, not to cron
    ("+5 * * * *", "'+5' is not a number"),
    ("1.5 * * * *", "'1.5' is not a number"),
    ("0 0 L * *", "field 'day-of-month': 'L' (a croner extension: L, W, # or ?) is not supported"),
    ("0 0 15W * *", "'15W' (a croner extension"),
    ("0 0 * * 5L", "'5L' (a croner extension"),
    ("0 0 * * 5#2", "field 'day-of-week': '5#2' (a croner extension"),
    ("0 0 * * FRI#2", "'FRI#2' (a croner extension"),
    ("0 0 ? * *", "field 'day-of-month': '?' (a croner extension"),
    ("1,,2 * * * *", "field 'minute': a value is missing in ''"),
    ("1, * * * *", "a value is missing in ''"),
    ("*/ * * * *", "field 'minute': a step is missing in '*/'"),
    ("/5 * * * *", "field 'minute': a value is missing in '/5'"),
    ("1- * * * *", "a value is missing in '1-'"),
    ("-1 * * * *", "a value is missing in '-1'"),
    ("1-2-3 * * * *", "field 'minute': '2-3' is not a number"),
    ("*/5/2 * * * *", "'5/2' is not a number"),
    ("**/5 * * * *", "'**' is not a number"),
    ("@reboot", "unknown nickname '@reboot' (known: @yearly, @annually, @monthly, @weekly"),
    ("@daily 5", "unknown nickname '@daily 5'"),
    ("0 0 31 2 *", "field 'day-of-month': '31' never occurs in month(s) '2'"),
    ("0 0 30,31 FEB *", "never occurs in month(s) 'FEB'"),
    ("0 0 31 4,6,9,11 *", "never occurs"),
    ("0 0 31 2 MON", "field 'day-of-month': '31' never occurs in month(s) '2'"),  # no weekday makes it happen
    ("0 0 30 FEB 1-5", "never occurs in month(s) 'FEB'"),
]


@pytest.mark.parametrize(("pattern", "message"), ERRORS)
def test_errors_say_what_is_wrong_and_where(pattern: str, message: str) -> None:
    with pytest.raises(CronError, match=re.escape(message)):
        on_calendar(pattern)


def test_cron_error_is_a_value_error() -> None:
    assert issubclass(CronError, ValueError)


# --- systemd's own reading ----------------------------------------------------------------------------------

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not on PATH")
BASE = datetime(2024, 2, 27, 23, 58, 30)  # UTC; near minute, hour, day and (leap) month boundaries
# systemd-analyze calendar labels later elapses "Iter. #2:" (252) or "Iteration #2:" (257).
_ELAPSE = re.compile(r"(?:Next elapse|Iter\. #\d+|Iteration #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    env = {**os.environ, "TZ": "UTC", "LC_ALL": "C", "SYSTEMD_COLORS": "0"}
    return subprocess.run([SYSTEMD_ANALYZE, "calendar", *args], capture_output=True, text=True, env=env, check=False)


def _systemd_times(expressions: tuple[str, ...], count: int, base: datetime = BASE) -> list[datetime]:
    """The first `count` elapses after `base` of a timer carrying all `expressions` as OnCalendar= values."""
    times: set[datetime] = set()
    for expression in expressions:
        result = _analyze(f"--iterations={count}", f"--base-time={base:%Y-%m-%d %H:%M:%S} UTC", expression)
        assert result.returncode == 0, result.stderr
        times.update(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S") for stamp in _ELAPSE.findall(result.stdout))
    return sorted(times)[:count]


@needs_systemd
@pytest.mark.parametrize("expression", sorted({expression for _, expected in CASES for expression in expected}))
def test_systemd_accepts_each_expression_in_normalized_form(expression: str) -> None:
    result = _analyze(expression)
    assert result.returncode == 0, result.stderr
    normalized = re.search(r"Normalized form: (.*)", result.stdout)
    assert normalized is not None, result.stdout
    assert normalized.group(1) == expression
    assert "Next elapse: never" not in result.stdout


# --- an independent cron matcher, to compare next firing times with systemd's ---------------------------------

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTHS = {name: i for i, name in enumerate(_MONTH_NAMES, 1)}
_WEEKDAYS = {name: i for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
_EXPAND = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}


def _number(text: str, names: dict[str, int], range_end: bool = False) -> int:
    if text.upper() in names:
        value = names[text.upper()]
        return 7 if range_end and names is _WEEKDAYS and value == 0 else value
    return int(text)


def _field_matches(field: str, value: int, low: int, high: int, names: dict[str, int]) -> bool:
    """Does `value` match the cron field? `high` is where `*` and `a/n` stop."""
    for item in field.split(","):
        base, slash, step_text = item.partition("/")
        step = int(step_text) if slash else 1
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-")
            start, end = _number(first, names), _number(last, names, range_end=True)
        else:
            start = _number(base, names)
            end = high if slash else start
        if start <= value <= end and (value - start) % step == 0:
            return True
    return False


def _cron_times(pattern: str, count: int, years: int = 30, base: datetime = BASE) -> list[datetime]:
    """The first `count` firing times after `base`, by brute force over the days of the next `years` years."""
    fields = _EXPAND.get(pattern.strip().lower(), pattern).split()
    if len(fields) == 5:
        fields.insert(0, "0")
    second, minute, hour, dom, month, dow = fields
    seconds = [s for s in range(60) if _field_matches(second, s, 0, 59, {})]
    minutes = [m for m in range(60) if _field_matches(minute, m, 0, 59, {})]
    hours = [h for h in range(24) if _field_matches(hour, h, 0, 23, {})]
    found: list[datetime] = []
    day: date = base.date()
    for _ in range(366 * years):
        weekday = (day.weekday() + 1) % 7  # cron: Sunday 0
        dom_ok = _field_matches(dom, day.day, 1, 31, {})
        sunday_as_7 = weekday == 0 and _field_matches(dow, 7, 0, 6, _WEEKDAYS)
        dow_ok = _field_matches(dow, weekday, 0, 6, _WEEKDAYS) or sunday_as_7
        # croner 4.1.97 (src/date.js:233-241): the day must match both, restricted or not.
        if dom_ok and dow_ok and _field_matches(month, day.month, 1, 12, _MONTHS):
            for h, m, s in itertools.product(hours, minutes, seconds):
                moment = datetime.combine(day, time(h, m, s))
                if moment > base:
                    found.append(moment)
                    if len(found) == count:
                        return found
        day += timedelta(days=1)
    return found


EQUIVALENCE = [
    "*/7 * * * *",  # as `*:00/7`, systemd 252 would skip 00:00 from 23:58:30 (see pmsd.definition.cron)
    "*/13 * * * * *", "5/15 * * * *", "10-45/10 * * * *", "0 1-20/3 * * *", "59 23 * * *",
    "0 0 */2 * *", "0 0 31 * *", "0 0 29 2 *", "0 0 1 */3 *", "0 0 1 2/5 *", "0 0 * * 7", "0 0 * * FRI-SUN",
    "0 0 * * 1/2", "0 0 * * */3", "0 9-17/4 * * 1-5",
    # both day fields restricted: ANDed
    "0 0 1 * MON", "0 0 13 * FRI", "30 4 1,15 * 5", "0 0 1,15 * 1-5", "0 0 */2 * MON", "0 12 1 JAN,JUN SUN",
    "0 0 1 * */1", "0 0 1-31 * MON", "*/20 * 29 FEB 3",
    "@weekly", "@monthly", "@yearly",
]


@needs_systemd
@pytest.mark.parametrize("pattern", EQUIVALENCE)
def test_systemd_fires_when_cron_would(pattern: str) -> None:
    expected = _cron_times(pattern, 12, years=60)  # 12 leap days take 48 years
    assert len(expected) == 12
    assert _systemd_times(on_calendar(pattern), 12) == expected


def test_the_matcher_ands_the_day_fields() -> None:
    # Checks the oracle itself on cases worked out by hand: the first Mondays that are a 1st after 2024-02-27 are
    # 2024-04-01, 2024-07-01 and 2025-09-01 (croner 4.1.97 gives the same); 2024-03-04 is the first Monday.
    assert _cron_times("0 0 1 * MON", 3) == [datetime(2024, 4, 1), datetime(2024, 7, 1), datetime(2025, 9, 1)]
    assert _cron_times("0 0 * * MON", 1) == [datetime(2024, 3, 4)]
    assert _cron_times("0 0 1 * *", 1) == [datetime(2024, 3, 1)]
    assert _cron_times("0 0 29 2 MON", 2, years=50) == [datetime(2044, 2, 29), datetime(2072, 2, 29)]


@st.composite
def _field(draw: st.DrawFn, low: int, high: int, open_high: int, names: tuple[str, ...] = ()) -> str:
    def atom(value: int) -> str:
        if names and value - low < len(names) and draw(st.booleans()):
            name = names[value - low]
            return draw(st.sampled_from([name, name.lower(), name.title()]))
        return str(value)

    def item() -> str:
        kind = draw(st.sampled_from(["n", "a-b", "*/n", "a/n", "a-b/n"]))
        step = draw(st.integers(1, open_high - low + 1))
        a, b = sorted(draw(st.lists(st.integers(low, high), min_size=2, max_size=2)))
        return {"n": atom(a), "a-b": f"{atom(a)}-{atom(b)}", "*/n": f"*/{step}",
                "a/n": f"{atom(min(a, open_high))}/{step}", "a-b/n": f"{atom(a)}-{atom(b)}/{step}"}[kind]

    if draw(st.integers(0, 2)) == 0:
        return "*"
    return ",".join(item() for _ in range(draw(st.integers(1, 3))))


@st.composite
def _pattern(draw: st.DrawFn) -> str:
    fields = [
        draw(_field(0, 59, 59)),
        draw(_field(0, 23, 23)),
        draw(_field(1, 31, 31)),
        draw(_field(1, 12, 12, tuple(_MONTHS))),
        draw(_field(0, 7, 6, tuple(_WEEKDAYS))),
    ]
    if draw(st.booleans()):
        fields.insert(0, draw(_field(0, 59, 59)))
    return " ".join(fields)


@needs_systemd
@settings(max_examples=150, deadline=None)
@given(_pattern(), st.sampled_from([BASE, datetime(2023, 12, 31, 23, 59, 59), datetime(2025, 4, 30, 22, 59, 58)]))
def test_systemd_fires_when_cron_would_for_generated_patterns(pattern: str, base: datetime) -> None:
    try:
        expressions = on_calendar(pattern)
    except CronError as error:
        assert "never occurs" in str(error)
        assert _cron_times(pattern, 1, years=8, base=base) == []
        return
    assert expressions == (expressions[0],)
    assert "/" not in expressions[0]  # no systemd repetitions, ever
    # A weekday and a date together can be rare (February 29th on a Monday): compare up to the matcher's horizon.
    years = 30
    horizon = base.date() + timedelta(days=366 * years)
    expected = _cron_times(pattern, 8, years=years, base=base)
    assert [moment for moment in _systemd_times(expressions, 8, base) if moment.date() < horizon] == expected


# --- croner 4.1.97 itself: the library PM2 7.0.4 runs cron_restart with ------------------------------------

CRONER_VERSION = "4.1.97"  # pinned by PM2 7.0.4's package.json; later croner versions OR the day fields
NODE = shutil.which("node")

# Prints {"version": ..., "times": {pattern: [ISO times] or "error: ..."}}, or {"version": null} when croner
# cannot be found: in $PMSD_CRONER (a croner package directory), else under the pm2 package (or a croner package)
# that node resolves from the working directory or from the global node_modules beside node itself.
_CRONER_SCRIPT = r"""
const path = require("path");
const [base, count, ...patterns] = process.argv.slice(1);
function locate() {
  if (process.env.PMSD_CRONER) return process.env.PMSD_CRONER;
  const roots = [process.cwd(), path.resolve(process.execPath, "..", "..", "lib", "node_modules")];
  try {
    const pm2 = path.dirname(require.resolve("pm2/package.json", { paths: roots }));
    return path.dirname(require.resolve("croner/package.json", { paths: [pm2] }));
  } catch (error) {}
  try {
    return path.dirname(require.resolve("croner/package.json", { paths: roots }));
  } catch (error) {}
  return null;
}
const dir = locate();
let version = null;
try { version = require(path.join(dir, "package.json")).version; } catch (error) {}
const times = {};
if (version !== null) {
  const Cron = require(dir);
  for (const pattern of patterns) {
    try {
      times[pattern] = Cron(pattern).enumerate(Number(count), new Date(base)).map((d) => d.toISOString());
    } catch (error) {
      times[pattern] = "error: " + error.message;
    }
  }
}
console.log(JSON.stringify({ version, times }));
"""

CRONER_AGREES = [
    "0 0 1 * MON", "0 0 13 * FRI", "30 4 1,15 * 5", "0 0 1,15 * 1-5", "0 12 1 JAN,JUN SUN", "0 0 */2 * MON",
    "0 0 1 * */1", "0 0 1-31 * MON", "0 0 29 2 MON", "0 0 13 6 FRI", "*/20 * 29 FEB 3",
    "0 9 * * MON-FRI", "0 0 * * 7", "0 0 * * */2", "*/7 * * * *", "*/13 * * * * *", "0 1-20/3 * * *",
    "0 0 1-7 * *", "0 0 31 * *", "0 0 29 2 *",
]  # not "0 0 */2 * *": croner 4.1.97 steps from February 29th to March 3rd (Feb 31 overflows), skipping the 1st
CRONER_NEVER = ["0 0 31 2 *", "0 0 31 2 MON", "0 0 30 FEB 1-5", "0 0 31 4,6,9,11 *"]  # pmsd refuses these
CRONER_COUNT = 6  # "0 0 29 2 MON" takes 172 years for six


@pytest.fixture(scope="module")
def croner_times() -> dict[str, list[datetime] | str]:
    """croner's first CRONER_COUNT run times after BASE (UTC) for CRONER_AGREES and CRONER_NEVER, or a skip."""
    if NODE is None:
        pytest.skip("node is not on PATH")
    env = {**os.environ, "TZ": "UTC"}  # croner runs on local time
    result = subprocess.run(
        [NODE, "-e", _CRONER_SCRIPT, f"{BASE:%Y-%m-%dT%H:%M:%S}Z", str(CRONER_COUNT), *CRONER_AGREES, *CRONER_NEVER],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    if answer["version"] is None:
        pytest.skip("croner is not installed (set PMSD_CRONER to a croner package directory)")
    if answer["version"] != CRONER_VERSION:
        pytest.skip(f"found croner {answer['version']}, not the {CRONER_VERSION} PM2 pins")
    times: dict[str, list[datetime] | str] = {}
    for pattern, value in answer["times"].items():
        if isinstance(value, str):
            times[pattern] = value
        else:
            times[pattern] = [datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.000Z") for stamp in value]
    return times


@pytest.mark.parametrize("pattern", CRONER_AGREES)
def test_croner_fires_when_the_matcher_says(pattern: str, croner_times: dict[str, list[datetime] | str]) -> None:
    expected = _cron_times(pattern, CRONER_COUNT, years=200)
    assert len(expected) == CRONER_COUNT
    assert croner_times[pattern] == expected


@needs_systemd
@pytest.mark.parametrize("pattern", CRONER_AGREES)
def test_systemd_fires_when_croner_does(pattern: str, croner_times: dict[str, list[datetime] | str]) -> None:
    assert _systemd_times(on_calendar(pattern), CRONER_COUNT) == croner_times[pattern]


@pytest.mark.parametrize("pattern", CRONER_NEVER)
def test_croner_never_fires_when_pmsd_refuses(pattern: str, croner_times: dict[str, list[datetime] | str]) -> None:
    found = croner_times[pattern]
    # croner takes the pattern, then finds no run before year 4000 or, from "31 4" overflowing to May 1st, recurses
    # until the stack runs out.
    assert found == [] or (isinstance(found, str) and "Maximum call stack size exceeded" in found)
    with pytest.raises(CronError, match="never occurs"):
        on_calendar(pattern)
