"""The steps every lifecycle command is made of: write an app's environment, launch its units (a transient unit,
or template instances), stop it and let systemd collect the unit, keep its cron timer in step, give an app a new
definition, forget it. pmsd.api.lifecycle composes them into PM2's commands.

Each running fork app is one transient service `pmsd-<name>.service`, created by StartTransientUnit. Transient
units vanish once stopped, so the registry keeps the definition and a start creates the unit again.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import cast

from pmsd.api import cluster
from pmsd.api.config import with_config_defaults
from pmsd.api.logfiles import make_log_dirs
from pmsd.api.logpipes import log_pipes, remove_log_pipes, uses_log_pipes
from pmsd.context import Context
from pmsd.definition.cron import on_calendar
from pmsd.definition.environment import record_environment, runs_as_another_user
from pmsd.definition.logpipes import log_sinks
from pmsd.definition.unitfiles import LOG_DROPIN
from pmsd.definition.units import assignments, transient_properties
from pmsd.definition.unitvalues import exec_argv, exec_size_problem
from pmsd.errors import ExitStatus, PmsdError, UsageError
from pmsd.linux.asuser import identity_of, open_as
from pmsd.model.record import AppRecord, RegistryData, now_ms
from pmsd.model.spec import AppSpec, UnitInputs, stderr_file, stdout_file
from pmsd.model.status import Status, exit_detail, failed_to_start, pm2_status
from pmsd.state.envfiles import read_env_file, write_env_file
from pmsd.state.unitfiles import remove_dropin
from pmsd.systemd.bus import UnitExists
from pmsd.systemd.jobs import TimerJob, start_timer, stop_and_collect, stop_and_reset_quietly
from pmsd.systemd.names import UNIT_PREFIX, cron_service_unit, cron_timer_unit
from pmsd.systemd.paths import journalctl_command
from pmsd.systemd.states import ActiveState

STOP_GRACE_S = 5.0  # on top of kill_timeout, for systemd to reap and collect the unit
LEFTOVER_STOP_S = 90.0  # a unit of an earlier run still stopping when its name is needed again
START_TIMEOUT_S = 30.0
RUNNING_STATUSES = frozenset({Status.ONLINE, Status.LAUNCHING})  # a restart of these counts, as in PM2


def write_environment(ctx: Context, record: AppRecord, fresh: bool) -> None:
    """The instance's environment file: captured now (fresh), or the one stored at start with the definition's
    own env re-applied (PM2 keeps the environment of the first start). Refused, with nothing written, when the
    app's command line and that environment are more than Linux executes (check_exec_size)."""
    write_environments(ctx, [record], fresh)


def write_environments(ctx: Context, records: Sequence[AppRecord], fresh: bool) -> None:
    """write_environment for several records (a new app's instances), each checked before any file is written:
    an app refused leaves no environment file behind."""
    envs = [(record, _composed_environment(ctx, record, fresh)) for record in records]
    for record, env in envs:
        check_exec_size(ctx, record, env)
    for record, env in envs:
        env_file = ctx.registry.record_env_file(record)
        write_env_file(env_file, env, durable=not ctx.registry.sync_when_saved(env_file))


def check_environment(ctx: Context, record: AppRecord, fresh: bool, extra: Mapping[str, str] | None = None) -> None:
    """What write_environment checks (check_exec_size), with nothing written, plus `extra` variables: a command
    that must stop an app before it writes the app's new environment (a rename, a switch between one unit and
    instances) asks first, so that a refusal leaves the app running as it was."""
    check_exec_size(ctx, record, {**_composed_environment(ctx, record, fresh), **(extra or {})})


def _composed_environment(ctx: Context, record: AppRecord, fresh: bool) -> dict[str, str]:
    env_file = ctx.registry.record_env_file(record)
    spec = record.spec
    if fresh or not os.path.exists(env_file):
        caller = {} if runs_as_another_user(spec.user, not ctx.user, os.getuid()) else ctx.environ
        return record_environment(caller, record)
    return {**read_env_file(env_file), **spec.env}


def check_exec_size(ctx: Context, record: AppRecord, env: Mapping[str, str]) -> None:
    """Refuse an app whose command line and environment `env` (its env file's) are more than the kernel's
    execve() takes (pmsd.definition.unitvalues.exec_size_problem). systemd would create its unit all the same
    and then fail to execute it with E2BIG, shown as status 203/EXEC, which names neither cause nor remedy."""
    path, argv, unit_env = _unit_exec(record.spec, system=not ctx.user)
    # EnvironmentFile= is applied after Environment= (systemd.exec(5)): the file's value of a name wins.
    problem = exec_size_problem(argv, {**unit_env, **env}, path)
    if problem is None:
        return
    which = f" instance {record.instance}" if record.instance is not None else ""
    raise UsageError(
        f"app {record.name!r}{which} cannot be started: {problem}",
        "leave out the environment of the shell pmsd runs from (filter_env: true, or parts of the names to drop), "
        "use fewer or smaller variables in `env`, or pass large data in a file the app reads",
    )


