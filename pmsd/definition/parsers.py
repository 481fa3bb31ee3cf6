"""Value parsers for the settings table (pmsd.definition.settings).

A parser turns a value from JSON/YAML/TOML/JS or the command line into pmsd's typed value, or raises
ValueError whose text completes the sentence "<file>: app 'x' key 'k': ..." (a ValueHint also says what to do).
Values that reach a systemd unit are checked here against what systemd accepts (pmsd.definition.unitvalues).
"""

from __future__ import annotations

import decimal
import ipaddress
import json
import math
import os
import re
import shlex
from collections.abc import Mapping

from pmsd.definition.cron import CronError, on_calendar
from pmsd.definition.unitvalues import argument_problem, shown, text_problem, unicode_problem, user_group_problem

U32_MAX = 2**32 - 1
MS_MAX = 2**63 // 1000 - 1  # durations travel as microseconds in a uint64
# Numbers are read from ASCII digits only: str.isdigit() and int() also take "²" or "٣", which JavaScript's
# Number() (PM2) does not; and at most this many of them, far more than any value pmsd takes needs, so that int()
# never sees more than it reads (sys.get_int_max_str_digits(): 4300) and float() never overflows to infinity.
MAX_DIGITS = 30
_WHOLE = re.compile(rf"\s*-?[0-9]{{1,{MAX_DIGITS}}}\s*")


class ValueHint(ValueError):
    """A ValueError that also says what to do (the UsageError's hint)."""

    def __init__(self, problem: str, hint: str) -> None:
        super().__init__(problem)
        self.hint = hint


def parse_str(value: object) -> str:
    """Text: a string, or a number as text. It is stored and handed on as UTF-8, so a lone surrogate (JSON's
    "\\ud800") is refused."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a string, got {describe_value(value)}")
    text = str(value)
    problem = unicode_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return text


def parse_text(value: object) -> str:
    """A string that can be written into a systemd unit: no control characters (pmsd.definition.unitvalues)."""
    text = parse_str(value)
    problem = text_problem(text)
    if problem is not None:
        raise ValueHint(problem, "remove it: a unit file holds one setting per line")
    return text


def parse_user_group(value: object) -> str:
    """User= or Group=: a name systemd's valid_user_group_name() accepts, or a numeric id."""
    text = parse_str(value)
    problem = user_group_problem(text)
    if problem is not None:
        raise ValueHint(problem, "give an existing user or group name (no control characters, ':' or '/', "
                        "spaces at its ends or trailing backslash), or a numeric id")
    return text


def parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"expected true or false, got {describe_value(value)}")


def parse_count(value: object) -> int:
    """A whole number >= 0 that fits systemd's uint32 counters."""
    number = _whole_number(value)
    if not 0 <= number <= U32_MAX:
        raise ValueError(f"expected a whole number from 0 to {U32_MAX}, got {_short(str(number))}")
    return number


