"""The log pipes of an app whose files god writes (pmsd.definition.logpipes): its socket unit written and
listening before the app starts, removed with the app."""

from __future__ import annotations

import contextlib
import os
import time

from pmsd.api.god import god_disabled
from pmsd.context import Context
from pmsd.definition.logpipes import (
    existing_pipes,
    log_holder_unit,
    log_sinks,
    log_socket_unit,
    pipe_paths,
    render_log_units,
)
from pmsd.errors import PmsdError
from pmsd.model.record import AppRecord
from pmsd.model.spec import AppSpec
from pmsd.state.unitfiles import remove_units, write_units
from pmsd.systemd.bus import UnitGone
from pmsd.systemd.names import GOD_UNIT
from pmsd.systemd.paths import runtime_unit_dir
from pmsd.systemd.states import ActiveState

LISTEN_TIMEOUT_S = 10.0


def log_pipes(ctx: Context, spec: AppSpec, instance: int | None = None) -> dict[str, str]:
    """The pipes the app's (or the instance's) streams go to, by stream, their socket unit listening. For an
    app that uses_log_pipes(): the caller decides, once per start."""
    pipes = pipe_paths(spec, ctx.user, ctx.environ, instance)
    unit = log_socket_unit(spec.name, instance)
    manager = ctx.manager
    if write_units(ctx.user, ctx.environ, render_log_units(spec.name, pipes, GOD_UNIT, ctx.user, instance)) and \
            manager.unit_summary(unit) is not None:
        # Other pipes than the loaded socket has (a stream added or removed): the app is stopped (launch
        # stops it first), so nothing is lost by recreating them.
        manager.stop(unit)
        manager.reload()
    try:
        manager.start_unit(unit)
    except UnitGone:  # a unit of this name was known before its file existed: the manager must look again
        manager.reload()
        manager.start_unit(unit)
    deadline = time.monotonic() + LISTEN_TIMEOUT_S
    while (summary := manager.unit_summary(unit)) is None or summary[0] != ActiveState.ACTIVE:
        if time.monotonic() > deadline or (summary is not None and summary[0] == ActiveState.FAILED):
            raise PmsdError(f"app {spec.name!r}: its log pipes ({unit}) do not listen",
                            f"see `systemctl {'--user' if ctx.user else '--system'} status {unit}`")
        time.sleep(0.01)
    manager.start_unit(log_holder_unit(spec.name, instance))  # the socket is "running": no traffic starts anything
    return pipes


def uses_log_pipes(ctx: Context, spec: AppSpec) -> bool:
    """Whether god writes the app's files: it has files (a fork app), god is wanted and running. A god that
    could not start must not be counted on: once its pipe is full, the app's write() would wait for it (systemd
    then appends to the files itself)."""
    return not god_disabled(ctx) and bool(log_sinks(spec)) and god_running(ctx)


def god_running(ctx: Context) -> bool:
    """god is up or coming up (one ListUnitsByPatterns call); ensure_god has asked for it before any start."""
    states = {unit.active_state for unit in ctx.manager.list_units([GOD_UNIT])}
    return bool(states & {ActiveState.ACTIVE, ActiveState.ACTIVATING, ActiveState.RELOADING})


def remove_log_pipes(ctx: Context, name: str, instance: int | None = None) -> None:
    """Stop the app's (or the instance's) socket unit (systemd removes its pipes) and remove its files; nothing
    if it has none."""
    unit = log_socket_unit(name, instance)
    if not os.path.exists(os.path.join(runtime_unit_dir(ctx.user, ctx.environ), unit)):
        return
    with contextlib.suppress(PmsdError):
        if ctx.manager.unit_summary(unit) is not None:
            ctx.manager.stop(unit)
    remove_units(ctx.user, ctx.environ, [unit, log_holder_unit(name, instance)])


def god_written(ctx: Context, record: AppRecord) -> tuple[str, ...]:
    """The files god writes for this app (or instance: its pipes exist); empty for the others."""
    spec = record.log_spec
    if not existing_pipes(spec, ctx.user, ctx.environ, record.instance):
        return ()
    return tuple(dict.fromkeys(path for files in log_sinks(spec).values() for path in files))