def _unit_exec(spec: AppSpec, system: bool) -> tuple[str, list[str], dict[str, str]]:
    """The program, argv and Environment= of the app's unit as the settings table makes them (ExecStart= with the
    Node preload's --require; PWD and the preload's variables), argv as the program receives it."""
    path, argv, env = spec.exec_path, list(spec.argv), {}
    inputs = UnitInputs(spec, env_file="", system=system)
    for assignment in assignments(inputs, version=0, check_version=False):
        if assignment.directive.name == "ExecStart":
            ((path, words, _),) = cast("list[tuple[str, list[str], bool]]", assignment.value)
            argv = [word.replace("$$", "$") for word in words]  # systemd turns exec_argv's "$$" back into "$"
        elif assignment.directive.name == "Environment":
            for item in cast("list[str]", assignment.value):
                name, _, value = item.partition("=")
                env[name] = value
    return path, argv, env


def new_records(data: RegistryData, spec: AppSpec) -> list[AppRecord]:
    """The records a new app gets (one per instance), with fresh ids; not yet in the registry."""
    created_at = now_ms()
    count = spec.instances if spec.clustered else 1
    return [AppRecord(pm_id=pm_id, spec=spec, created_at=created_at, instance=index if spec.clustered else None,
                      increment=index if spec.clustered else None)
            for index, pm_id in enumerate(data.allocate_ids(count))]


def undo_create(ctx: Context, records: list[AppRecord]) -> None:
    """Remove what creating these records left: env files, units, the app's unit files and cron timer."""
    for record in records:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(ctx.registry.record_env_file(record))
        with contextlib.suppress(PmsdError):
            stop_and_collect(ctx.manager, record.unit, LEFTOVER_STOP_S)
            remove_record_logs(ctx, record)
    spec = records[0].spec
    with contextlib.suppress(PmsdError):
        if spec.clustered:
            cluster.remove_app_units(ctx, spec.name)
        remove_cron(ctx, spec.name)


def launch_many(ctx: Context, records: list[AppRecord]) -> None:
    """Start an app's records: cluster instances together, fork units one by one."""
    ctx.registry.pending.intend(records)  # a command killed while they start must not leave units unlisted
    if records[0].instance is not None:
        cluster.launch(ctx, records, _instance_log_pipes(ctx, records))
        ensure_cron(ctx, records[0])
        return
    for record in records:
        launch(ctx, record)


def _instance_log_pipes(ctx: Context, records: list[AppRecord]) -> dict[int, dict[str, str]]:
    """god's log pipes of each instance (by pm_id), listening, when god writes the app's files; otherwise the
    instances' files are made ready for systemd to append to, and pipes of an earlier start are removed."""
    god_writes = uses_log_pipes(ctx, records[0].spec)
    pipes: dict[int, dict[str, str]] = {}
    for record in records:
        spec = record.log_spec
        if god_writes:
            check_god_log_files(ctx, spec)
            pipes[record.pm_id] = log_pipes(ctx, spec, record.instance)
        else:
            remove_log_pipes(ctx, record.name, record.instance)
            make_log_dirs(spec)  # cluster apps never log to files as another user (check_log_files)
    return pipes


def remove_record_logs(ctx: Context, record: AppRecord) -> None:
    """What routes the record's output: its log pipes, and an instance's log drop-in."""
    remove_log_pipes(ctx, record.name, record.instance)
    if record.instance is not None:
        remove_dropin(ctx.user, ctx.environ, record.unit, LOG_DROPIN)


def launch(ctx: Context, record: AppRecord) -> None:
    """Create a fork app's transient unit and wait until the app's program is executing."""
    _submit(ctx, record)
    _await_started(ctx, record)


def launch_fork_apps(ctx: Context, records: list[AppRecord]) -> list[tuple[AppRecord, PmsdError]]:
    """Start several fork apps at once: every transient unit is created first, so systemd runs their start
    jobs side by side, then each is waited for. The records that did not start, with why; the others run."""
    ctx.registry.pending.intend(records)  # a command killed while they start must not leave units unlisted
    submitted, failures = [], []
    for record in records:
        try:
            _submit(ctx, record, fresh=True)
            submitted.append(record)
        except PmsdError as error:
            failures.append((record, error))
    return failures + _await_all_started(ctx, submitted)


