"""PM2's process lifecycle on systemd: start, stop, restart, delete, reset.

Each running app is one transient service `pmsd-<name>.service`, created by StartTransientUnit. Transient
units vanish once stopped, so the registry keeps the definition and `start` creates the unit again.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from pmsd.api import cluster
from pmsd.api.god import ensure_god
from pmsd.api.targets import resolve_targets
from pmsd.context import Context
from pmsd.definition.build import build_spec
from pmsd.definition.cron import on_calendar
from pmsd.definition.ecosystem import is_ecosystem_file, load_apps
from pmsd.definition.environment import app_environment
from pmsd.definition.units import transient_properties
from pmsd.errors import NotFoundError, PmsdError, UsageError
from pmsd.model.counters import counters_for
from pmsd.model.record import AppRecord, RegistryData, now_ms
from pmsd.model.spec import COMMAND_LINE, AppSpec, Source, UnitInputs
from pmsd.model.status import exit_detail
from pmsd.state.counters import load_counters
from pmsd.state.envfiles import read_env_file, write_env_file
from pmsd.systemd.bus import Manager
from pmsd.systemd.names import cron_service_unit, cron_timer_unit
from pmsd.systemd.properties import UnitProperty
from pmsd.systemd.states import ServiceState

STOP_GRACE_S = 5.0  # on top of kill_timeout, for systemd to reap and collect the unit
START_TIMEOUT_S = 30.0


@dataclass
class StartOptions:
    """`pmsd start` as the CLI (or a script) asks for it. `overrides` holds PM2 option keys from flags."""

    overrides: dict[str, object] = field(default_factory=dict)
    env_name: str | None = None
    force: bool = False
    update_env: bool = False
    only: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """What one command did to one app, for the CLI to report."""

    action: str  # "started", "restarted", "stopped", "deleted", "reset", "registered"
    pm_id: int
    name: str


def _is_known_target(data: RegistryData, target: str) -> bool:
    try:
        resolve_targets(data, target)
    except NotFoundError:
        return False
    return target != "all" or bool(data.apps)


# ------------------------------------------------------------------------------------------ start


def start(ctx: Context, target: str, options: StartOptions | None = None) -> list[Outcome]:
    """Start a script, an ecosystem file, or (like PM2) restart an existing name/id/namespace/all."""
    options = options or StartOptions()
    ensure_god(ctx)
    with ctx.registry.transaction() as data:
        if is_ecosystem_file(target) and os.path.exists(target):
            return _start_ecosystem(ctx, data, target, options)
        if _is_known_target(data, target) and not _looks_like_script(target):
            return _restart_records(ctx, data, resolve_targets(data, target), options.update_env)
        raw: dict[str, object] = {"script": target, **options.overrides}
        spec = build_spec(raw, Source(COMMAND_LINE, os.getcwd()), options.env_name,
                          ctx.environ.get("PATH"), ctx.warnings)
        existing = data.instances_of(spec.name)
        if existing:
            return _start_over_existing(ctx, data, existing, spec, options)
        return _create(ctx, data, spec)


def _looks_like_script(target: str) -> bool:
    return os.sep in target or os.path.isfile(target)


def _start_ecosystem(ctx: Context, data: RegistryData, path: str, options: StartOptions) -> list[Outcome]:
    source = Source(os.path.relpath(path), os.path.dirname(os.path.abspath(path)))
    specs = [build_spec({**raw, **options.overrides}, source, options.env_name, ctx.environ.get("PATH"),
                        ctx.warnings) for raw in load_apps(path)]
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise UsageError(f"{source.label}: app names must be unique, repeated: {', '.join(duplicates)}")
    if options.only:
        missing = sorted(set(options.only) - set(names))
        if missing:
            raise NotFoundError(f"{source.label} has no app named {', '.join(missing)} (--only)")
        specs = [spec for spec in specs if spec.name in options.only]
    outcomes = []
    # Validation is complete before anything is created, so a broken app never leaves its siblings
    # half-started.
    for spec in specs:
        existing = data.instances_of(spec.name)
        if not existing:
            outcomes += _create(ctx, data, spec)
        else:
            # PM2 restarts apps an ecosystem file declares that already exist, with the file's definition.
            outcomes += _restart_records(ctx, data, _redefine(ctx, data, existing, spec), update_env=True)
    return outcomes


def _start_over_existing(
    ctx: Context, data: RegistryData, records: list[AppRecord], spec: AppSpec, options: StartOptions,
) -> list[Outcome]:
    existing = records[0]
    same_script = existing.spec.script == spec.script
    if not same_script:
        raise UsageError(
            f"an app named {spec.name!r} already exists (id {existing.pm_id}, script {existing.spec.script})",
            f"pick another --name, or `pmsd delete {existing.pm_id}` first",
        )
    states = [_state(ctx.manager, record) for record in records]
    running = any(s is not None and s.active_state in ("active", "activating", "reloading") for s in states)
    if running and not options.force:
        raise UsageError(
            f"script already launched as {spec.name!r} (id {existing.pm_id})",
            "add -f to start another copy, or `pmsd restart` it",
        )
    if running:
        # pmsd names map to unit names, which are unique: a forced copy gets a fresh name.
        copy = 1
        while data.by_name(f"{spec.name}-{copy}") is not None:
            copy += 1
        return _create(ctx, data, _renamed(spec, f"{spec.name}-{copy}"))
    return _restart_records(ctx, data, _redefine(ctx, data, records, spec), options.update_env)


def _renamed(spec: AppSpec, name: str) -> AppSpec:
    return replace(spec, name=name)


def _create(ctx: Context, data: RegistryData, spec: AppSpec) -> list[Outcome]:
    created_at = now_ms()
    count = spec.instances if spec.clustered else 1
    records = [AppRecord(pm_id=pm_id, spec=spec, created_at=created_at, instance=index if spec.clustered else None)
               for index, pm_id in enumerate(data.allocate_ids(count))]
    for record in records:
        _write_environment(ctx, record, fresh=True)
    try:
        if spec.autostart:
            _launch_many(ctx, records)
    except BaseException:
        # Nothing half-created: no registry entry (the transaction aborts), no env file, no unit.
        for record in records:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(ctx.registry.record_env_file(record))
            with contextlib.suppress(PmsdError):
                _clear_leftover(ctx.manager, record.unit)
        with contextlib.suppress(PmsdError):
            if spec.clustered:
                cluster.remove_app_units(ctx, spec.name)
            _remove_cron(ctx.manager, spec.name)
        raise
    data.apps.extend(records)
    return [Outcome("started" if spec.autostart else "registered", r.pm_id, spec.name) for r in records]


def _write_environment(ctx: Context, record: AppRecord, fresh: bool) -> None:
    """The instance's environment file: captured now (fresh), or the one stored at start with the definition's
    own env re-applied (PM2 keeps the environment of the first start)."""
    env_file = ctx.registry.record_env_file(record)
    spec = record.spec
    if fresh or not os.path.exists(env_file):
        env = app_environment(ctx.environ, spec.env, record.pm_id, record.name, spec.namespace, record.instance,
                              spec.instance_var, spec.increment_var)
    else:
        env = {**read_env_file(env_file), **spec.env}
    write_env_file(env_file, env)


def _launch_many(ctx: Context, records: list[AppRecord]) -> None:
    """Start an app's records: cluster instances together, fork units one by one."""
    if records[0].instance is not None:
        cluster.launch(ctx, records)
        _ensure_cron(ctx, records[0])
        return
    for record in records:
        _launch(ctx, record)


