"""Read-only views: the process list behind `ls`, `jlist`, `prettylist`, `describe`, `pid` and `id`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from pmsd.api.godlink import GodConnection
from pmsd.api.targets import Targets, resolve_targets
from pmsd.context import Context
from pmsd.errors import NotFoundError, PmsdError
from pmsd.model.counters import AppCounters, counters_for
from pmsd.model.record import AppRecord
from pmsd.model.status import RUNTIME_FIELDS, ProcessInfo, info_from_row, process_info
from pmsd.state.counters import load_counters
from pmsd.state.paths import socket_path
from pmsd.systemd.names import UNIT_PREFIX

GOD_TIMEOUT_S = 10.0  # a god that does not answer by then is left for systemd's own answer
# Every app's state as god worked it out just before it forked this process to run a listing command
# (pmsd.god.runner), with the registry it serves: (state_dir, infos). The command's first list_processes()
# takes it instead of asking god over its socket (encoding, decoding and pairing 1,000 rows cost ~25 ms).
_HANDED_OVER: tuple[str, list[ProcessInfo]] | None = None


def hand_over(state_dir: str, infos: list[ProcessInfo]) -> None:
    """god: the state a listing command it is about to fork will take (see _HANDED_OVER)."""
    global _HANDED_OVER
    _HANDED_OVER = (state_dir, infos)


def take_back() -> None:
    """god, once forked: the state is the command's only."""
    global _HANDED_OVER
    _HANDED_OVER = None


def _handed_over(ctx: Context) -> list[ProcessInfo] | None:
    """The state god handed over for this registry, once."""
    global _HANDED_OVER
    handed, _HANDED_OVER = _HANDED_OVER, None
    return handed[1] if handed is not None and _serves(ctx, handed[0]) else None


def _serves(ctx: Context, state_dir: str) -> bool:
    """Whether god's registry (`state_dir`, pmsd.state.paths) is this one: another registry's ids are not these."""
    return os.path.realpath(state_dir) == os.path.realpath(ctx.state_dir)


def list_processes(ctx: Context, target: Targets | None = None,
                   counters: dict[int, AppCounters] | None = None,
                   meanwhile: Callable[[Sequence[AppRecord]], None] | None = None) -> list[ProcessInfo]:
    """Every app (or the targets', pmsd.api.targets), as systemd and god's counters describe it. god passes its
    live counters; everyone else reads the file god keeps them in, so the figures agree whether god runs or not.

    Targets that mean no app at all (`all` with nothing registered) are a NotFoundError, as `pm2 describe`
    of nothing exits non-zero; with no target (None, "" or an empty sequence),
    an empty registry is an empty list. `meanwhile` is given the records to list, while god (when asked) works
    out their state: what the caller can do with the records alone overlaps god's work."""
    from_god = counters is None and not ctx.god_disabled
    handed = _handed_over(ctx) if from_god else None
    # god prepares its answer while the registry is read here: the two take about as long at 1,000 apps
    asked = ask_god(ctx, "status") if from_god and handed is None else None
    try:
        data = ctx.registry.read()
        if not target:  # None, "" or no targets: every app
            records = sorted(data.apps, key=lambda a: a.pm_id)
        else:
            records = resolve_targets(data, target)
            if not records:
                raise NotFoundError("no apps are registered", "`pmsd start` adds one")
        if not records:
            return []
        if meanwhile is not None:
            meanwhile(records)
        if handed is not None:
            described, missing = _handed_answer(handed, records)
        elif asked is None:
            return _ask_systemd(ctx, records, counters)
        else:
            described, missing = _god_answer(ctx, asked, records)
    finally:
        if asked is not None:
            asked.close()
    if not missing:
        return described
    known = {info.pm_id: info for info in [*described, *_ask_systemd(ctx, missing, None)]}
    return [known[record.pm_id] for record in records]


def ask_god(ctx: Context, method: str, timeout: float = GOD_TIMEOUT_S) -> GodConnection | None:
    """The connection on which god was asked `method` ("status": every app's state, pmsd.god.snapshot: one round
    trip on its socket); its answer() reads the reply. None when god is not there to ask."""
    path = socket_path(ctx.user, ctx.environ)
    if not os.path.exists(path):
        return None
    try:
        connection = GodConnection(path, timeout)
    except PmsdError:
        return None
    try:
        connection.ask(method)
    except OSError:
        connection.close()
        return None
    return connection


def _god_answer(ctx: Context, connection: GodConnection, records: list[AppRecord]
                ) -> tuple[list[ProcessInfo], list[AppRecord]]:
    """What god knows of the records, and the records it could not say (god stopped meanwhile, or it has not
    seen the app yet): those are asked of systemd directly."""
    try:
        result = connection.answer()
        rows = result["rows"]
        if not _serves(ctx, result["state_dir"]):
            return [], records
        if tuple(result["fields"]) != RUNTIME_FIELDS:
            return [], records  # god of another version: its rows say other things
    except (PmsdError, OSError, ValueError, KeyError, TypeError):
        return [], records  # god is down, stopping, or another version: systemd answers
    return _paired(records, lambda record: info_from_row(
        record, rows.get(str(record.pm_id)) if isinstance(rows, dict) else None))


def _handed_answer(infos: list[ProcessInfo], records: list[AppRecord]) -> tuple[list[ProcessInfo], list[AppRecord]]:
    """_god_answer from the state god handed over (_HANDED_OVER), each info given the command's own record."""
    by_id = {info.pm_id: info for info in infos}

    def describe(record: AppRecord) -> ProcessInfo | None:
        info = by_id.get(record.pm_id)
        return info if info is None or info.record is record else info.for_record(record)

    return _paired(records, describe)


def _paired(records: list[AppRecord], describe: Callable[[AppRecord], ProcessInfo | None]
            ) -> tuple[list[ProcessInfo], list[AppRecord]]:
    """What god says of each record (describe(); None, or a KeyError, ValueError or TypeError from a row that
    is not one, when it says nothing), and the records it said nothing of or gave another unit (god has not seen
    the app yet, or it was added since): those are asked of systemd directly."""
    infos, missing = [], []
    for record in records:
        try:
            info = describe(record)
        except (KeyError, ValueError, TypeError):
            info = None
        if info is None or info.unit != record.unit:
            missing.append(record)
        else:
            infos.append(info)
    return infos, missing


def _ask_systemd(ctx: Context, records: list[AppRecord], counters: dict[int, AppCounters] | None
                 ) -> list[ProcessInfo]:
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