def _await_all_started(ctx: Context, records: list[AppRecord]) -> list[tuple[AppRecord, PmsdError]]:
    """_await_started for many apps, with one ListUnitsByPatterns a round for all of them: a dozen property
    reads per unit and per look, 1,000 units over, cost the manager more CPU than starting them. Measured on a
    start of 1,000 apps (2 cores, 3 runs each): 5.2-7.1 s and 3.3-4.6 s of the manager's CPU this way, 8.0-8.2 s
    and 4.8-5.0 s waiting for each unit in turn. Only a unit that failed is read in full, for the reason."""
    if len(records) < 2:
        return [(record, error) for record in records for error in _start_error(ctx, record)]
    waiting = {record.unit: record for record in records}
    failures: list[tuple[AppRecord, PmsdError]] = []
    deadline = time.monotonic() + START_TIMEOUT_S
    delay = 0.001
    while waiting:
        listed = {row.name: row for row in ctx.manager.list_units([f"{UNIT_PREFIX}*.service"])}
        for unit in [unit for unit in waiting if not (unit in listed and listed[unit].has_job)]:
            record = waiting.pop(unit)
            row = listed.get(unit)
            failed = row is None or row.active_state == ActiveState.FAILED
            failures += [(record, error) for error in (_start_error(ctx, record) if failed else ())]
            if not failed:
                ensure_cron(ctx, record)
        if waiting and time.monotonic() > deadline:  # each still has its job: one last look, then its error
            failures += [(record, error) for record in waiting.values() for error in _start_error(ctx, record, 0)]
            break
        if waiting:
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    return failures


def _start_error(ctx: Context, record: AppRecord, timeout: float = START_TIMEOUT_S) -> list[PmsdError]:
    """_await_started's error, if any, as a list (empty when the app started)."""
    try:
        _await_started(ctx, record, timeout)
    except PmsdError as error:
        return [error]
    return []


def _submit(ctx: Context, record: AppRecord, fresh: bool = False) -> None:
    """Create the record's transient unit. Its name is made free first (an errored unit of an earlier run, or the
    app's running unit on a restart); `fresh`, for an app that should have no unit, asks systemd first and makes
    room only when told the name is taken: looking first was a round trip through a manager busy with the other
    starts, a third of the time a start of 1,000 apps took."""
    manager = ctx.manager
    if not fresh:
        stop_and_collect(manager, record.unit, LEFTOVER_STOP_S)
    if uses_log_pipes(ctx, record.spec):  # god writes the files: it opens them, as the app's user
        check_god_log_files(ctx, record.spec)  # before anything of the app's pipes exists
        pipes, log_fds = log_pipes(ctx, record.spec), {}
    else:
        remove_log_pipes(ctx, record.spec.name)  # its files went (or god did): systemd appends, or the journal
        pipes, log_fds = {}, open_log_files(ctx, record.spec)
    try:
        inputs = UnitInputs(record.spec, ctx.registry.record_env_file(record), system=not ctx.user, log_fds=log_fds,
                            log_pipes=pipes)
        properties = transient_properties(inputs, manager.version)
        try:
            manager.start_transient(record.unit, properties)  # systemd keeps its own copies of the descriptors
        except UnitExists:
            if not fresh:
                raise
            stop_and_collect(manager, record.unit, LEFTOVER_STOP_S)
            manager.start_transient(record.unit, properties)
    finally:
        for fd in log_fds.values():
            os.close(fd)


def _await_started(ctx: Context, record: AppRecord, timeout: float = START_TIMEOUT_S) -> None:
    manager = ctx.manager
    unit = record.unit
    state = manager.wait_until(unit, lambda s: s is None or not s.has_job, timeout, "the start job")
    ensure_cron(ctx, record)
    if failed_to_start(state, record.spec.wait_ready):
        detail = exit_detail(state) if state is not None else "it exited before it said it was ready (READY=1)"
        stop_and_collect(manager, unit, LEFTOVER_STOP_S)
        raise PmsdError(
            f"app {record.name!r} failed to start: {detail}",
            f"see `{journalctl_command(ctx.user, unit)}` (or `pmsd logs {record.name}`)",
        )