def _launch(ctx: Context, record: AppRecord) -> None:
    """Create a fork app's transient unit and wait until the app's program is executing."""
    manager = ctx.manager
    unit = record.unit
    inputs = UnitInputs(record.spec, ctx.registry.record_env_file(record), system=not ctx.user)
    properties = transient_properties(inputs, manager.version)
    _clear_leftover(manager, unit)
    manager.start_transient(unit, properties)
    state = manager.wait_until(unit, lambda s: s is None or not s.has_job, START_TIMEOUT_S, "the start job")
    _ensure_cron(ctx, record)
    if state is None or state.active_state == "failed":
        detail = exit_detail(state) if state is not None else "the unit vanished"
        _clear_leftover(manager, unit)
        raise PmsdError(
            f"app {record.name!r} failed to start: {detail}",
            f"see `journalctl {ctx.scope_flag}-unit {unit}` (or `pmsd logs {record.name}`)",
        )


def _ensure_cron(ctx: Context, record: AppRecord) -> None:
    """The app's cron_restart as a timer unit (pmsd.definition.cron-<app>.timer), which fires whether god runs or not.

    The timer triggers pmsd.definition.cron-<app>.service, a oneshot running `pmsd restart <app>`: a stopped app is
    started, as PM2's cron does. A timer whose pattern is unchanged is left alone; this also runs inside
    that very service (its `pmsd restart`), which must not stop itself.
    """
    manager = ctx.manager
    timer = cron_timer_unit(record.name)
    pattern = record.spec.cron_restart
    description = f"pmsd cron_restart of app {record.name}: {pattern}"
    current = manager.unit_summary(timer)
    if current is not None and current[1] == description and current[0] == "active":
        return
    if current is not None:
        _remove_cron(manager, record.name)
    if not pattern:
        return
    scope = [] if ctx.user else ["--system"]
    service = [
        UnitProperty("Description", "s", f"pmsd cron restart of app {record.name}"),
        UnitProperty("Type", "s", "oneshot"),
        UnitProperty("ExecStart", "a(sasb)", [(sys.executable, [sys.executable, "-m", "pmsd", *scope, "restart",
                                                                 record.name], False)]),
        UnitProperty("Environment", "as", [f"PMSD_STATE_DIR={ctx.state_dir}", "PMSD_NO_GOD=1"]),
    ]
    timer_properties = [
        UnitProperty("Description", "s", description),
        # systemd coalesces timer wake-ups within AccuracySec= (default 1 min): cron means the second.
        UnitProperty("AccuracyUSec", "t", 1_000_000),
        *(UnitProperty("OnCalendar", "s", expression) for expression in on_calendar(pattern)),
    ]
    manager.start_transient(timer, timer_properties, aux=[(cron_service_unit(record.name), service)])


