"""Map PM2 app names to systemd unit names and back.

systemd unit names may only contain ASCII letters, digits, ":", "-", "_", "." and "\\" (unit-name.c,
VALID_CHARS), are at most 255 bytes, and "@" separates a template from its instance. PM2 names can be
anything, so every other byte is written as "\\xNN", the same escape `systemd-escape` uses. Unlike
`systemd-escape` we keep "-" literal: for services it has no meaning (only slice names are hierarchical), and
`pmsd-my-api.service` is what an administrator expects to type. The mapping stays injective because "\\"
itself is escaped.
"""

from __future__ import annotations

import functools
import re

from pmsd.errors import UsageError

UNIT_PREFIX = "pmsd-"
GOD_UNIT = "pmsd-god.service"  # pmsd's own daemon; "god" is therefore a reserved app name
# Cron timers and the services they trigger: "pmsd." can never begin an app's unit name ("pmsd-" does), and
# unlike "pmsd-cron@<app>" it cannot clash with a cluster app's template unit file (pmsd-<app>@.service).
CRON_PREFIX = "pmsd.cron-"
# A cluster app's socket unit triggers this do-nothing service, so that traffic never starts an instance
# behind pmsd's back (socket.c starts a socket's Service= when it is polled and sees a connection).
LISTENER_PREFIX = "pmsd.listen-"
INSTANCE_SUFFIX_MAX = len("@4294967295")  # room for any instance number in the unit name
RESERVED_NAMES = {"all": "'all' is reserved: it means every app",
                  "god": "'god' is reserved: pmsd-god.service is pmsd's own daemon"}
SERVICE_SUFFIX = ".service"
UNIT_NAME_MAX = 255  # UNIT_NAME_MAX in systemd's unit-name.h
_KEPT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.")
_ESCAPE = re.compile(r"\\x([0-9a-f]{2})")


@functools.lru_cache(maxsize=4096)  # `ls` of 1,000 apps names each app's unit several times
def escape_name(name: str) -> str:
    out: list[str] = []
    for index, char in enumerate(name):
        if char in _KEPT and not (index == 0 and char == "."):
            out.append(char)
        else:
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8"))
    return "".join(out)


def unescape_name(escaped: str) -> str:
    raw = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), escaped)
    # Escapes stand for UTF-8 bytes: re-decode the byte string they spell (ValueError if they spell none).
    return raw.encode("latin-1").decode("utf-8")


def check_app_name(name: str) -> None:
    """Reject names pmsd cannot manage unambiguously, saying why."""
    if not name or not name.strip():
        raise UsageError("an app name cannot be empty", "pass --name <name>")
    if name.isdigit():
        raise UsageError(
            f"app name {name!r} is a number, which pmsd would read as an id",
            "choose a name with at least one non-digit character",
        )
    if name in RESERVED_NAMES:
        raise UsageError(RESERVED_NAMES[name], "choose another --name")
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise UsageError(f"app name {name!r} contains control characters", "choose a printable name")
    unit = service_unit(name)
    if len(unit.encode()) + INSTANCE_SUFFIX_MAX > UNIT_NAME_MAX:
        raise UsageError(
            f"app name {name!r} is too long: its unit name {unit[:40]}... exceeds systemd's {UNIT_NAME_MAX} bytes",
            "choose a shorter name (once escaped, each byte of a non-ASCII character takes four)",
        )


def service_unit(name: str) -> str:
    return f"{UNIT_PREFIX}{escape_name(name)}{SERVICE_SUFFIX}"


def instance_unit(name: str, instance: int) -> str:
    """Instance `instance` of a cluster app: pmsd-<name>@<instance>.service (a name never holds a literal "@":
    escape_name writes it as \\x40, so the first "@" is always the template's)."""
    return f"{UNIT_PREFIX}{escape_name(name)}@{instance}{SERVICE_SUFFIX}"


@functools.lru_cache(maxsize=8192)  # every record's `unit`, several times a record per command at 1,000 apps
def unit_of(name: str, instance: int | None) -> str:
    return service_unit(name) if instance is None else instance_unit(name, instance)


def template_unit(name: str) -> str:
    return f"{UNIT_PREFIX}{escape_name(name)}@{SERVICE_SUFFIX}"


def socket_unit(name: str) -> str:
    return f"{UNIT_PREFIX}{escape_name(name)}.socket"


def listener_unit(name: str) -> str:
    return f"{LISTENER_PREFIX}{escape_name(name)}{SERVICE_SUFFIX}"


def instance_slice(name: str, user: bool, unit_prefix: str = UNIT_PREFIX) -> str:
    """The slice systemd puts a template's instances in (unit_set_default_slice() in src/core/unit.c):
    app-<prefix>.slice under a user manager, system-<prefix>.slice under the system one, the prefix escaped as
    unit_name_escape() does ("-" and "\\" become \\x2d and \\x5c). Any unit whose name has an instance part
    goes there, so an instance's log units (pmsd.log-<app>@<n>) have one of their own too."""
    prefix = unit_prefix + escape_name(name)
    escaped = "".join(f"\\x{ord(char):02x}" if char in "-\\" else char for char in prefix)
    return f"{'app' if user else 'system'}-{escaped}.slice"


def instance_env_file_name(name: str, instance: int | str) -> str:
    """The per-instance EnvironmentFile= name; the template spells it with "%i" (never holds "%": escaped)."""
    return f"{UNIT_PREFIX}{escape_name(name)}@{instance}.env"


def cron_timer_unit(name: str) -> str:
    return f"{CRON_PREFIX}{escape_name(name)}.timer"


def cron_service_unit(name: str) -> str:
    return f"{CRON_PREFIX}{escape_name(name)}{SERVICE_SUFFIX}"


def app_name_of_cron_unit(unit: str) -> str | None:
    stem, dot, _suffix = unit.rpartition(".")
    if not (dot and stem.startswith(CRON_PREFIX)):
        return None
    try:
        return unescape_name(stem[len(CRON_PREFIX) :])
    except (UnicodeError, ValueError):
        return None


def app_name_of_unit(unit: str) -> str | None:
    parsed = app_of_unit(unit)
    return parsed[0] if parsed is not None else None


def app_of_unit(unit: str) -> tuple[str, int | None] | None:
    """(app name, instance or None) of pmsd-<name>.service or pmsd-<name>@<n>.service."""
    if not (unit.startswith(UNIT_PREFIX) and unit.endswith(SERVICE_SUFFIX)):
        return None
    stem = unit[len(UNIT_PREFIX) : -len(SERVICE_SUFFIX)]
    escaped, at, instance = stem.partition("@")
    if at and not instance.isdigit():
        return None
    try:
        return unescape_name(escaped), (int(instance) if at else None)
    except (UnicodeError, ValueError):
        return None  # not a name pmsd would have escaped
