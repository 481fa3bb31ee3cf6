"""Read-only views: the process list behind `ls`, `jlist`, `prettylist`, `describe`, `pid` and `id`."""

from __future__ import annotations

import time

from pmsd.context import Context
from pmsd.status import ProcessInfo, process_info
from pmsd.targets import resolve_targets
from pmsd.unitnames import UNIT_PREFIX, service_unit


def list_processes(ctx: Context, target: str | None = None) -> list[ProcessInfo]:
    data = ctx.registry.read()
    records = resolve_targets(data, target) if target else sorted(data.apps, key=lambda a: a.pm_id)
    if not records:
        return []
    manager = ctx.manager
    # One ListUnitsByPatterns call tells which apps have a unit at all; only those are asked for details.
    loaded = {unit.name: unit for unit in manager.list_units([f"{UNIT_PREFIX}*.service"])}
    now = time.time()
    infos = []
    for record in records:
        unit = service_unit(record.name)
        listing = loaded.get(unit)
        state = manager.service_state(unit, listing=listing) if listing is not None else None
        infos.append(process_info(record, state, now))
    return infos