def _remove_cron(manager: Manager, name: str) -> None:
    for unit in (cron_timer_unit(name), cron_service_unit(name)):
        with contextlib.suppress(PmsdError):
            summary = manager.unit_summary(unit)
            if summary is not None and summary[0] != "inactive":
                manager.stop(unit)
            manager.reset_failed(unit)


def _clear_leftover(manager: Manager, unit: str) -> None:
    """A failed (errored) unit of an earlier run keeps its name; reset it so systemd collects it."""
    state = manager.service_state(unit)
    if state is None:
        return
    if state.active_state in ("active", "activating", "deactivating", "reloading"):
        _stop_unit(manager, unit, 90.0)
        state = manager.service_state(unit)
    if state is not None:
        manager.reset_failed(unit)
        manager.wait_until(unit, _gone, 10.0, "systemd to collect the old unit")


def _gone(state: ServiceState | None) -> bool:
    """A stopped unit is out of the way: a transient one once systemd collected it (its name is free again),
    a template instance once inactive (reading its properties loads it again from the template file)."""
    return state is None or ("@" in state.name and state.active_state == "inactive")


def _state(manager: Manager, record: AppRecord) -> ServiceState | None:
    return manager.service_state(record.unit)


# ------------------------------------------------------------------------------------------ restart / stop


def restart(ctx: Context, target: str, update_env: bool = False, toggle_watch: bool = False) -> list[Outcome]:
    """Restart apps; toggle_watch turns file watching on (the app's cwd) or off, as `pm2 restart --watch`."""
    ensure_god(ctx)
    with ctx.registry.transaction() as data:
        records = resolve_targets(data, target)
        if toggle_watch:
            for record in records:
                record.spec = replace(record.spec, watch=() if record.spec.watch else (record.spec.cwd,))
        return _restart_records(ctx, data, records, update_env)


def _restart_records(ctx: Context, data: RegistryData, records: list[AppRecord], update_env: bool) -> list[Outcome]:
    return [_restart_record(ctx, data, record, update_env) for record in records]


def _restart_record(ctx: Context, data: RegistryData, record: AppRecord, update_env: bool) -> Outcome:
    state = _state(ctx.manager, record)
    record.restart_offset += (state.n_restarts if state is not None else 0) + 1
    _write_environment(ctx, record, fresh=update_env)
    _clear_leftover(ctx.manager, record.unit)
    _launch_many(ctx, [record])
    return Outcome("restarted", record.pm_id, record.name)


