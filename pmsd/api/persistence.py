"""`pmsd save`, `resurrect` and `cleardump`: PM2's saved process list, kept safe (pmsd.state.dump).

save records every app pmsd knows (its registry records: names, ids, namespaces, definitions, instances),
each record's environment file, the ports found for cluster apps, and which apps should be running: every
app but the ones stopped on purpose (`stopped`). resurrect puts back what is missing from that and starts
what should run and does not (fork apps' units all created at once, then waited for), so it is idempotent,
and one app that fails to start does not keep the others down. `pmsd startup` (pmsd.api.startup) runs it
when the manager starts, that is at boot.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

from pmsd.api.god import ensure_god
from pmsd.api.launch import launch_fork_apps, launch_many, write_environment
from pmsd.api.lifecycle import Outcome
from pmsd.api.query import list_processes
from pmsd.context import Context
from pmsd.errors import NotFoundError, PmsdError
from pmsd.model.record import AppRecord, RegistryData, now_ms
from pmsd.model.status import Status
from pmsd.state.dump import DumpFile, Saved, SavedApp
from pmsd.state.envfiles import read_env_file, write_env_file
from pmsd.state.ports import read_found_ports, write_found_ports

# An app should run unless it was stopped on purpose: an errored one is tried again at boot, as PM2 does.
SHOULD_RUN = frozenset(set(Status) - {Status.STOPPED})
UP = frozenset({Status.ONLINE, Status.LAUNCHING, Status.WAITING_RESTART})


@dataclass(frozen=True)
class SaveResult:
    path: str
    apps: int  # app names
    running: int  # of them, how many resurrect starts


def save(ctx: Context, force: bool = False) -> SaveResult | None:
    """Record every app, as PM2's `save`. With no apps nothing is written (None, and a warning), so a crash that
    lost the apps cannot empty the save; force writes the empty list (PM2's `save --force`)."""
    data = ctx.registry.read()
    if not data.apps and not force:
        # PM2 says so and exits 0 ("PM2 is not managing any process, skipping save"): deploy scripts rely on it.
        ctx.warnings.append("pmsd knows no apps: nothing saved, the last save is kept; `pmsd save --force` "
                            "saves an empty list (`pmsd resurrect` then brings back nothing)")
        return None
    statuses = {info.pm_id: info.status for info in list_processes(ctx)} if data.apps else {}
    apps = [SavedApp(record, statuses.get(record.pm_id) in SHOULD_RUN, _env_of(ctx, record))
            for record in sorted(data.apps, key=lambda r: r.pm_id)]
    ports = {}
    for name in sorted({record.name for record in data.apps if record.instance is not None}):
        found = read_found_ports(ctx.state_dir, name)
        if found is not None:
            ports[name] = list(found)
    dump = DumpFile(ctx.state_dir)
    dump.write(Saved(now_ms(), data.next_id, apps, ports))
    names = {app.record.name for app in apps}
    return SaveResult(dump.path, len(names), len({app.record.name for app in apps if app.running}))


def _env_of(ctx: Context, record: AppRecord) -> dict[str, str] | None:
    try:
        return read_env_file(ctx.registry.record_env_file(record))
    except OSError:
        return None  # resurrect then writes a fresh one from the definition


def cleardump(ctx: Context) -> str:
    """An empty save, as PM2's `cleardump`; the save it replaces stays as the backup."""
    dump = DumpFile(ctx.state_dir)
    dump.write(Saved(now_ms(), ctx.registry.read().next_id, [], {}))
    return dump.path


def resurrect(ctx: Context) -> list[Outcome]:
    """Put back the saved apps pmsd does not know, and start the saved apps that should run and do not."""
    saved = DumpFile(ctx.state_dir).read(ctx.warnings)
    if saved is None:
        raise NotFoundError("nothing was saved", "`pmsd save` records the apps pmsd runs now")
    outcomes: list[Outcome] = []
    with ctx.registry.transaction() as data:
        for name, group in _by_name(saved.apps).items():
            if not data.instances_of(name):
                outcomes += _restore(ctx, data, group, saved.ports.get(name))
    with contextlib.suppress(PmsdError):
        ensure_god(ctx)  # apps start without god; its policies join when it can run
    failures = []
    # One look at systemd for every app (a ListUnitsByPatterns call) and one registry transaction, not one of
    # each per app: at boot that is most of resurrect's own time.
    statuses = {info.pm_id: info.status for info in list_processes(ctx)}
    with ctx.registry.transaction() as data:
        down = [record for name in _by_name([app for app in saved.apps if app.running])
                for record in data.instances_of(name) if statuses.get(record.pm_id) not in UP]
        # Fork apps all at once (systemd starts them side by side); cluster apps app by app, as they share units.
        forks = [record for record in down if record.instance is None]
        failed = launch_fork_apps(ctx, forks)
        failures += [error.message for _record, error in failed]
        failed_ids = {record.pm_id for record, _error in failed}
        outcomes += [Outcome("started", record.pm_id, record.name) for record in forks
                     if record.pm_id not in failed_ids]
        for name in sorted({record.name for record in down if record.instance is not None}):
            instances = [record for record in down if record.name == name]
            try:
                launch_many(ctx, instances)
                outcomes += [Outcome("started", record.pm_id, record.name) for record in instances]
            except PmsdError as error:
                failures.append(error.message)
    if failures:
        raise PmsdError("; ".join(failures), "the other saved apps were started; `pmsd ls` shows them")
    return outcomes


def _by_name(apps: Sequence[SavedApp]) -> dict[str, list[SavedApp]]:
    groups: dict[str, list[SavedApp]] = {}
    for app in apps:
        groups.setdefault(app.record.name, []).append(app)
    return groups


def _restore(ctx: Context, data: RegistryData, group: list[SavedApp], ports: list[int] | None) -> list[Outcome]:
    """The app's saved records back in the registry, with their ids unless another app took one meanwhile."""
    taken = {record.pm_id for record in data.apps}
    outcomes = []
    for app in group:
        record = app.record
        if record.pm_id in taken:
            ctx.warnings.append(f"{record.name}: id {record.pm_id} belongs to another app now; it gets a new id")
            record.pm_id = data.allocate_id()
        data.apps.append(record)
        taken.add(record.pm_id)
        data.next_id = max(data.next_id, record.pm_id + 1)
        env_file = ctx.registry.record_env_file(record)
        if not os.path.exists(env_file):
            if app.env is not None:
                write_env_file(env_file, app.env)
            else:
                write_environment(ctx, record, fresh=True)
        outcomes.append(Outcome("restored", record.pm_id, record.name))
    if ports is not None and read_found_ports(ctx.state_dir, group[0].record.name) is None:
        write_found_ports(ctx.state_dir, group[0].record.name, tuple(ports))
    return outcomes