def open_log_files(ctx: Context, spec: AppSpec) -> dict[str, int]:
    """The log files of an app that runs as another user, opened (and created, with their directories, as that
    user) with that user's rights: systemd would open the paths as root, following a symlink the user put
    there, and create a file owned by root wherever the path points (systemd.exec(5), StandardOutput=append:).
    Empty for other apps, whose files systemd opens (make_log_dirs creates their directories)."""
    if spec.user is None or not runs_as_another_user(spec.user, not ctx.user, os.getuid()):
        make_log_dirs(spec)
        return {}
    paths = {stream: path for stream, path in (("out", stdout_file(spec)), ("err", stderr_file(spec))) if path}
    return _open_as_app_user(spec, paths)


def check_god_log_files(ctx: Context, spec: AppSpec) -> None:
    """The files god will write for the app (pmsd.god.logwriter), created now with the rights god will open them
    with (the app's user, for another user's app): a path that user cannot write is refused here, with the
    reason, rather than found by god after the start."""
    paths = {path: path for files in log_sinks(spec).values() for path in files}
    if spec.user is not None and runs_as_another_user(spec.user, not ctx.user, os.getuid()):
        for fd in _open_as_app_user(spec, paths).values():
            os.close(fd)
        return
    make_log_dirs(spec, paths)
    for path in paths:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOCTTY | os.O_CLOEXEC, 0o640))
        except OSError as error:
            raise PmsdError(f"app {spec.name!r}: cannot write its log file {path}: {error.strerror}",
                            "fix the path, or its permissions", ExitStatus.PERMISSION) from None


def _open_as_app_user(spec: AppSpec, paths: dict[str, str]) -> dict[str, int]:
    """Each path opened for appending (created, with its directories) by the app's user; key -> descriptor."""
    assert spec.user is not None
    if not paths:
        return {}
    try:
        identity = identity_of(spec.user, spec.group)
    except KeyError:
        raise PmsdError(f"app {spec.name!r}: no user {spec.user!r} or group {spec.group!r} on this system",
                        "create them, or fix `user`/`group`") from None
    fds: dict[str, int] = {}
    try:
        for stream, path in paths.items():
            fds[stream] = open_as(identity, path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOCTTY, 0o640,
                                  make_parents=True)
    except OSError as error:
        for fd in fds.values():
            os.close(fd)
        raise PmsdError(f"app {spec.name!r}: user {spec.user} cannot write its log file {error.filename}: "
                        f"{error.strerror}", f"the file and its directory must be writable by {spec.user}",
                        ExitStatus.PERMISSION) from None
    return fds


def ensure_cron(ctx: Context, record: AppRecord) -> None:
    """The app's cron_restart as a timer unit (pmsd.cron-<app>.timer), which fires whether god runs or not.

    The timer triggers pmsd.cron-<app>.service, a oneshot running `pmsd restart <app>`: a stopped app is
    started, as PM2's cron does. A timer whose pattern is unchanged is left alone; this also runs inside
    that very service (its `pmsd restart`), which must not stop itself.
    """
    manager = ctx.manager
    timer = cron_timer_unit(record.name)
    pattern = record.spec.cron_restart
    description = f"pmsd cron_restart of app {record.name}: {pattern}"
    current = manager.unit_summary(timer)
    if current is not None and current[1] == description and current[0] == ActiveState.ACTIVE:
        return
    if current is not None:
        remove_cron(ctx, record.name)
    if not pattern:
        return
    scope = () if ctx.user else ("--system",)
    start_timer(manager, TimerJob(
        timer=timer, service=cron_service_unit(record.name), on_calendar=tuple(on_calendar(pattern)),
        # "--": a name starting with "-" is the target, not an option (issue 11, 8a). exec_argv: systemd would
        # replace $NAME and ${NAME} in it from the environment.
        command=(sys.executable, "-P", "-m", "pmsd", *scope, "restart", "--", *exec_argv([record.name])),
        environment=(f"PMSD_STATE_DIR={ctx.state_dir}", "PMSD_NO_GOD=1"),
        description=description, service_description=f"pmsd cron restart of app {record.name}",
    ))


def remove_cron(ctx: Context, name: str) -> None:
    stop_and_reset_quietly(ctx.manager, [cron_timer_unit(name), cron_service_unit(name)])


def restart_record(ctx: Context, record: AppRecord, update_env: bool) -> None:
    """Stop the record's unit if it runs and start it again; the stopped unit's NRestarts, plus this restart,
    move into the record's offset (the new unit counts from 0).

    As PM2's God.restartProcessId (lib/God/ActionMethods.js), only a restart of a running app counts (online or
    launching): an app that is stopped, errored or waiting to restart is just started."""
    state = ctx.manager.service_state(record.unit)
    running = pm2_status(state, record.spec.autorestart, record.spec.stop_exit_codes) in RUNNING_STATUSES
    record.restart_offset += (state.n_restarts if state is not None else 0) + (1 if running else 0)
    write_environment(ctx, record, fresh=update_env)
    stop_and_collect(ctx.manager, record.unit, LEFTOVER_STOP_S)
    launch_many(ctx, [record])


