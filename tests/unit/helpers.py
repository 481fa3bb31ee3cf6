"""Builders for pmsd's value types, and small checkers shared by the unit tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest

from pmsd.model.record import AppRecord
from pmsd.model.spec import AppSpec
from pmsd.systemd.states import ServiceState

# Node apps resolve `node` on PATH; ecosystem files in JavaScript (and .json that is not JSON) need it to run.
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
UPDATE_GOLDEN = os.environ.get("PMSD_UPDATE_GOLDEN") == "1"  # rewrite tests/unit/golden/*.service from the code

# A fixed PATH, so interpreter resolution does not depend on the developer's shell (pyenv shims, ...).
SYSTEM_PATH = "/usr/bin:/bin"


def fuzz_examples(default: int, share: float = 1.0) -> int:
    """max_examples of a fuzz test (issue 19): `default`, sized so that every fuzz test together takes well under
    40 s in CI on 2 cores; or PMSD_FUZZ_EXAMPLES (20000 for a release check), times `share` for tests whose
    examples cost more (those that run node). The hypothesis profile itself is tests/unit/conftest.py's."""
    wanted = os.environ.get("PMSD_FUZZ_EXAMPLES")
    return max(1, round(int(wanted) * share)) if wanted else default


@contextlib.contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Fail with Hang when the block runs longer than `seconds` (SIGALRM: the main thread only)."""

    def expired(_signum: int, _frame: object) -> None:
        raise Hang(f"{what} did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Hang(BaseException):
    """time_limit's failure: a BaseException, so that no `except Exception` in the code under test takes it."""


def make_spec(**overrides: Any) -> AppSpec:
    """A deterministic AppSpec for a Python app at /srv/app/main.py; no file system involved."""
    fields: dict[str, Any] = {
        "name": "main",
        "script": "/srv/app/main.py",
        "interpreter": "/usr/bin/python3",
        "exec_path": "/usr/bin/python3",
        "argv": ("/usr/bin/python3", "/srv/app/main.py"),
        "cwd": "/srv/app",
    }
    fields.update(overrides)
    return AppSpec(**fields)


def make_state(**overrides: Any) -> ServiceState:
    """A running service's state; override what the test is about."""
    fields: dict[str, Any] = {
        "name": "pmsd-main.service",
        "load_state": "loaded",
        "active_state": "active",
        "sub_state": "running",
        "result": "success",
        "main_pid": 4242,
        "n_restarts": 0,
        "exec_main_code": 0,
        "exec_main_status": 0,
        "memory_bytes": 12 * 1024 * 1024,
        "cpu_nsec": 0,
        "control_group": "/user.slice/pmsd-main.service",
        "invocation_id": "0123456789abcdef0123456789abcdef",
        "active_enter_usec": 1_700_000_000_000_000,
        "exec_main_start_usec": 1_700_000_000_000_000,
        "has_job": False,
    }
    fields.update(overrides)
    return ServiceState(**fields)


def make_record(pm_id: int = 0, restart_offset: int = 0, **spec_overrides: Any) -> AppRecord:
    return AppRecord(pm_id=pm_id, spec=make_spec(**spec_overrides), created_at=1_700_000_000_000,
                     restart_offset=restart_offset)


def display_width(text: str) -> int:
    """Terminal columns, counted independently of pmsd's own helper."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


# ------------------------------------------------------------------------------------ D-Bus signatures

_BASIC = frozenset("ybnqiuxtdsogh")


def _complete_type_end(signature: str, start: int, depth: int = 0) -> int:
    """Index just after the single complete type starting at `start`; ValueError when there is none."""
    if depth > 64 or start >= len(signature):
        raise ValueError(f"incomplete type in {signature!r}")
    char = signature[start]
    if char in _BASIC or char == "v":
        return start + 1
    if char == "a":
        if signature.startswith("{", start + 1):
            key_end = start + 2
            if key_end >= len(signature) or signature[key_end] not in _BASIC:
                raise ValueError(f"dict entry key must be a basic type in {signature!r}")
            value_end = _complete_type_end(signature, key_end + 1, depth + 1)
            if not signature.startswith("}", value_end):
                raise ValueError(f"unterminated dict entry in {signature!r}")
            return value_end + 1
        return _complete_type_end(signature, start + 1, depth + 1)
    if char == "(":
        index = start + 1
        if signature.startswith(")", index):
            raise ValueError(f"empty struct in {signature!r}")
        while not signature.startswith(")", index):
            index = _complete_type_end(signature, index, depth + 1)
        return index + 1
    raise ValueError(f"unexpected {char!r} in {signature!r}")


def is_single_complete_type(signature: str) -> bool:
    try:
        return _complete_type_end(signature, 0) == len(signature)
    except ValueError:
        return False


def value_fits(signature: str, value: object) -> bool:
    """Whether `value` is what pystemd must be given for the single complete type `signature`: integers within
    their type's range, booleans, text D-Bus can carry (UTF-8, no NUL), arrays, structs and dict entries."""
    ranges = {"y": (0, 2**8 - 1), "n": (-(2**15), 2**15 - 1), "q": (0, 2**16 - 1), "i": (-(2**31), 2**31 - 1),
              "u": (0, 2**32 - 1), "x": (-(2**63), 2**63 - 1), "t": (0, 2**64 - 1), "h": (0, 2**31 - 1)}
    if signature in ranges:
        low, high = ranges[signature]
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    if signature == "b":
        return isinstance(value, bool)
    if signature == "d":
        return isinstance(value, float)
    if signature in ("s", "o", "g"):
        return isinstance(value, str) and "\0" not in value and _encodes(value)
    if signature.startswith("a{"):
        key_type, value_type = signature[2], signature[3:-1]
        return isinstance(value, dict) and all(value_fits(key_type, k) and value_fits(value_type, v)
                                               for k, v in value.items())
    if signature.startswith("a"):
        return isinstance(value, (list, tuple)) and all(value_fits(signature[1:], item) for item in value)
    if signature.startswith("("):
        members, index = [], 1
        while index < len(signature) - 1:
            end = _complete_type_end(signature, index)
            members.append(signature[index:end])
            index = end
        return isinstance(value, (list, tuple)) and len(value) == len(members) and all(
            value_fits(member, item) for member, item in zip(members, value, strict=True))
    raise ValueError(f"value_fits does not know the signature {signature!r}")


def _encodes(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