_DURATION = re.compile(rf"^\s*([0-9]{{1,{MAX_DIGITS}}})\s*(ms|s|m|h)?\s*$")
_DURATION_UNIT_MS = {None: 1, "ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def parse_duration_ms(value: object) -> int:
    """Milliseconds, as PM2 takes them: a number, or a string such as "1500", "2s", "1m", "1h"."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"expected milliseconds or a duration like '2s', '1m', got {shown(value)}")
        number = int(match.group(1)) * _DURATION_UNIT_MS[match.group(2)]
    else:
        number = _whole_number(value)
    if not 0 <= number <= MS_MAX:
        raise ValueError(f"expected a duration from 0 to {MS_MAX} ms, got {_short(str(number))}")
    return number


_SECONDS = re.compile(rf"^\s*([0-9]{{1,{MAX_DIGITS}}}(?:\.[0-9]*)?|\.[0-9]+)\s*$")


def parse_seconds_ms(value: object) -> int:
    """PM2's `--watch-delay` flag: a bare number is seconds (4, 0.5), as PM2 reads it; with a unit ("500ms",
    "2s", "1m") it is that duration. Milliseconds, rounded."""
    if isinstance(value, str) and _SECONDS.match(value):
        number = round(float(value) * 1000)
        if number > MS_MAX:
            raise ValueError(f"expected a duration up to {MS_MAX // 1000} s, got {value.strip()} s")
        return number
    try:
        return parse_duration_ms(value)
    except ValueError:
        raise ValueError(f"expected seconds (4, 0.5) or a duration like '500ms', '2s', got "
                         f"{shown(value) if isinstance(value, str) else describe_value(value)}") from None


def parse_positive_duration_ms(value: object) -> int:
    number = parse_duration_ms(value)
    if number == 0:
        raise ValueError("expected a duration above 0 ms")
    return number


def parse_log_file(value: object) -> str | bool:
    """PM2's log_file: a path, or true for PM2's default combined file (false: none)."""
    if isinstance(value, bool):
        return value
    return parse_text(value)


def parse_log_type(value: object) -> str:
    text = parse_str(value)
    if text not in ("json", "raw"):
        raise ValueError(f"expected 'json' (or 'raw'), got {text!r}")
    return text


def parse_exit_codes(value: object) -> tuple[int, ...]:
    """One exit code, a list of them, or (from the command line) "0,3,9"."""
    items: list[object]
    if isinstance(value, str):
        items = [item for item in re.split(r"[,\s]+", value.strip()) if item]
    elif isinstance(value, list):
        items = list(value)
    else:
        items = [value]
    codes: list[int] = []
    for item in items:
        code = _whole_number(item)
        if not 0 <= code <= 255:
            raise ValueError(f"exit codes run from 0 to 255, got {_short(str(code))}")
        codes.append(code)
    return tuple(sorted(set(codes)))


_MEMORY = re.compile(rf"^\s*([0-9]{{1,{MAX_DIGITS}}}(?:\.[0-9]+)?)\s*([KMG]?)B?\s*$", re.IGNORECASE)
_MEMORY_UNIT = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_memory_bytes(value: object) -> int:
    """Bytes, as PM2 takes them: a number, or "300K", "150M", "1G" (powers of 1024)."""
    if isinstance(value, str):
        match = _MEMORY.match(value)
        if not match:
            raise ValueError(f"expected bytes or a size like '300K', '150M', '1G', got {shown(value)}")
        number = int(float(match.group(1)) * _MEMORY_UNIT[match.group(2).upper()])
    else:
        number = _whole_number(value)
    if not 0 < number < 2**63:
        raise ValueError(f"expected a size above 0 bytes, got {_short(str(number))}")
    return number


def parse_watch(value: object) -> tuple[str, ...]:
    """PM2's `watch`: true (the app's cwd), false, one path, or a list of paths (relative to cwd)."""
    if isinstance(value, bool):
        return (".",) if value else ()
    if isinstance(value, str):
        return _paths([value]) if value.lower() not in ("true", "false") else parse_watch(value.lower() == "true")
    if isinstance(value, list):
        return _paths(value)
    raise ValueError(f"expected true/false, a path or a list of paths, got {describe_value(value)}")


def _paths(value: list[object]) -> tuple[str, ...]:
    """Paths: no file name holds a NUL byte (regression: `watch: "~\\0"` crashed pmsd in os.path.expanduser)."""
    paths = parse_argv_list(value)
    if any("\0" in path for path in paths):
        raise ValueError("a path cannot hold a NUL byte")
    return paths


def parse_argv_list(value: list[object]) -> tuple[str, ...]:
    items = tuple(parse_str(item) for item in value)
    if any(not item for item in items):
        raise ValueError("paths cannot be empty")
    return items


def parse_patterns(value: object) -> tuple[str, ...]:
    """A list of globs or regular expressions (PM2's ignore_watch), or one of them."""
    if isinstance(value, str):
        return (parse_str(value),) if value else ()
    if isinstance(value, list):
        return parse_argv_list(value)
    raise ValueError(f"expected a pattern or a list of patterns, got {describe_value(value)}")


def parse_filter_env(value: object) -> bool | tuple[str, ...]:
    """PM2's filter_env: true (leave out the whole environment `pmsd start` ran in), false, or strings that
    leave out the caller's variables whose names contain them: a list, or one string (from the command line
    "A,B"; a variable name holds no comma). No strings is false, as in PM2 (an empty list filters nothing)."""
    if isinstance(value, bool):
        return value
    items: list[object]
    if isinstance(value, str):
        if value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        items = [item.strip() for item in value.split(",")]
        items = [item for item in items if item]
    elif isinstance(value, list):
        items = list(value)
    else:
        raise ValueError(f"expected true/false, a string or a list of strings, got {describe_value(value)}")
    strings = tuple(parse_str(item) for item in items)
    if any(not item for item in strings):
        raise ValueHint("an empty string would match every variable", "use filter_env: true to leave them all out")
    return tuple(dict.fromkeys(strings)) or False


def parse_cron(value: object) -> str:
    """A cron pattern (5 or 6 fields, or @daily and friends), checked now rather than when it fires."""
    text = parse_str(value).strip()
    problem = text_problem(text)  # the pattern is named in the timer's Description=
    if problem is not None:
        raise ValueError(f"invalid cron pattern: {problem}")
    try:
        on_calendar(text)
    except CronError as error:
        raise ValueError(f"invalid cron pattern {text!r}: {error}") from None
    return text


MAX_INSTANCES = 1024


def parse_instances(value: object) -> int:
    """PM2's instances: a count; "max" or 0 for one per CPU; -N for all CPUs but N (at least one)."""
    cpus = os.cpu_count() or 1
    if isinstance(value, str) and value.strip().lower() == "max":
        return cpus
    number = _whole_number(value)
    if number == 0:
        return cpus
    if number < 0:
        return max(1, cpus + number)
    if number > MAX_INSTANCES:
        raise ValueError(f"expected at most {MAX_INSTANCES} instances, got {_short(str(number))}")
    return number


_EXEC_MODES = {"fork": "fork", "fork_mode": "fork", "cluster": "cluster", "cluster_mode": "cluster"}


def parse_exec_mode(value: object) -> str:
    text = parse_str(value)
    if text not in _EXEC_MODES:
        raise ValueError(f"expected 'fork' or 'cluster', got {text!r}")
    return _EXEC_MODES[text]


def parse_port(value: object) -> str:
    """A TCP port (3000), or an address and port ("127.0.0.1:3000", "[::1]:3000"): ListenStream= text."""
    text = parse_str(value).strip()
    host, _, port_text = text.rpartition(":") if ":" in text else ("", "", text)
    if not re.fullmatch(rf"[0-9]{{1,{MAX_DIGITS}}}", port_text) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"expected a port from 1 to 65535, or address:port, got {shown(text)}")
    if host:
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if ":" in host and bare == host:
            raise ValueError(f"write an IPv6 address in brackets, as in [::1]:{port_text}; got {text!r}")
        try:
            address = ipaddress.ip_address(bare)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address (systemd's ListenStream= takes no host names)") from None
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
            # Python takes any text after "%" as the zone, and it would reach the socket unit's ListenStream=.
            raise ValueHint(f"{host!r}: an IPv6 zone (%{address.scope_id}) is not supported",
                            "give the address without its zone")
        host = f"[{address}]" if address.version == 6 else str(address)
        return f"{host}:{int(port_text)}"
    return str(int(port_text))


def port_number(listen: str) -> int:
    return int(listen.rpartition(":")[2])


def parse_env_name(value: object) -> str:
    name = parse_str(value)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"{name!r} is not a valid environment variable name")
    return name


