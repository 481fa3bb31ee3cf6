"""The job choreographies pmsd needs, as verbs over one manager connection: stop and wait, stop and let systemd
collect the unit (which also makes room for a new unit of the same name), stop-and-reset helpers, and a
transient timer with the service it triggers. Above the adapter nobody spells these steps again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from pmsd.errors import PmsdError
from pmsd.systemd.bus import Manager
from pmsd.systemd.properties import UnitProperty
from pmsd.systemd.states import DOWN_STATES, ActiveState, ServiceState

COLLECT_TIMEOUT_S = 10.0
# systemd coalesces timer wake-ups within AccuracySec= (default 1 min): a cron pattern means the second.
TIMER_ACCURACY_USEC = 1_000_000


def stop_and_wait(manager: Manager, unit: str, timeout: float, what: str = "the app to stop") -> None:
    """StopUnit, then wait until the unit is down (inactive, failed) or gone."""
    manager.stop(unit)
    manager.wait_until(unit, _down, timeout, what)


def stop_and_collect(manager: Manager, unit: str, stop_timeout: float) -> ServiceState | None:
    """Stop the unit if it runs, clear a failed result, and wait until it is out of the way: a transient unit
    once systemd collected it (its name is free again for StartTransientUnit), a template instance once
    inactive. Returns the state the unit had before (None: systemd had none loaded).

    A failed unit is not garbage-collected until its failure is reset (systemd.unit(5), CollectMode=), which
    is why an errored app's unit would otherwise block its next start with "already exists".

    GetUnit first: it answers for loaded units only, where reading a property of a unit that is not loaded
    makes systemd load it, searching every unit directory for a file (~6 ms of the manager's CPU: most of
    what a start of 1,000 new apps cost it)."""
    path = manager.loaded_path(unit)
    if path is None:
        return None
    state = manager.service_state(unit, path)
    if state is None:
        return None
    if state.running:
        stop_and_wait(manager, unit, stop_timeout)
    manager.reset_failed(unit)
    manager.wait_until(unit, _collected, COLLECT_TIMEOUT_S, "systemd to collect the unit")
    return state


def stop_and_reset(manager: Manager, unit: str) -> None:
    """Stop a unit of any type unless it is inactive (or not loaded), and clear a failed result; no wait."""
    summary = manager.unit_summary(unit)
    if summary is not None and summary[0] != ActiveState.INACTIVE:
        manager.stop(unit)
    manager.reset_failed(unit)


def stop_and_reset_quietly(manager: Manager, units: Sequence[str]) -> None:
    """stop_and_reset for units that may be half gone: a failure on one does not keep the others."""
    for unit in units:
        with contextlib.suppress(PmsdError):
            stop_and_reset(manager, unit)


@dataclass(frozen=True)
class TimerJob:
    """A transient timer and the oneshot service it triggers (as `systemd-run --on-calendar` makes them)."""

    timer: str
    service: str
    on_calendar: tuple[str, ...]
    command: tuple[str, ...]  # argv; command[0] is an absolute path
    environment: tuple[str, ...] = ()  # "NAME=value"
    description: str = ""
    service_description: str = ""


def start_timer(manager: Manager, job: TimerJob) -> None:
    service = [
        UnitProperty("Description", "s", job.service_description),
        UnitProperty("Type", "s", "oneshot"),
        UnitProperty("ExecStart", "a(sasb)", [(job.command[0], list(job.command), False)]),
        UnitProperty("Environment", "as", list(job.environment)),
    ]
    timer = [
        UnitProperty("Description", "s", job.description),
        UnitProperty("AccuracyUSec", "t", TIMER_ACCURACY_USEC),
        *(UnitProperty("OnCalendar", "s", expression) for expression in job.on_calendar),
    ]
    manager.start_transient(job.timer, timer, aux=[(job.service, service)])


def _down(state: ServiceState | None) -> bool:
    return state is None or state.active_state in DOWN_STATES


def _collected(state: ServiceState | None) -> bool:
    """Reading a template instance's properties loads it again from the template file, so an instance counts
    as out of the way once inactive; a transient unit only once it is gone."""
    return state is None or ("@" in state.name and state.active_state == ActiveState.INACTIVE)
