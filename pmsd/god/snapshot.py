"""`pmsd ls` answered from what god follows (issue 17): one ListUnitsByPatterns call instead of a dozen property
reads per app.

god keeps every app's unit state from systemd's PropertiesChanged signals. To answer with the state systemd
has now, not the state of the last signal god happened to handle, it first calls ListUnitsByPatterns and only
then handles the signals waiting on its bus connection: a bus delivers one sender's messages in the order they
were sent, and systemd sends a unit's change signals from its event loop before it reads a later call
(manager_dispatch_dbus_queue() runs every iteration, src/core/manager.c), so every change made before the
listing was asked for is handled by then. A unit whose listed state (active, sub, job) still differs from
god's is read afresh (systemd remains the source of truth). Memory and CPU come from the unit's cgroup files
at the moment of the question (pmsd.model.status.process_info), as on the direct path where systemd has none.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence

from pmsd.errors import PmsdError
from pmsd.god.tracker import AppTracker
from pmsd.linux.heldfiles import HeldFiles
from pmsd.linux.procfs import read_file
from pmsd.model.counters import AppCounters, counters_for
from pmsd.model.status import ProcessInfo, process_info
from pmsd.systemd.bus import Manager
from pmsd.systemd.names import UNIT_PREFIX
from pmsd.systemd.signals import UnitChange
from pmsd.systemd.states import AUTO_RESTART, RUNNING_STATES, ServiceState, UnitListing


def current_units(manager: Manager, handle_waiting_signals: Callable[[], None]) -> dict[str, UnitListing]:
    """systemd's list of pmsd's units, once every signal it sent before it is handled (the module's docstring)."""
    listing = {unit.name: unit for unit in manager.list_units([f"{UNIT_PREFIX}*.service"])}
    handle_waiting_signals()
    return listing


# Up to this many units, GetUnit each; more (god's first read, `start` of an ecosystem file) one listing of all.
FEW_UNITS = 16


def loaded_units(manager: Manager, units: Sequence[str]) -> set[str]:
    """Which of these units systemd has loaded. god asks it of the apps a command just added: a GetUnit each
    for a few, as listing all of pmsd's units took ~12 ms of every command at 1,000 apps (issue 17)."""
    if len(units) <= FEW_UNITS:
        return {unit for unit in units if manager.loaded_path(unit) is not None}
    wanted = set(units)
    return {listing.name for listing in manager.list_units([f"{UNIT_PREFIX}*.service"]) if listing.name in wanted}


def live_processes(manager: Manager, trackers: Mapping[str, AppTracker], counters: dict[int, AppCounters],
                   listing: Mapping[str, UnitListing], held: HeldFiles | None = None) -> list[ProcessInfo]:
    """Every followed app as systemd has it now (`listing`: current_units), in pm_id order. `held`: god's cgroup
    files, kept open from one listing to the next."""
    now = time.time()
    read = held.read if held is not None else read_file
    infos = []
    for unit, tracker in sorted(trackers.items(), key=lambda item: item[1].record.pm_id):
        record = tracker.record
        state = _current_state(manager, unit, tracker, listing.get(unit))
        infos.append(process_info(record, state, now, counters_for(counters, record.pm_id, record.created_at), read))
    if held is not None:
        held.sweep()
    return infos


def control_group(manager: Manager, tracker: AppTracker) -> str:
    """The unit's cgroup, "" while it has none. systemd announces no change of ControlGroup (no EMITS_CHANGE
    flag in bus_unit_cgroup_vtable, src/core/dbus-unit.c), so for a unit god knows from its signals alone (one
    started after god), or read while it was stopped (""), it is asked once; the path stays the unit's until
    systemd collects it (forget_unit)."""
    if not tracker.known.control_group:
        with contextlib.suppress(PmsdError):  # gone meanwhile: the caller's next read says so
            found = str(manager.service_property(tracker.unit, "ControlGroup", "s") or "")
            if found:
                tracker.learn(UnitChange(control_group=found))
    return tracker.known.control_group or ""


def _current_state(manager: Manager, unit: str, tracker: AppTracker, row: UnitListing | None) -> ServiceState | None:
    if row is None:  # not loaded: never started, or collected after it stopped
        return None
    state = tracker.state()  # None: god knows nothing of the unit yet
    if state is not None:
        if row.active_state in RUNNING_STATES and row.sub_state != AUTO_RESTART and not state.control_group:
            control_group(manager, tracker)
            state = tracker.state()
        # No memory or CPU figure: process_info reads them from the files systemd reads, at the moment of asking
        if state is not None and (state.active_state, state.sub_state, state.has_job) == (
                row.active_state, row.sub_state, row.has_job):
            return state
    return manager.service_state(unit, listing=row)
