"""PM2's process lifecycle on systemd: start, restart, reload, scale, stop, delete, reset.

Each command resolves and validates everything it was given before it has any effect: a bad definition or an
unknown target leaves no god started, no lock taken and nothing written. Then it changes the registry under
its lock (pmsd.state.registry) and drives systemd with the steps in pmsd.api.launch.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from pmsd.api import cluster
from pmsd.api.config import with_config_defaults
from pmsd.api.god import ensure_god
from pmsd.api.launch import (
    RUNNING_STATUSES,
    check_environment,
    forget,
    launch_fork_apps,
    launch_many,
    new_records,
    redefine,
    remove_cron,
    restart_record,
    stop_record,
    undo_create,
    write_environment,
    write_environments,
)
from pmsd.api.linger import linger_warning
from pmsd.api.logpipes import remove_log_pipes
from pmsd.api.targets import (
    STDIN,
    STDIN_LABEL,
    Target,
    Targets,
    parse_targets,
    read_stdin_apps,
    resolve_targets,
    select,
    target_list,
)
from pmsd.context import Context
from pmsd.definition.build import build_spec, definition_of
from pmsd.definition.ecosystem import is_ecosystem_file, load_apps
from pmsd.definition.settings import ALIASES
from pmsd.definition.units import check_log_files, check_scope
from pmsd.errors import NotFoundError, PmsdError, UsageError
from pmsd.model.counters import counters_for
from pmsd.model.record import AppRecord, RegistryData
from pmsd.model.spec import COMMAND_LINE, AppSpec, Source
from pmsd.model.status import pm2_status
from pmsd.state.counters import load_counters
from pmsd.state.envfiles import read_env_file, write_env_file
from pmsd.systemd.states import UP_STATES, ActiveState


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
    except (NotFoundError, UsageError):
        return False
    return target != "all" or bool(data.apps)


def _chosen(data: RegistryData, targets: Sequence[Target], verb: str) -> list[AppRecord]:
    """The apps the targets mean; `all` with nothing registered is refused, as PM2 exits 1 ("No process
    found")."""
    records = select(data, targets)
    if not records:
        raise NotFoundError(f"no apps to {verb}", "`pmsd ls` lists them; `pmsd start` adds one")
    return records


# ------------------------------------------------------------------------------------------ start


def start(ctx: Context, target: str, options: StartOptions | None = None) -> list[Outcome]:
    """Start a script, an ecosystem file, or (like PM2) restart an existing name/id/namespace/all."""
    options = options or StartOptions()
    outcomes = _start(ctx, target, options)
    warning = linger_warning(ctx)
    if warning is not None:
        ctx.warnings.append(warning)
    return outcomes


def _start(ctx: Context, target: str, options: StartOptions) -> list[Outcome]:
    if target == STDIN or (is_ecosystem_file(target) and os.path.exists(target)):
        # `pmsd start -`: the definition on stdin, started as an ecosystem file's (PM2's `_startJson` of a pipe)
        specs = _stdin_specs(ctx, read_stdin_apps(), options) if target == STDIN else _ecosystem_specs(
            ctx, target, options)
        return _start_specs(ctx, specs)
    if _is_known_target(ctx.registry.read(), target) and not _looks_like_script(target):
        return restart(ctx, target, options.update_env)
    raw: dict[str, object] = {"script": target, **options.overrides}
    spec = build_spec(raw, Source(COMMAND_LINE, os.getcwd()), options.env_name, ctx.environ.get("PATH"),
                      ctx.warnings)
    check_scope(spec, system=not ctx.user)
    check_log_files(spec, not ctx.user, os.getuid())
    ensure_god(ctx)
    with ctx.registry.transaction() as data:
        existing = data.instances_of(spec.name)
        if existing:
            return _start_over_existing(ctx, data, existing, spec, options)
        return _create(ctx, data, spec)


def start_apps(ctx: Context, apps: Sequence[Mapping[str, object]], source: Source,
               options: StartOptions | None = None) -> list[Outcome]:
    """Start apps given as ecosystem definitions (from a file, stdin, or PM2's dump): all are validated first."""
    return _start_specs(ctx, _declared_specs(ctx, apps, source, options or StartOptions()))


def _start_specs(ctx: Context, specs: Sequence[AppSpec]) -> list[Outcome]:
    """Start the declared apps: new fork apps all at once (systemd runs their start jobs side by side), the
    others one by one; one registry transaction for all (one per app was quadratic: 1,000 apps took 92 s). An
    app that fails to start does not stop the others, as in PM2: those that started are listed, those that did
    not are undone, and the failures are raised together at the end."""
    ensure_god(ctx)
    outcomes: dict[str, list[Outcome]] = {}
    failures: list[PmsdError] = []
    with ctx.registry.transaction() as data:
        together: list[AppRecord] = []
        for spec in specs:
            if spec.autostart and not spec.clustered and not data.instances_of(spec.name):
                records = _new_app(ctx, data, spec)
                ctx.registry.undo_unless_saved(functools.partial(undo_create, ctx, records))
                data.apps.extend(records)  # now: the next app's ids come after these
                together += records
                continue
            try:
                outcomes[spec.name] = _start_declared(ctx, data, spec)
            except PmsdError as error:
                failures.append(error)
        failed = {record.pm_id: error for record, error in launch_fork_apps(ctx, together)}
        for record in together:
            if record.pm_id in failed:
                data.apps.remove(record)
                undo_create(ctx, [record])
                failures.append(failed[record.pm_id])
            else:
                outcomes[record.name] = [Outcome("started", record.pm_id, record.name)]
    if failures:
        raise PmsdError("; ".join(error.message for error in failures), failures[0].hint, failures[0].status)
    return [outcome for spec in specs for outcome in outcomes.get(spec.name, [])]


def _each_once(specs: Sequence[AppSpec]) -> list[AppSpec]:
    """The first definition of each app name, in order."""
    first: dict[str, AppSpec] = {}
    for spec in specs:
        first.setdefault(spec.name, spec)
    return list(first.values())


def _looks_like_script(target: str) -> bool:
    return os.sep in target or os.path.isfile(target)


def _ecosystem_specs(ctx: Context, path: str, options: StartOptions) -> list[AppSpec]:
    """Every app of the file, validated, before anything is created: a broken app never leaves its siblings
    half-started."""
    source = Source(os.path.relpath(path), os.path.dirname(os.path.abspath(path)))
    return _declared_specs(ctx, load_apps(path), source, options)


def _stdin_specs(ctx: Context, apps: Sequence[Mapping[str, object]], options: StartOptions) -> list[AppSpec]:
    """The apps of the definition read from stdin, validated; relative paths start at the current directory."""
    return _declared_specs(ctx, apps, Source(STDIN_LABEL, os.getcwd()), options)


def _declared_specs(ctx: Context, apps: Sequence[Mapping[str, object]], source: Source,
                    options: StartOptions) -> list[AppSpec]:
    specs = [build_spec(_overlaid(raw, options.overrides), source, options.env_name, ctx.environ.get("PATH"),
                        ctx.warnings) for raw in apps]
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise UsageError(f"{source.label}: app names must be unique, repeated: {', '.join(duplicates)}")
    if options.only:
        missing = sorted(set(options.only) - set(names))
        if missing:
            raise NotFoundError(f"{source.label} has no app named {', '.join(missing)} (--only)")
        specs = [spec for spec in specs if spec.name in options.only]
    for spec in specs:
        check_scope(spec, system=not ctx.user)
        check_log_files(spec, not ctx.user, os.getuid())
    return specs


def _start_declared(ctx: Context, data: RegistryData, spec: AppSpec) -> list[Outcome]:
    existing = data.instances_of(spec.name)
    if not existing:
        return _create(ctx, data, spec)
    # PM2 restarts apps an ecosystem file declares that already exist, with the file's definition.
    return _restart_records(ctx, redefine(ctx, data, existing, spec, update_env=True), update_env=True)


def _start_over_existing(
    ctx: Context, data: RegistryData, records: list[AppRecord], spec: AppSpec, options: StartOptions,
) -> list[Outcome]:
    existing = records[0]
    if existing.spec.script != spec.script:
        raise UsageError(
            f"an app named {spec.name!r} already exists (id {existing.pm_id}, script {existing.spec.script})",
            f"pick another --name, or `pmsd delete {existing.pm_id}` first",
        )
    states = [ctx.manager.service_state(record.unit) for record in records]
    running = any(s is not None and s.active_state in UP_STATES for s in states)
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
        return _create(ctx, data, replace(spec, name=f"{spec.name}-{copy}"))
    return _restart_records(ctx, redefine(ctx, data, records, spec, options.update_env), options.update_env)


def _new_app(ctx: Context, data: RegistryData, spec: AppSpec) -> list[AppRecord]:
    """A new app's records as the global settings make it (pmsd.api.config), with their environment files;
    not yet in the registry, nothing started."""
    records = new_records(data, with_config_defaults(ctx, spec))
    write_environments(ctx, records, fresh=True)  # all checked first (check_exec_size): a refusal leaves no file
    return records


def _create(ctx: Context, data: RegistryData, spec: AppSpec) -> list[Outcome]:
    records = _new_app(ctx, data, spec)
    spec = records[0].spec
    try:
        if spec.autostart:
            launch_many(ctx, records)
    except BaseException:
        # Nothing half-created: no registry entry (the transaction aborts), no env file, no unit.
        undo_create(ctx, records)
        raise
    ctx.registry.undo_unless_saved(functools.partial(undo_create, ctx, records))  # a full disk: issue 19
    data.apps.extend(records)
    return [Outcome("started" if spec.autostart else "registered", r.pm_id, spec.name) for r in records]


# ------------------------------------------------------------------------------------------ restart / reload


@dataclass(frozen=True)
class _Plan:
    """What restart or reload was asked to act on, validated: the apps ecosystem files declare, the other
    targets (`-` among them), and the definitions read from stdin by name."""

    declared: list[AppSpec]
    parsed: list[Target]
    piped: dict[str, AppSpec]


def restart(ctx: Context, target: Targets, update_env: bool = False, toggle_watch: bool = False,
            env_name: str | None = None, only: Sequence[str] = (),
            overrides: Mapping[str, object] | None = None) -> list[Outcome]:
    """Restart apps; toggle_watch turns file watching on (the app's cwd) or off, as `pm2 restart --watch`.

    An ecosystem file is restarted as PM2 does (`_startJson` with restartProcessId, as `start` of the file):
    its apps (`only`) get the file's definition (with `env_<env_name>`) and restart; those not registered
    start. `-` means the apps of the definition on stdin that are registered: they take its `env` (PM2's
    `actionFromJson`). Other targets follow pmsd.api.targets; `env_name` needs a file or `-`, as in PM2.

    `overrides` (PM2 option keys, as `pmsd start`'s flags give them) change the definition of the apps the
    targets mean, as PM2's restart flags do: the stored definition is rebuilt with them and validated before
    anything happens. A value "null" removes the option (PM2's `--node-args=null`). A new `name` renames
    the one app the targets mean: its unit stops and one of the new name starts."""
    overrides = dict(overrides or {})
    plan = _plan(ctx, target, "restart", env_name, only, overrides)
    ensure_god(ctx)
    outcomes: list[Outcome] = []
    declared = _each_once(plan.declared)
    done = {spec.name for spec in declared}  # apps the definition gave: not restarted a second time below
    for spec in declared:
        with ctx.registry.transaction() as data:
            outcomes += _start_declared(ctx, data, spec)
    if not plan.parsed:
        return outcomes
    with ctx.registry.transaction() as data:
        records = [record for record in _chosen(data, plan.parsed, "restart") if record.name not in done]
        for name, spec in _respecified(ctx, data, records, overrides, plan.piped, []).items():
            group = [record for record in records if record.name == name]
            if toggle_watch:
                spec = replace(spec, watch=() if spec.watch else (spec.cwd,))
            if spec.name != name:
                outcomes.append(_rename(ctx, group[0], spec, update_env, "restarted"))
                continue
            for record in data.instances_of(name):
                record.spec = spec
            outcomes += _restart_records(ctx, group, update_env)
        return outcomes


def _plan(ctx: Context, target: Targets, verb: str, env_name: str | None, only: Sequence[str],
          overrides: Mapping[str, object]) -> _Plan:
    """Every target read and every definition built and checked, with no effect yet."""
    texts = target_list(target)
    files = [text for text in texts if _is_ecosystem_target(text)]
    others = [text for text in texts if text not in files]
    words = [text for text in others if text != STDIN]
    if env_name is not None and words:
        # PM2 refuses it too ("Using --env [env] without passing the ecosystem.config.js does not work").
        raise UsageError(f"--env {env_name}: env_{env_name} is read from an ecosystem file, and {words[0]!r} is "
                         "not one", "give the ecosystem file (or `-`, with the definition on stdin) as the target")
    options = StartOptions(overrides=dict(overrides), env_name=env_name, only=tuple(only))
    declared = [spec for path in files for spec in _ecosystem_specs(ctx, path, options)]
    piped: dict[str, AppSpec] = {}
    stdin_apps = read_stdin_apps() if STDIN in others else None
    if stdin_apps is not None:
        piped = {spec.name: spec for spec in _stdin_specs(ctx, stdin_apps, StartOptions(env_name=env_name))}
    parsed = parse_targets(others, only, stdin=stdin_apps, env_name=env_name) if others else []
    if parsed:
        data = ctx.registry.read()
        _respecified(ctx, data, _chosen(data, parsed, verb), overrides, piped, ctx.warnings)
    return _Plan(declared, parsed, piped)


def _respecified(ctx: Context, data: RegistryData, records: list[AppRecord], overrides: Mapping[str, object],
                 piped: Mapping[str, AppSpec], warn: list[str]) -> dict[str, AppSpec]:
    """Each chosen app's definition (by its current name, in the targets' order) with `overrides` applied and
    the `env` of its definition on stdin, validated; a UsageError when a rename cannot be done."""
    names = list(dict.fromkeys(record.name for record in records))
    if "name" in overrides and len(names) > 1:
        # PM2 would give every one of them the name; in pmsd a name is a unit name, unique.
        raise UsageError(f"--name renames one app, and the targets mean {len(names)}: {', '.join(names)}",
                         "name one app (its name or id)")
    specs: dict[str, AppSpec] = {}
    for name in names:
        current = data.instances_of(name)
        spec = current[0].spec
        if name in piped:
            spec = replace(spec, env=dict(piped[name].env))
        if overrides:
            spec = _rebuilt(ctx, spec, overrides, warn)
        if spec.name != name:
            _check_rename(data, current, spec.name)
        specs[name] = spec
    return specs


def _rebuilt(ctx: Context, spec: AppSpec, overrides: Mapping[str, object], warn: list[str]) -> AppSpec:
    """The definition rebuilt from its stored values (AppSpec fields that are settings) and the overrides."""
    rebuilt = build_spec(_overlaid(definition_of(spec), overrides), Source(COMMAND_LINE, os.getcwd()), None,
                         ctx.environ.get("PATH"), warn)
    check_scope(rebuilt, system=not ctx.user)
    check_log_files(rebuilt, not ctx.user, os.getuid())
    return rebuilt


def _overlaid(raw: Mapping[str, object], overrides: Mapping[str, object]) -> dict[str, object]:
    """raw with the overrides on top; an override "null" removes the option (under any of its names), as PM2
    drops an attribute given as null on restart."""
    out = dict(raw)
    for key, value in overrides.items():
        if value == "null":
            setting = ALIASES.get(key, key)
            for known in [known for known in out if ALIASES.get(known, known) == setting]:
                del out[known]
        else:
            out[key] = value
    return out


def _check_rename(data: RegistryData, records: list[AppRecord], new_name: str) -> None:
    owner = data.by_name(new_name)
    if owner is not None:
        raise UsageError(f"--name {new_name}: an app of that name exists (id {owner.pm_id})",
                         "app names are unique in pmsd: pick another name, or delete that app first")
    if records[0].instance is not None:
        raise UsageError(f"--name: app {records[0].name!r} runs as instances, which restart cannot rename",
                         f"`pmsd delete {records[0].name}` and start it again with --name {new_name}")


def _rename(ctx: Context, record: AppRecord, spec: AppSpec, update_env: bool, action: str) -> Outcome:
    """A fork app under a new name: its unit (named after the app) stops, and the new one starts. A rename of a
    running app counts as its restart, as PM2's does."""
    # refused (too big to execute) before the app is stopped: the stored environment gets the new `name` below
    check_environment(ctx, replace(record, spec=spec), update_env, {"name": spec.name})
    state = ctx.manager.service_state(record.unit)
    running = pm2_status(state, record.spec.autorestart, record.spec.stop_exit_codes) in RUNNING_STATUSES
    stop_record(ctx, record)
    remove_cron(ctx, record.name)
    remove_log_pipes(ctx, record.name)
    record.spec = spec
    record.restart_offset += 1 if running else 0
    write_environment(ctx, record, fresh=update_env)
    env_file = ctx.registry.record_env_file(record)
    with contextlib.suppress(FileNotFoundError):
        # the stored environment holds PM2's `name` variable: the app sees its new name, as in PM2
        write_env_file(env_file, {**read_env_file(env_file), "name": spec.name})
    launch_many(ctx, [record])
    return Outcome(action, record.pm_id, spec.name)


def _is_ecosystem_target(text: str) -> bool:
    return is_ecosystem_file(text) and os.path.isfile(text)


def _restart_records(ctx: Context, records: list[AppRecord], update_env: bool) -> list[Outcome]:
    outcomes = []
    for record in records:
        restart_record(ctx, record, update_env)
        outcomes.append(Outcome("restarted", record.pm_id, record.name))
    return outcomes


def reload(ctx: Context, target: Targets, update_env: bool = False, only: Sequence[str] = (),
           env_name: str | None = None, overrides: Mapping[str, object] | None = None) -> list[Outcome]:
    """PM2's reload: cluster apps are replaced one instance at a time, each new instance ready (READY=1, or
    accepting on the shared socket, bounded by listen_timeout) before the next old one stops; other
    instances keep serving meanwhile. Fork-mode apps are restarted, as PM2 does.

    An ecosystem file is reloaded as PM2's `_startJson` with reloadProcessId does: its apps that exist take
    the file's `env` (with `env_<env_name>`) and the current environment, and reload; the others start.
    `overrides` and `-` are read as restart reads them."""
    overrides = dict(overrides or {})
    plan = _plan(ctx, target, "reload", env_name, only, overrides)
    ensure_god(ctx)
    outcomes: list[Outcome] = []
    declared = _each_once(plan.declared)
    done = {spec.name for spec in declared}  # apps the definition gave: not restarted a second time below
    for spec in declared:
        with ctx.registry.transaction() as data:
            existing = data.instances_of(spec.name)
            if not existing:
                outcomes += _create(ctx, data, spec)
                continue
            for record in existing:
                record.spec = replace(record.spec, env=dict(spec.env))
            outcomes += _reload_app(ctx, data, spec.name, existing, update_env=True)
    if not plan.parsed:
        return outcomes
    with ctx.registry.transaction() as data:
        records = [record for record in _chosen(data, plan.parsed, "reload") if record.name not in done]
        for name, spec in _respecified(ctx, data, records, overrides, plan.piped, []).items():
            group = [record for record in records if record.name == name]  # each app once, in the targets' order
            if spec.name != name:
                outcomes.append(_rename(ctx, group[0], spec, update_env, "reloaded"))
                continue
            for record in data.instances_of(name):
                record.spec = spec
            outcomes += _reload_app(ctx, data, name, group, update_env)
        return outcomes


def _reload_app(ctx: Context, data: RegistryData, name: str, group: list[AppRecord],
                update_env: bool) -> list[Outcome]:
    rolling = group[0].instance is not None and group[0].spec.exec_mode == "cluster"
    # PM2 starts a new worker before it stops an old one, so capacity never drops. Likewise one extra
    # instance, started first and stopped last, serves on the shared socket while each is replaced.
    serving = rolling and bool(cluster.listen_addresses(ctx, group[0].spec)) and any(
        unit.active_state == ActiveState.ACTIVE for unit in cluster.instance_units(ctx.manager, name))
    last = data.instances_of(name)[-1]  # in instance order: the stand-in is numbered after it
    with cluster.stand_in(ctx, last) if serving else contextlib.nullcontext():
        return [_reload_record(ctx, record, update_env, rolling) for record in group]


def _reload_record(ctx: Context, record: AppRecord, update_env: bool, rolling: bool) -> Outcome:
    restart_record(ctx, record, update_env)
    if rolling and not cluster.wait_ready(ctx, record):
        ctx.warnings.append(f"app {record.name!r} instance {record.instance} (id {record.pm_id}) was not seen "
                            f"accepting on {', '.join(cluster.listen_addresses(ctx, record.spec))} within "
                            "listen_timeout "
                            f"({record.spec.listen_timeout} ms); reload went on, as PM2 does")
    return Outcome("reloaded", record.pm_id, record.name)


def scale(ctx: Context, target: Targets, request: str) -> list[Outcome]:
    """`pmsd scale <app> <N|+N|-N>`: start or remove instances; the others are left running. A fork app
    becomes a cluster of instances (its one process is restarted as instance 0)."""
    records, wanted = _scale_request(ctx.registry.read(), target, request)  # refused before any effect
    check_log_files(replace(records[0].spec, instances=wanted), not ctx.user, os.getuid())
    ensure_god(ctx)
    with ctx.registry.transaction() as data:
        records, wanted = _scale_request(data, target, request)
        spec = replace(records[0].spec, instances=wanted)
        before = {record.pm_id for record in records}
        model_changes = (records[0].instance is not None) != spec.clustered
        kept = redefine(ctx, data, records, spec)
        outcomes = [Outcome("deleted", pm_id, spec.name) for pm_id in sorted(before - {r.pm_id for r in kept})]
        # Only new instances start; when the model changes (fork <-> instances) every record does.
        fresh = kept if model_changes else [record for record in kept if record.pm_id not in before]
        if fresh:
            launch_many(ctx, fresh)
        outcomes += [Outcome("started", record.pm_id, record.name) for record in fresh]
        return outcomes


def _scale_request(data: RegistryData, target: Targets, request: str) -> tuple[list[AppRecord], int]:
    """The app's records and the instance count wanted."""
    names = sorted({record.name for record in _chosen(data, parse_targets(target), "scale")})
    if len(names) != 1:
        shown = target if isinstance(target, str) else " ".join(target)
        raise UsageError(f"scale takes one app, {shown!r} means {len(names)}: {', '.join(names)}")
    records = data.instances_of(names[0])
    return records, cluster.parse_scale(len(records), request)


# ------------------------------------------------------------------------------------------ stop / delete / reset


def stop(ctx: Context, target: Targets, only: Sequence[str] = ()) -> list[Outcome]:
    """Stop apps. As in PM2, stopping also ends file watching (`restart --watch` turns it back on)."""
    parsed = parse_targets(target, only)
    _chosen(ctx.registry.read(), parsed, "stop")
    with ctx.registry.transaction() as data:
        outcomes = []
        records = _chosen(data, parsed, "stop")
        for record in records:
            if record.spec.watch:
                record.spec = replace(record.spec, watch=())
            stop_record(ctx, record)
            outcomes.append(Outcome("stopped", record.pm_id, record.name))
        for name in _cluster_names(records):
            cluster.release_if_idle(ctx, name)
        return outcomes


def _cluster_names(records: list[AppRecord]) -> list[str]:
    return sorted({record.name for record in records if record.instance is not None})


def delete(ctx: Context, target: Targets, only: Sequence[str] = ()) -> list[Outcome]:
    parsed = parse_targets(target, only)
    _chosen(ctx.registry.read(), parsed, "delete")
    with ctx.registry.transaction() as data:
        outcomes = []
        records = _chosen(data, parsed, "delete")
        for record in records:
            stop_record(ctx, record)
            forget(ctx, data, record)
            outcomes.append(Outcome("deleted", record.pm_id, record.name))
        for name in sorted({record.name for record in records}):
            if data.instances_of(name):
                if name in _cluster_names(records):
                    cluster.release_if_idle(ctx, name)
                continue
            # The app's last process is gone: so are its cron timer and its unit files.
            remove_cron(ctx, name)
            cluster.remove_app_units(ctx, name)
        return outcomes


def reset(ctx: Context, target: Targets) -> list[Outcome]:
    """Zero the restart counters, as `pm2 reset` does. `reset all` with nothing registered does nothing and
    succeeds, as PM2's does (it resets the empty list of all ids)."""
    parsed = parse_targets(target)
    select(ctx.registry.read(), parsed)
    with ctx.registry.transaction() as data:
        outcomes = []
        for record in select(data, parsed):
            state = ctx.manager.service_state(record.unit)
            counters = counters_for(load_counters(ctx.state_dir), record.pm_id, record.created_at)
            record.restart_offset = -(state.n_restarts if state is not None else 0) - (
                counters.restarts if counters is not None else 0)
            record.unstable_offset = counters.unstable if counters is not None else 0
            outcomes.append(Outcome("reset", record.pm_id, record.name))
        return outcomes


def environment(ctx: Context, target: Targets) -> Mapping[str, str]:
    records = _chosen(ctx.registry.read(), parse_targets(target), "show the environment of")
    try:
        return read_env_file(ctx.registry.record_env_file(records[0]))
    except FileNotFoundError:
        raise PmsdError(f"app {records[0].name!r} has no stored environment",
                        f"`pmsd restart {records[0].name} --update-env` stores the current one") from None