def stop_record(ctx: Context, record: AppRecord) -> None:
    """Stop the record's unit and let systemd collect it, keeping its restart count in the record."""
    state = stop_and_collect(ctx.manager, record.unit, record.spec.kill_timeout / 1000 + STOP_GRACE_S)
    if state is not None:
        record.restart_offset += state.n_restarts  # the unit and its NRestarts are collected


def forget(ctx: Context, data: RegistryData, record: AppRecord) -> None:
    data.apps.remove(record)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(ctx.registry.record_env_file(record))
    remove_record_logs(ctx, record)


def redefine(ctx: Context, data: RegistryData, records: list[AppRecord], spec: AppSpec,
             update_env: bool = False) -> list[AppRecord]:
    """Give an existing app a new definition: switch between one transient unit and template instances when
    needed, and add or remove instances to match `instances`. Returns the records to (re)start; instances
    beyond the new count are stopped and forgotten. `update_env`: the records will be restarted with the
    caller's environment (checked before anything stops, as the stored one is otherwise)."""
    spec = with_config_defaults(ctx, spec)
    if (records[0].instance is not None) != spec.clustered:
        # The first record goes on as instance 0 or as the fork app, with its environment (instances added
        # later are checked as they are made): a refusal must come before anything stops
        check_environment(ctx, replace(records[0], spec=spec), fresh=update_env)
        if spec.clustered and spec.instances > 1:  # the others are new: the caller's environment (add_instances)
            check_environment(ctx, replace(records[0], spec=spec, pm_id=data.next_id + spec.instances,
                                           instance=spec.instances - 1), fresh=True)
        records = _switch_model(ctx, data, records, spec)
    for record in records:
        record.spec = spec
    if not spec.clustered:
        return records
    # As PM2's scale: fewer instances remove the oldest ones (lowest ids) first; more instances take the lowest
    # free instance numbers (NODE_APP_INSTANCE), which may be ones just freed.
    oldest_first = sorted(records, key=lambda record: record.pm_id)
    removed = oldest_first[: max(0, len(records) - spec.instances)]
    for record in removed:
        stop_record(ctx, record)
        forget(ctx, data, record)
    kept = [record for record in records if record not in removed]
    return kept + add_instances(ctx, data, kept, spec, spec.instances - len(kept))


def _switch_model(ctx: Context, data: RegistryData, records: list[AppRecord], spec: AppSpec) -> list[AppRecord]:
    """Fork app <-> template instances: stop everything, keep the first record (and its environment) as
    instance 0 or as the fork app."""
    was_clustered = records[0].instance is not None
    for record in records:
        stop_record(ctx, record)
        remove_record_logs(ctx, record)  # its unit's name changes: so do its pipes and drop-in
        with contextlib.suppress(FileNotFoundError):
            os.rename(ctx.registry.record_env_file(record), f"{ctx.registry.record_env_file(record)}.old")
    if was_clustered:
        cluster.remove_app_units(ctx, spec.name)
        for record in records[1:]:
            forget(ctx, data, record)
        records = records[:1]
    for index, record in enumerate(records):
        old_env = f"{ctx.registry.record_env_file(record)}.old"
        record.instance = index if spec.clustered else None
        with contextlib.suppress(FileNotFoundError):
            os.rename(old_env, ctx.registry.record_env_file(record))
    return records


def add_instances(ctx: Context, data: RegistryData, records: list[AppRecord], spec: AppSpec,
                  count: int) -> list[AppRecord]:
    """New instance records (the lowest free numbers) with their environment; not started."""
    used = {record.instance for record in records}
    numbers = [n for n in range(len(records) + count) if n not in used][:count]
    created_at = records[0].created_at if records else now_ms()
    # increment_var: one more than the highest of the app's instances, as PM2 (AppRecord.increment)
    first = max((record.increment_offset for record in records), default=-1) + 1
    added = [AppRecord(pm_id=pm_id, spec=spec, created_at=created_at, instance=n, increment=first + index)
             for index, (n, pm_id) in enumerate(zip(numbers, data.allocate_ids(count) if count else [],
                                                    strict=True))]
    write_environments(ctx, added, fresh=True)
    data.apps.extend(added)
    return added
