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

from pmsd.context import Context
from pmsd.ecosystem import is_ecosystem_file, load_apps
from pmsd.envfile import app_environment, read_env_file, write_env_file
from pmsd.errors import NotFoundError, PmsdError, UsageError
from pmsd.god.counters import counters_for, load_counters
from pmsd.god.service import ensure_god
from pmsd.registry import AppRecord, RegistryData, now_ms
from pmsd.spec import COMMAND_LINE, AppSpec, Source, UnitInputs, build_spec
from pmsd.systemd.bus import Manager, ServiceState, UnitProperty
from pmsd.targets import resolve_targets
from pmsd.unitnames import service_unit
from pmsd.units import transient_properties

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
            return [_restart_record(ctx, data, r, options.update_env) for r in resolve_targets(data, target)]
        raw: dict[str, object] = {"script": target, **options.overrides}
        spec = build_spec(raw, Source(COMMAND_LINE, os.getcwd()), options.env_name,
                          ctx.environ.get("PATH"), ctx.warnings)
        existing = data.by_name(spec.name)
        if existing is not None:
            return [_start_over_existing(ctx, data, existing, spec, options)]
        return [_create(ctx, data, spec)]


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
        existing = data.by_name(spec.name)
        if existing is None:
            outcomes.append(_create(ctx, data, spec))
        else:
            # PM2 restarts apps an ecosystem file declares that already exist, with the file's definition.
            existing.spec = spec
            outcomes.append(_restart_record(ctx, data, existing, update_env=True))
    return outcomes


def _start_over_existing(
    ctx: Context, data: RegistryData, existing: AppRecord, spec: AppSpec, options: StartOptions,
) -> Outcome:
    same_script = existing.spec.script == spec.script
    if not same_script:
        raise UsageError(
            f"an app named {spec.name!r} already exists (id {existing.pm_id}, script {existing.spec.script})",
            f"pick another --name, or `pmsd delete {existing.pm_id}` first",
        )
    state = _state(ctx.manager, existing)
    running = state is not None and state.active_state in ("active", "activating", "reloading")
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
    existing.spec = spec
    return _restart_record(ctx, data, existing, options.update_env)


def _renamed(spec: AppSpec, name: str) -> AppSpec:
    return replace(spec, name=name)


def _create(ctx: Context, data: RegistryData, spec: AppSpec) -> Outcome:
    record = AppRecord(pm_id=data.allocate_id(), spec=spec, created_at=now_ms())
    env = app_environment(ctx.environ, spec.env, record.pm_id, spec.name, spec.namespace)
    env_file = ctx.registry.env_file(record.pm_id)
    write_env_file(env_file, env)
    try:
        if spec.autostart:
            _launch(ctx, record)
    except BaseException:
        # Nothing half-created: no registry entry (the transaction aborts), no env file, no unit.
        os.unlink(env_file)
        with contextlib.suppress(PmsdError):
            _clear_leftover(ctx.manager, service_unit(spec.name))
        raise
    data.apps.append(record)
    return Outcome("started" if spec.autostart else "registered", record.pm_id, spec.name)


def _launch(ctx: Context, record: AppRecord) -> None:
    """Create the transient unit and wait until the app's program is executing."""
    manager = ctx.manager
    unit = service_unit(record.name)
    inputs = UnitInputs(record.spec, ctx.registry.env_file(record.pm_id), system=not ctx.user)
    properties = transient_properties(inputs, manager.version)
    _clear_leftover(manager, unit)
    manager.start_transient(unit, properties)
    state = manager.wait_until(unit, lambda s: s is None or not s.has_job, START_TIMEOUT_S, "the start job")
    _ensure_cron(ctx, record)
    if state is None or state.active_state == "failed":
        detail = _exit_detail(state) if state is not None else "the unit vanished"
        _clear_leftover(manager, unit)
        raise PmsdError(
            f"app {record.name!r} failed to start: {detail}",
            f"see `journalctl {ctx.scope_flag}-unit {unit}` (or `pmsd logs {record.name}`)",
        )


