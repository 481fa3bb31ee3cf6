"""Read-only views: the process list behind `ls`, `jlist`, `prettylist`, `describe`, `pid` and `id`."""

from __future__ import annotations

import time

from pmsd.api.targets import Targets, resolve_targets
from pmsd.context import Context
from pmsd.errors import NotFoundError
from pmsd.model.counters import AppCounters, counters_for
from pmsd.model.status import ProcessInfo, process_info
from pmsd.state.counters import load_counters
from pmsd.systemd.names import UNIT_PREFIX


def list_processes(ctx: Context, target: Targets | None = None,
                   counters: dict[int, AppCounters] | None = None) -> list[ProcessInfo]:
    """Every app (or the targets', pmsd.api.targets), as systemd and god's counters describe it. god passes its
    live counters; everyone else reads the file god keeps them in, so the figures agree whether god runs or not.

    Targets that mean no app at all (`all` with nothing registered) are a NotFoundError, as `pm2 describe`
    of nothing exits non-zero; with no target (None, "" or an empty sequence),
    an empty registry is an empty list."""
    data = ctx.registry.read()
    if not target:  # None, "" or no targets: every app
        records = sorted(data.apps, key=lambda a: a.pm_id)
    else:
        records = resolve_targets(data, target)
        if not records:
            raise NotFoundError("no apps are registered", "`pmsd start` adds one")
    if not records:
        return []
    manager = ctx.manager
    # One ListUnitsByPatterns call tells which apps have a unit at all; only those are asked for details.
    loaded = {unit.name: unit for unit in manager.list_units([f"{UNIT_PREFIX}*.service"])}
    if counters is None:
        counters = load_counters(ctx.state_dir)
    now = time.time()
    infos = []
    for record in records:
        unit = record.unit
        listing = loaded.get(unit)
        state = manager.service_state(unit, listing=listing) if listing is not None else None
        infos.append(process_info(record, state, now, counters_for(counters, record.pm_id, record.created_at)))
    return infos
