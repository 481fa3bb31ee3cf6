"""`pmsd report`: what a bug report needs, gathered in one place (PM2's `report`, for pmsd on systemd).

Every item is collected on its own: one that cannot be read (no manager, an unreadable file) is reported as
such, and the rest of the report is still printed.
"""

from __future__ import annotations

import os
import platform
import pwd
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pmsd import __version__
from pmsd.api.god import god_disabled
from pmsd.context import Context
from pmsd.errors import PmsdError
from pmsd.systemd.conf import JOURNALD_CONF, JOURNALD_DROPINS, RATE_LIMIT_DEFAULTS, read_journald
from pmsd.systemd.names import CRON_PREFIX, GOD_UNIT, LISTENER_PREFIX, UNIT_PREFIX
from pmsd.systemd.paths import LINGER_DIR, lingering


@dataclass
class Report:
    """Sections of (label, value) lines, in the order they print."""

    sections: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)

    def add(self, title: str, items: Sequence[tuple[str, str]]) -> None:
        self.sections.append((title, list(items)))


def failure_text(error: PmsdError | OSError) -> str:
    """What could not be read, in a few words: a PmsdError's message, an OSError's strerror."""
    if isinstance(error, PmsdError):
        return error.message
    return error.strerror or str(error)


def _safely(read: Callable[[], str]) -> str:
    try:
        return read()
    except (PmsdError, OSError) as error:
        return f"unavailable ({failure_text(error)})"


def journald_rate_limits(conf: str = JOURNALD_CONF, dropin_dirs: Sequence[str] = JOURNALD_DROPINS,
                         ) -> list[tuple[str, str]]:
    """RateLimitIntervalSec= and RateLimitBurst= as journald reads them: its defaults, then journald.conf, then
    drop-ins in file-name order; each value says which file set it. Unreadable files are named."""
    settings = read_journald(RATE_LIMIT_DEFAULTS, conf, dropin_dirs)
    items = [(key, f"{value} ({source})") for key, (value, source) in settings.values.items()]
    items += [("unreadable", path) for path in settings.unreadable]
    return items


def collect(ctx: Context, linger_dir: str = LINGER_DIR) -> Report:
    report = Report()
    report.add("pmsd", [
        ("version", __version__),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("platform", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("scope", "user (your systemd user manager)" if ctx.user else "system (the systemd system manager)"),
        ("state directory", ctx.state_dir),
    ])
    manager_version = _safely(lambda: str(ctx.manager.version))
    report.add("systemd", [("manager version", manager_version)])
    god = _safely(lambda: _unit_line(ctx, GOD_UNIT))
    report.add("god", [(GOD_UNIT, god), ("disabled (PMSD_NO_GOD)", "yes" if god_disabled(ctx) else "no")])
    if ctx.user:
        try:
            name = pwd.getpwuid(os.getuid()).pw_name
            linger = "yes" if lingering(name, linger_dir) else "no (apps stop when your last session ends)"
        except KeyError:
            name, linger = str(os.getuid()), "unknown (no passwd entry)"
        report.add("lingering", [(name, linger)])
    report.add("journald rate limits", journald_rate_limits())
    report.add("registry", [(str(record.pm_id), f"{record.name} ({record.unit})")
                            for record in sorted(ctx.registry.read().apps, key=lambda r: r.pm_id)])
    report.add("pmsd units", _units(ctx))
    return report


def _unit_line(ctx: Context, unit: str) -> str:
    state = ctx.manager.service_state(unit)
    if state is None:
        return "not loaded"
    pid = f", pid {state.main_pid}" if state.main_pid else ""
    return f"{state.active_state.value}/{state.sub_state}{pid}, {state.n_restarts} restarts"


def _units(ctx: Context) -> list[tuple[str, str]]:
    patterns = [f"{UNIT_PREFIX}*", f"{CRON_PREFIX}*", f"{LISTENER_PREFIX}*"]
    try:
        listing = ctx.manager.list_units(patterns)
    except PmsdError as error:
        return [("units", f"unavailable ({error.message})")]
    return [(unit.name, f"{unit.load_state} {unit.active_state.value}/{unit.sub_state}")
            for unit in sorted(listing, key=lambda u: u.name)]