def _redefine(ctx: Context, data: RegistryData, records: list[AppRecord], spec: AppSpec) -> list[AppRecord]:
    """Give an existing app a new definition: switch between one transient unit and template instances when
    needed, and add or remove instances to match `instances`. Returns the records to (re)start; instances
    beyond the new count are stopped and forgotten."""
    was_clustered = records[0].instance is not None
    if was_clustered != spec.clustered:
        for record in records:
            _stop_record(ctx, record)
            with contextlib.suppress(FileNotFoundError):
                os.rename(ctx.registry.record_env_file(record), f"{ctx.registry.record_env_file(record)}.old")
        if was_clustered:
            cluster.remove_app_units(ctx, spec.name)
            for record in records[1:]:
                _forget(ctx, data, record)
            records = records[:1]
        for index, record in enumerate(records):
            old_env = f"{ctx.registry.record_env_file(record)}.old"
            record.instance = index if spec.clustered else None
            with contextlib.suppress(FileNotFoundError):
                os.rename(old_env, ctx.registry.record_env_file(record))
    for record in records:
        record.spec = spec
    if not spec.clustered:
        return records
    for record in records[spec.instances:]:
        _stop_record(ctx, record)
        _forget(ctx, data, record)
    kept = records[: spec.instances]
    return kept + _add_instances(ctx, data, kept, spec, spec.instances - len(kept))


def _add_instances(ctx: Context, data: RegistryData, records: list[AppRecord], spec: AppSpec,
                   count: int) -> list[AppRecord]:
    """New instance records (the lowest free numbers) with their environment; not started."""
    used = {record.instance for record in records}
    numbers = [n for n in range(len(records) + count) if n not in used][:count]
    created_at = records[0].created_at if records else now_ms()
    added = [AppRecord(pm_id=pm_id, spec=spec, created_at=created_at, instance=n)
             for n, pm_id in zip(numbers, data.allocate_ids(count) if count else [], strict=True)]
    for record in added:
        _write_environment(ctx, record, fresh=True)
    data.apps.extend(added)
    return added


def _forget(ctx: Context, data: RegistryData, record: AppRecord) -> None:
    data.apps.remove(record)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(ctx.registry.record_env_file(record))


# ------------------------------------------------------------------------------------------ reload / scale


def reload(ctx: Context, target: str, update_env: bool = False) -> list[Outcome]:
    """PM2's reload: cluster apps are replaced one instance at a time, each new instance ready (READY=1, or
    accepting on the shared socket, bounded by listen_timeout) before the next old one stops; other
    instances keep serving meanwhile. Fork-mode apps are restarted, as PM2 does."""
    ensure_god(ctx)
    with ctx.registry.transaction() as data:
        outcomes = []
        records = resolve_targets(data, target)
        for name in dict.fromkeys(record.name for record in records):  # each app once, in the targets' order
            group = [record for record in records if record.name == name]
            rolling = group[0].instance is not None and group[0].spec.exec_mode == "cluster"
            # PM2 starts a new worker before it stops an old one, so capacity never drops. Likewise one extra
            # instance, started first and stopped last, serves on the shared socket while each is replaced.
            serving = rolling and bool(group[0].spec.port) and any(
                unit.active_state == "active" for unit in cluster.instance_units(ctx.manager, name))
            last = data.instances_of(name)[-1]  # in instance order: the stand-in is numbered after it
            with cluster.stand_in(ctx, last) if serving else contextlib.nullcontext():
                outcomes += [_reload_record(ctx, data, record, update_env, rolling) for record in group]
        return outcomes


def _reload_record(ctx: Context, data: RegistryData, record: AppRecord, update_env: bool, rolling: bool) -> Outcome:
    outcome = _restart_record(ctx, data, record, update_env)
    if rolling and not cluster.wait_ready(ctx, record):
        ctx.warnings.append(f"app {record.name!r} instance {record.instance} (id {record.pm_id}) was not seen "
                            f"accepting on {record.spec.port} within listen_timeout "
                            f"({record.spec.listen_timeout} ms); reload went on, as PM2 does")
    return Outcome("reloaded", outcome.pm_id, outcome.name)