def _ensure_cron(ctx: Context, record: AppRecord) -> None:
    """The app's cron_restart as a timer unit (pmsd.cron-<app>.timer), which fires whether god runs or not.

    The timer triggers pmsd.cron-<app>.service, a oneshot running `pmsd restart <app>`: a stopped app is
    started, as PM2's cron does. A timer whose pattern is unchanged is left alone; this also runs inside
    that very service (its `pmsd restart`), which must not stop itself.
    """
    from pmsd.cron import on_calendar
    from pmsd.unitnames import cron_service_unit, cron_timer_unit

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
    from pmsd.unitnames import cron_service_unit, cron_timer_unit

    for unit in (cron_timer_unit(name), cron_service_unit(name)):
        with contextlib.suppress(PmsdError):
            summary = manager.unit_summary(unit)
            if summary is not None and summary[0] != "inactive":
                manager.stop(unit)
            manager.reset_failed(unit)


def _exit_detail(state: ServiceState) -> str:
    if state.exec_main_code == 1:
        return f"exited with status {state.exec_main_status} ({state.result})"
    if state.exec_main_code in (2, 3):
        return f"killed by signal {state.exec_main_status} ({state.result})"
    return f"systemd reports {state.result}"


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
        manager.wait_until(unit, lambda s: s is None, 10.0, "systemd to collect the old unit")


def _state(manager: Manager, record: AppRecord) -> ServiceState | None:
    return manager.service_state(service_unit(record.name))


# ------------------------------------------------------------------------------------------ restart / stop


def restart(ctx: Context, target: str, update_env: bool = False, toggle_watch: bool = False) -> list[Outcome]:
    """Restart apps; toggle_watch turns file watching on (the app's cwd) or off, as `pm2 restart --watch`."""
    ensure_god(ctx)
    with ctx.registry.transaction() as data:
        outcomes = []
        for record in resolve_targets(data, target):
            if toggle_watch:
                record.spec = replace(record.spec, watch=() if record.spec.watch else (record.spec.cwd,))
            outcomes.append(_restart_record(ctx, data, record, update_env))
        return outcomes


def _restart_record(ctx: Context, data: RegistryData, record: AppRecord, update_env: bool) -> Outcome:
    state = _state(ctx.manager, record)
    record.restart_offset += (state.n_restarts if state is not None else 0) + 1
    env_file = ctx.registry.env_file(record.pm_id)
    if update_env or not os.path.exists(env_file):
        env = app_environment(ctx.environ, record.spec.env, record.pm_id, record.name, record.spec.namespace)
    else:
        # PM2 keeps the environment captured at start; only the definition's own env is re-applied.
        env = {**read_env_file(env_file), **record.spec.env}
    write_env_file(env_file, env)
    _clear_leftover(ctx.manager, service_unit(record.name))
    _launch(ctx, record)
    return Outcome("restarted", record.pm_id, record.name)


def stop(ctx: Context, target: str) -> list[Outcome]:
    """Stop apps. As in PM2, stopping also ends file watching (`restart --watch` turns it back on)."""
    with ctx.registry.transaction() as data:
        outcomes = []
        for record in resolve_targets(data, target):
            if record.spec.watch:
                record.spec = replace(record.spec, watch=())
            _stop_record(ctx, record)
            outcomes.append(Outcome("stopped", record.pm_id, record.name))
        return outcomes


def _stop_record(ctx: Context, record: AppRecord) -> None:
    manager = ctx.manager
    unit = service_unit(record.name)
    state = manager.service_state(unit)
    if state is None:
        return
    record.restart_offset += state.n_restarts  # the unit and its NRestarts are about to be collected
    if state.active_state in ("active", "activating", "deactivating", "reloading"):
        _stop_unit(manager, unit, record.spec.kill_timeout / 1000 + STOP_GRACE_S)
    manager.reset_failed(unit)
    manager.wait_until(unit, lambda s: s is None, 10.0, "systemd to collect the stopped unit")


def _stop_unit(manager: Manager, unit: str, timeout: float) -> None:
    manager.stop(unit)
    manager.wait_until(unit, lambda s: s is None or s.active_state in ("inactive", "failed"), timeout,
                       "the app to stop")


def delete(ctx: Context, target: str) -> list[Outcome]:
    with ctx.registry.transaction() as data:
        outcomes = []
        for record in resolve_targets(data, target):
            _stop_record(ctx, record)
            data.apps.remove(record)
            _remove_cron(ctx.manager, record.name)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(ctx.registry.env_file(record.pm_id))
            outcomes.append(Outcome("deleted", record.pm_id, record.name))
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
        return read_env_file(ctx.registry.env_file(records[0].pm_id))
    except FileNotFoundError:
        raise PmsdError(f"app {records[0].name!r} has no stored environment",
                        f"`pmsd restart {records[0].name} --update-env` stores the current one") from None
