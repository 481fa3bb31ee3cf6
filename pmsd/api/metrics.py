"""`pmsd metrics`: what one Prometheus scrape holds (pmsd.render.metrics writes it out). god builds the same from
its own state when its HTTP listener is asked (pmsd.god.metrics_http); nothing is read until someone asks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pmsd import __version__
from pmsd.api.query import ask_god, list_processes
from pmsd.context import Context
from pmsd.errors import PmsdError
from pmsd.linux.procfs import unit_open_fds
from pmsd.model.status import ProcessInfo

GOD_PING_S = 2.0  # a god that does not answer a ping by then counts as down for pmsd_god_up


@dataclass(frozen=True)
class Scrape:
    processes: Sequence[ProcessInfo]
    open_fds: Mapping[int, int] = field(default_factory=dict)  # by pm_id, for the apps whose /proc could be read
    god_up: bool | None = None  # None: not asked (left out of the scrape)
    error: PmsdError | None = None  # why the apps' state could not be read
    version: str = __version__

    @property
    def up(self) -> bool:
        return self.error is None


def scrape_of(processes: Sequence[ProcessInfo], god_up: bool | None, error: PmsdError | None = None) -> Scrape:
    """The scrape of these processes, with their open file descriptors read now; `error`: why there are none."""
    fds = {info.pm_id: count for info in processes
           if info.pid and (count := unit_open_fds(info.control_group, info.pid)) is not None}
    return Scrape(processes, fds, god_up, error)


def collect(ctx: Context) -> Scrape:
    """Every app as `pmsd ls` has it (god's answer when it runs, systemd's otherwise), and whether god answers."""
    god_up = None if ctx.god_disabled else _god_answers(ctx)  # PMSD_NO_GOD: no god is meant to run
    try:
        processes = list_processes(ctx)
    except PmsdError as error:
        return scrape_of([], god_up, error)
    return scrape_of(processes, god_up)


def _god_answers(ctx: Context) -> bool:
    connection = ask_god(ctx, "ping", GOD_PING_S)
    if connection is None:
        return False
    try:
        connection.answer()
    except (PmsdError, OSError, ValueError):
        return False
    finally:
        connection.close()
    return True