def parse_argv(value: object) -> tuple[str, ...]:
    """Arguments as a list, or one string split the way a shell would (PM2 accepts both)."""
    if isinstance(value, str):
        try:
            words = tuple(shlex.split(value))
        except ValueError as error:
            raise ValueError(f"cannot split {value!r} into arguments: {error}") from None
    elif isinstance(value, list):
        words = tuple(parse_str(item) for item in value)
    else:
        raise ValueError(f"expected a string or a list of strings, got {describe_value(value)}")
    for word in words:
        problem = argument_problem(word)
        if problem is not None:
            raise ValueError(problem)
    return words


def parse_env(value: object) -> dict[str, str]:
    """A mapping of variable names to values, each value as PM2 hands it to the app (lib/Common.js,
    mergeEnvironmentVariables): objects, lists and null as JSON text, numbers and booleans as JavaScript
    writes them (String(5), String(1.5), String(true))."""
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping of variable names to values, got {describe_value(value)}")
    env: dict[str, str] = {}
    for key, item in value.items():
        name = str(key)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            # systemd drops such names from an EnvironmentFile= with only a log line (env_name_is_valid).
            raise ValueError(f"{name!r} is not a valid environment variable name (letters, digits and _, "
                             "not starting with a digit)")
        env[name] = item if isinstance(item, str) else js_text(item, name)
        if "\0" in env[name]:
            raise ValueError(f"the value of {name!r} contains a NUL byte")
        if unicode_problem(env[name]) is not None:  # the env file is UTF-8
            raise ValueError(f"the value of {name!r}: {unicode_problem(env[name])}")
    return env