def scale(ctx: Context, target: str, request: str) -> list[Outcome]:
    """`pmsd scale <app> <N|+N|-N>`: start or remove instances; the others are left running. A fork app
    becomes a cluster of instances (its one process is restarted as instance 0)."""
    ensure_god(ctx)
    with ctx.registry.transaction() as data:
        records = resolve_targets(data, target)
        names = sorted({record.name for record in records})
        if len(names) != 1:
            raise UsageError(f"scale takes one app, {target!r} means {len(names)}: {', '.join(names)}")
        records = data.instances_of(names[0])
        wanted = cluster.parse_scale(len(records), request)
        spec = replace(records[0].spec, instances=wanted)
        before = {record.pm_id for record in records}
        model_changes = (records[0].instance is not None) != spec.clustered
        kept = _redefine(ctx, data, records, spec)
        outcomes = [Outcome("deleted", pm_id, spec.name) for pm_id in sorted(before - {r.pm_id for r in kept})]
        # Only new instances start; when the model changes (fork <-> instances) every record does.
        fresh = kept if model_changes else [record for record in kept if record.pm_id not in before]
        if fresh:
            _launch_many(ctx, fresh)
        outcomes += [Outcome("started", record.pm_id, record.name) for record in fresh]
        return outcomes


def stop(ctx: Context, target: str) -> list[Outcome]:
    """Stop apps. As in PM2, stopping also ends file watching (`restart --watch` turns it back on)."""
    with ctx.registry.transaction() as data:
        outcomes = []
        records = resolve_targets(data, target)
        for record in records:
            if record.spec.watch:
                record.spec = replace(record.spec, watch=())
            _stop_record(ctx, record)
            outcomes.append(Outcome("stopped", record.pm_id, record.name))
        for name in _cluster_names(records):
            cluster.release_if_idle(ctx, name)
        return outcomes


def _cluster_names(records: list[AppRecord]) -> list[str]:
    return sorted({record.name for record in records if record.instance is not None})


def _stop_record(ctx: Context, record: AppRecord) -> None:
    manager = ctx.manager
    unit = record.unit
    state = manager.service_state(unit)
    if state is None:
        return
    record.restart_offset += state.n_restarts  # the unit and its NRestarts are about to be collected
    if state.active_state in ("active", "activating", "deactivating", "reloading"):
        _stop_unit(manager, unit, record.spec.kill_timeout / 1000 + STOP_GRACE_S)
    manager.reset_failed(unit)
    manager.wait_until(unit, _gone, 10.0, "systemd to collect the stopped unit")


def _stop_unit(manager: Manager, unit: str, timeout: float) -> None:
    manager.stop(unit)
    manager.wait_until(unit, lambda s: s is None or s.active_state in ("inactive", "failed"), timeout,
                       "the app to stop")


def delete(ctx: Context, target: str) -> list[Outcome]:
    with ctx.registry.transaction() as data:
        outcomes = []
        records = resolve_targets(data, target)
        for record in records:
            _stop_record(ctx, record)
            _forget(ctx, data, record)
            outcomes.append(Outcome("deleted", record.pm_id, record.name))
        for name in sorted({record.name for record in records}):
            if data.instances_of(name):
                if name in _cluster_names(records):
                    cluster.release_if_idle(ctx, name)
                continue
            # The app's last process is gone: so are its cron timer and its unit files.
            _remove_cron(ctx.manager, name)
            cluster.remove_app_units(ctx, name)
        return outcomes


def reset(ctx: Context, target: str) -> list[Outcome]:
    """Zero the restart counters, as `pm2 reset` does."""
    with ctx.registry.transaction() as data:
        outcomes = []
        for record in resolve_targets(data, target):
            state = _state(ctx.manager, record)
            counters = counters_for(load_counters(ctx.state_dir), record.pm_id, record.created_at)
            record.restart_offset = -(state.n_restarts if state is not None else 0) - (
                counters.restarts if counters is not None else 0)
            record.unstable_offset = counters.unstable if counters is not None else 0
            outcomes.append(Outcome("reset", record.pm_id, record.name))
        return outcomes


def environment(ctx: Context, target: str) -> Mapping[str, str]:
    records = resolve_targets(ctx.registry.read(), target)
    try:
        return read_env_file(ctx.registry.record_env_file(records[0]))
    except FileNotFoundError:
        raise PmsdError(f"app {records[0].name!r} has no stored environment",
                        f"`pmsd restart {records[0].name} --update-env` stores the current one") from None
