"""systemd's configuration files read the way its daemons read them: a main file, then drop-ins in file-name
order, a later setting overriding an earlier one (systemd.syntax(7), journald.conf(5), systemd.unit(5)
"Drop-in files"). Values stay text, with the file that set each one; `timespan_usec` and `size_bytes` read the
two value types pmsd compares.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

JOURNALD_CONF = "/etc/systemd/journald.conf"
# journald.conf(5): drop-ins in these directories, read in file-name order, later ones overriding.
JOURNALD_DROPINS = ("/usr/lib/systemd/journald.conf.d", "/run/systemd/journald.conf.d",
                    "/etc/systemd/journald.conf.d")
DEFAULT = "default"  # the source of a value no file set
# journald's own defaults (journald.conf(5)): 10,000 lines per 30 s per unit (scaled up with the free disk
# space), stored persistently only when /var/log/journal exists, SystemMaxUse= 10% of the file system.
RATE_LIMIT_DEFAULTS = {"RateLimitIntervalSec": "30s", "RateLimitBurst": "10000"}
STORAGE_DEFAULTS = {"Storage": "auto", "SystemMaxUse": "", "RuntimeMaxUse": ""}


@dataclass
class Settings:
    """Each key's value and the file that set it (DEFAULT for none), and the files that could not be read."""

    values: dict[str, tuple[str, str]]
    unreadable: list[str] = field(default_factory=list)

    def value(self, key: str) -> str:
        return self.values[key][0]

    def source(self, key: str) -> str:
        return self.values[key][1]


def dropin_paths(directories: Sequence[str]) -> list[str]:
    """The *.conf files of `directories` (lowest priority first) in the order they apply: by file name, a name
    in a later directory masking the same name in an earlier one."""
    found: dict[str, str] = {}
    for directory in directories:
        for path in glob.glob(os.path.join(glob.escape(directory), "*.conf")):
            found[os.path.basename(path)] = path
    return [found[name] for name in sorted(found)]


def read_settings(paths: Sequence[str], section: str, defaults: Mapping[str, str]) -> Settings:
    """The keys of `defaults` in `section` as the files `paths` (in the order they apply) set them. A missing
    file is skipped; one that cannot be read is listed as unreadable."""
    settings = Settings({key: (value, DEFAULT) for key, value in defaults.items()})
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as file:
                text = file.read()
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            settings.unreadable.append(path)
            continue
        current = ""
        for line in text.splitlines():
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                current = line[1:-1]
                continue
            key, equals, value = line.partition("=")
            if equals and current == section and key.strip() in settings.values:
                settings.values[key.strip()] = (value.strip(), path)
    return settings


def read_journald(defaults: Mapping[str, str], conf: str = JOURNALD_CONF,
                  dropin_dirs: Sequence[str] = JOURNALD_DROPINS) -> Settings:
    """[Journal] settings as systemd-journald reads them: journald.conf, then its drop-ins."""
    return read_settings([conf, *dropin_paths(dropin_dirs)], "Journal", defaults)


# systemd.time(7): the units a time span may use, in µs (src/basic/time-util.c, parse_sec()).
_TIME_UNITS = {
    "us": 1, "usec": 1, "µs": 1, "ms": 1000, "msec": 1000,
    "s": 10**6, "sec": 10**6, "second": 10**6, "seconds": 10**6,
    "m": 60 * 10**6, "min": 60 * 10**6, "minute": 60 * 10**6, "minutes": 60 * 10**6,
    "h": 3600 * 10**6, "hr": 3600 * 10**6, "hour": 3600 * 10**6, "hours": 3600 * 10**6,
    "d": 86400 * 10**6, "day": 86400 * 10**6, "days": 86400 * 10**6,
    "w": 7 * 86400 * 10**6, "week": 7 * 86400 * 10**6, "weeks": 7 * 86400 * 10**6,
}
_SPAN_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zµ]*)", re.IGNORECASE)


def timespan_usec(text: str, default_unit: str = "s") -> int | None:
    """A systemd time span ("30s", "1min 30s", "500ms", "5": seconds) in µs; None when it is not one."""
    text = text.strip()
    if not text:
        return None
    total, position = 0.0, 0
    while position < len(text):
        match = _SPAN_PART.match(text, position)
        if match is None or match.end() == position:
            return None
        unit = match.group(2) or default_unit
        if unit not in _TIME_UNITS:
            return None
        total += float(match.group(1)) * _TIME_UNITS[unit]
        position = match.end()
    return int(total)


def size_bytes(text: str) -> int | None:
    """A size as journald.conf takes it ("4G", "500M", "1024": bytes; K, M, G, T, P, E are powers of 1024);
    None when it is not one."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGTPE]?)\s*", text)
    if match is None:
        return None
    return int(float(match.group(1)) * 1024 ** " KMGTPE".index(match.group(2) or " "))