def js_text(value: object, name: str) -> str:
    """A value as JavaScript turns it into a variable: String() of a number or boolean, JSON.stringify() of
    anything else (null included: PM2 gives the app "null")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return js_number(value)
    return js_json(value, name)


def js_json(value: object, name: str) -> str:
    """JSON.stringify(value): compact, non-ASCII kept, numbers as JavaScript writes them."""
    if value is None or isinstance(value, (bool, int, float)):
        return "null" if value is None else js_text(value, name)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{js_json(v, name)}"
                              for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(js_json(item, name) for item in value) + "]"
    raise ValueError(f"the value of {name!r} is {type(value).__name__}, which has no text form; quote it")


def js_number(number: float) -> str:
    """Number.prototype.toString() (ECMA-262, Number::toString): the shortest digits that read back (Python's
    repr finds the same), in plain notation for 1e-7 < |x| < 1e21 and in exponent notation outside."""
    if isinstance(number, int) and abs(number) < 10**21:
        return str(number)
    try:
        number = float(number)
    except OverflowError:  # JSON.parse reads an integer beyond the largest double as Infinity
        number = math.inf if number > 0 else -math.inf
    if math.isnan(number) or math.isinf(number):
        return "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")
    if number == 0:
        return "0"
    _, digit_tuple, exponent = decimal.Decimal(repr(abs(number))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exponent)  # ECMA-262's n: the value is 0.<digits> x 10^point
    prefix = "-" if number < 0 else ""
    if len(digits) <= point <= 21:
        return prefix + digits + "0" * (point - len(digits))
    if 0 < point <= 21:
        return prefix + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return prefix + "0." + "0" * -point + digits
    shown = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{prefix}{shown}e{'+' if point > 0 else '-'}{abs(point - 1)}"


def _whole_number(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {describe_value(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _WHOLE.fullmatch(value):
        return int(value)
    # "²", "٣" or 5000 digits look like a number: say which ones pmsd reads.
    digits = f" (digits 0-9, at most {MAX_DIGITS})" if isinstance(value, str) and value.strip().lstrip("-").isdigit() \
        else ""
    raise ValueError(f"expected a whole number{digits}, got {describe_value(value)}")


def describe_value(value: object) -> str:
    kind = {dict: "a mapping", list: "a list", bool: "a boolean", type(None): "null"}.get(type(value))
    return kind if kind else shown(value) if isinstance(value, str) else _short(repr(value))


def _short(text: str) -> str:
    return text if len(text) <= 60 else f"{text[:60]}... ({len(text)} characters)"
