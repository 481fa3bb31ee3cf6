"""What each command prints, given parsed arguments. Shared by the typer CLI and the fast path."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pmsd.context import Context
from pmsd.errors import ExitStatus, printable

if TYPE_CHECKING:
    from collections.abc import Callable

    from pmsd.api.lifecycle import Outcome
    from pmsd.model.protocol import PingResult
    from pmsd.model.record import AppRecord
    from pmsd.model.status import ProcessInfo


class Output:
    """How results are shown: PM2's -s (silent), -m (mini list), --no-color, --sort."""

    silent = False
    mini = False
    no_colour = False
    sort: str | None = None


def set_output(silent: bool = False, mini_list: bool = False, no_color: bool = False,
               sort: str | None = None) -> None:
    Output.silent, Output.mini, Output.no_colour, Output.sort = silent, mini_list, no_color, sort


def _colour() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ and not Output.no_colour


def show_warnings(ctx: Context) -> None:
    for warning in ctx.warnings:
        print(f"[pmsd][WARN] {printable(warning)}", file=sys.stderr)
    ctx.warnings.clear()


def finish(ctx: Context) -> None:
    """The end of every command: warnings not shown yet (e.g. the registry's backup was read) go to stderr
    after the output, then the manager connection closes."""
    show_warnings(ctx)
    ctx.close()


# PM2's `ls --sort <field>[:asc|desc]` fields (lib/API/UX/pm2-ls.js), and what each reads here.
SORT_FIELDS: dict[str, Callable[[ProcessInfo], Any]] = {
    "name": lambda info: info.name, "namespace": lambda info: info.record.spec.namespace,
    "pid": lambda info: info.pid, "id": lambda info: info.pm_id, "cpu": lambda info: info.cpu_percent,
    "memory": lambda info: info.memory_bytes, "uptime": lambda info: info.uptime_since_ms,
    "status": lambda info: str(info.status),
}


def sort_key(sort: str) -> tuple[Callable[[ProcessInfo], Any], bool]:
    """`name`, `memory:desc`: the key and whether it is descending."""
    from pmsd.errors import UsageError

    field_name, _, order = sort.partition(":")
    key = SORT_FIELDS.get(field_name.lower())
    if key is None or order.lower() not in ("", "asc", "desc"):
        raise UsageError(f"--sort {sort!r}: expected <field>[:asc|desc], field one of "
                         f"{', '.join(SORT_FIELDS)}", "e.g. --sort memory:desc")
    return key, order.lower() == "desc"


def mini_list(infos: Sequence[ProcessInfo], now: int) -> str:
    """PM2's `ls -m`: one block of `field : value` lines per app, no table."""
    from pmsd.render.table import COLUMNS, rows

    out = []
    for info, row in zip(infos, rows(infos, now), strict=True):
        out.append(f"+--- {info.name}\n")
        out += [f"{column} : {value}\n" for column, value in zip(COLUMNS, row, strict=True) if column != "name"]
        out.append(f"unit : {info.unit}\n\n")
    return "".join(out)


def ls(ctx: Context, sort: str | None = None, mini: bool = False, watch: bool = False) -> int:
    from pmsd.api.query import list_processes
    from pmsd.model.record import now_ms
    from pmsd.render.table import render

    sort = sort if sort is not None else Output.sort
    key = sort_key(sort) if sort else None  # a bad --sort is refused before systemd is asked

    def table() -> str:
        infos = list_processes(ctx)
        if key is not None:
            infos = sorted(infos, key=key[0], reverse=key[1])
        return mini_list(infos, now_ms()) if mini or Output.mini else render(infos, now_ms(), _colour())

    if watch:
        from pmsd.cli.monit import refresh

        return refresh(table)
    sys.stdout.write(table())
    return ExitStatus.OK


def monit(ctx: Context) -> int:
    """The live view on a terminal; printed to a pipe or a file, the `ls` table once."""
    from pmsd.cli.monit import run_monit

    status = run_monit(ctx)
    return ls(ctx) if status is None else status


def jlist(ctx: Context) -> int:
    from pmsd.api.query import list_processes
    from pmsd.render.jlisttext import render_json

    sys.stdout.write(render_json(list_processes(ctx), ctx.user))
    return ExitStatus.OK


def prettylist(ctx: Context) -> int:
    from pmsd.api.query import list_processes
    from pmsd.render.jlist import PreparedEntries, render_pretty

    prepared = PreparedEntries(ctx.user)
    sys.stdout.write(render_pretty(list_processes(ctx, meanwhile=prepared.prepare), ctx.user, prepared))
    return ExitStatus.OK


def pid(ctx: Context, target: str | None) -> int:
    from pmsd.api.query import list_processes

    for info in list_processes(ctx, target):
        if info.pid or target is not None:
            print(info.pid)
    return ExitStatus.OK


def ids(ctx: Context, name: str) -> int:
    data = ctx.registry.read()
    found = sorted(app.pm_id for app in data.apps if app.name == name)
    # PM2 prints the array as Node shows it: "[ 0 ]", or "[]" when nothing matches.
    print("[ " + ", ".join(map(str, found)) + " ]" if found else "[]")
    return ExitStatus.OK


def report(ctx: Context, outcomes: Sequence[Outcome], verb: str) -> int:
    show_warnings(ctx)
    if Output.silent:
        return ExitStatus.OK
    for outcome in outcomes:
        print(f"[pmsd] {verb} {outcome.name} (id {outcome.pm_id}): {outcome.action}")
    if not outcomes:
        print("[pmsd] nothing to do")
    return ls(ctx)


def start(ctx: Context, params: dict[str, Any]) -> int:
    from pmsd.api.lifecycle import StartOptions
    from pmsd.api.lifecycle import start as api_start
    from pmsd.cli.grammar import output_request, start_request

    shown = output_request(params)
    set_output(shown["silent"], shown["mini_list"], shown["no_color"])
    target, options = start_request(params)
    try:
        outcomes = api_start(ctx, target, StartOptions(**options))
    finally:
        show_warnings(ctx)  # also when start fails: a warning may name the cause (a misspelt key)
    status = report(ctx, outcomes, "start")
    if params.get("write"):
        write_definitions(ctx, sorted({outcome.name for outcome in outcomes}))
    if params.get("attach") and outcomes and status == ExitStatus.OK:
        return logs(ctx, names_target(sorted({outcome.name for outcome in outcomes})))
    return status


def write_definitions(ctx: Context, names: Sequence[str]) -> None:
    """PM2's `start -w`: each app's definition in <name>-pm2.json, in the directory the command ran in ($PWD, as
    PM2 takes it). Written by the user running pmsd, with their rights, like any file they ask for."""
    from pmsd.definition.build import definition_of

    directory = os.environ.get("PWD") or os.getcwd()
    data = ctx.registry.read()
    for name in names:
        records = data.instances_of(name)
        if not records:
            continue
        if os.sep in name or name in (".", ".."):
            print(f"[pmsd][WARN] {name}: not written, the name cannot be a file name", file=sys.stderr)
            continue
        path = os.path.join(directory, f"{name}-pm2.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(definition_of(records[0].spec), handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        if not Output.silent:
            print(f"[pmsd] {name}: definition written to {path}")


def names_target(names: Sequence[str]) -> str:
    """A target for exactly these app names: the name, or a /regex/ matching only them (PM2's --attach)."""
    if len(names) == 1:
        return names[0]
    return "/^(" + "|".join(re.escape(name) for name in names) + ")$/"


def describe(ctx: Context, target: str) -> int:
    from pmsd.api.query import list_processes
    from pmsd.definition.units import render_unit_file
    from pmsd.model.record import now_ms
    from pmsd.model.spec import UnitInputs
    from pmsd.render.describe import render
    from pmsd.render.formats import memory
    from pmsd.systemd.bus import MEMORY_PEAK_SINCE, memory_peak

    for info in list_processes(ctx, target):
        inputs = UnitInputs(info.record.spec, ctx.registry.record_env_file(info.record), system=not ctx.user)
        unit_file = render_unit_file(inputs, ctx.manager.version)
        peak = (memory(peak_bytes) + " (whole unit cgroup, since it started)"
                if (peak_bytes := memory_peak(ctx.manager, info.unit)) is not None
                else "-" if ctx.manager.version >= MEMORY_PEAK_SINCE
                else f"- (systemd {MEMORY_PEAK_SINCE} and later; this manager is {ctx.manager.version})")
        sys.stdout.write(render(info, now_ms(), ctx.user, unit_file, _log_notes(ctx, info.record), peak))
    return ExitStatus.OK


def _log_notes(ctx: Context, record: AppRecord) -> list[str]:
    """Where the app's lines go, and whether journald dropped any of them."""
    from pmsd.api.logs import sources_for, suppressions

    notes = []
    for source in sources_for(record):
        if source.path:
            notes.append(f"{source.stream}: {source.path}")
        else:
            notes.append(f"{source.stream}: journal, {'_SYSTEMD_USER_UNIT' if ctx.user else '_SYSTEMD_UNIT'}="
                         f"{source.journal_unit}" + (" (stdout and stderr in one stream)"
                                                     if source.stream == "out/err" else ""))
    if not notes:
        notes.append("disabled (disable_logs)")
    for report in suppressions(max(record.created_at, record.flushed_at) * 1000, ctx.user):
        notes.append(f"WARNING: journald dropped {report.dropped} lines since this app started "
                     f"({report.message}); see README 'Logs: no silent loss' for the fix")
    return notes


def env(ctx: Context, target: str) -> int:
    from pmsd.api.lifecycle import environment

    for key, value in sorted(environment(ctx, target).items()):
        print(f"{key}: {value}")
    return ExitStatus.OK


def logs(ctx: Context, target: str | None, lines: int = 15, stream: bool = True, raw: bool = False,
         as_json: bool = False, timestamp: str | None = None, out: bool = False, err: bool = False,
         highlight: str | None = None) -> int:
    from pmsd.api.logs import LogLine, follow, last_lines, sources_for, suppressions
    from pmsd.api.targets import resolve_targets
    from pmsd.render.logs import LineFormat

    records = resolve_targets(ctx.registry.read(), target or "all")
    wanted = ({"out"} if out else set()) | ({"err"} if err else set())
    sources = [source for record in records for source in sources_for(record)]
    for record in records:
        merged = [s for s in sources if s.record is record and s.stream == "out/err"]
        if wanted and merged:
            print(f"[pmsd][WARN] {record.name}: stdout and stderr share one journal stream (systemd #5019), "
                  f"so --{'err' if err else 'out'} cannot show them apart; set error_file (and out_file) "
                  "to keep them separate", file=sys.stderr)
    fmt = LineFormat(raw=raw, as_json=as_json, timestamp=timestamp, colour=_colour() and not raw,
                     highlight=highlight)
    per_app = {r.pm_id: (r.spec.log_date_format or ("YYYY-MM-DDTHH:mm:ss" if r.spec.time else None),
                         r.spec.log_type == "json") for r in records}

    def emit(line: LogLine) -> None:
        app_stamp, app_json = per_app.get(line.pm_id, (None, False))
        sys.stdout.write(fmt.render(line, app_stamp, app_json) + "\n")

    if not (raw or as_json):
        where = "journalctl " + ("--user-unit" if ctx.user else "-u") + " 'pmsd-*'"
        print(f"[TAILING] last {lines} lines of [{target or 'all'}] ({where} shows the same journal)")
    history = last_lines(sources, lines, ctx.user, wanted)
    oldest = min((max(r.created_at, r.flushed_at) for r in records), default=0) * 1000
    for report in suppressions(oldest, ctx.user) if records else []:
        print(f"[pmsd][WARN] journald dropped {report.dropped} lines ({report.message}); lines of these apps "
              "may be missing. Fix: raise journald's rate limit (README, 'Logs: no silent loss') or log to "
              "files with out_file/error_file", file=sys.stderr)
    for line in history:
        emit(line)
    sys.stdout.flush()
    if not stream:
        return ExitStatus.OK
    try:
        for line in follow(sources, ctx.user, wanted):
            emit(line)
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    return ExitStatus.OK


def flush(ctx: Context, target: str | None) -> int:
    from pmsd.api.flush import flush as api_flush

    done = api_flush(ctx, target)
    show_warnings(ctx)
    for flushed in done:
        if flushed.path:
            print(f"[pmsd] {flushed.record.name}: emptied {flushed.path}")
        else:
            print(f"[pmsd] {flushed.record.name}: `pmsd logs` now starts after this point; journald keeps the "
                  "earlier lines (it cannot delete one unit's lines: `journalctl --vacuum-time=` trims the "
                  "whole journal)")
    return ExitStatus.OK


def reload_logs(ctx: Context) -> int:
    from pmsd.api.logs import sources_for
    from pmsd.api.reloadlogs import reopen_log_files

    reopened = reopen_log_files(ctx)
    done = {record.pm_id for record, _ in reopened}
    files = [(record, source.path) for record in ctx.registry.read().apps for source in sources_for(record)
             if source.path and record.pm_id not in done]
    print("[pmsd] journal: nothing to reopen; journald rotates its own files (SystemMaxUse=, MaxFileSec=)")
    for record, paths in reopened:
        print(f"[pmsd] {record.name}: reopened {', '.join(paths)}")
    for record, path in files:
        print(f"[pmsd] {record.name}: {path} was opened by systemd with O_APPEND when the app started and stays "
              f"open; rotate it with logrotate's copytruncate, or `pmsd restart {record.name}` to reopen it")
    return ExitStatus.OK


def set_config(ctx: Context, key: str, value: str) -> int:
    from pmsd.api.config import set_config as store

    name, stored = store(ctx, key, value)
    print(f"[pmsd] {name} = {json.dumps(stored)}")
    return ExitStatus.OK


def get_config(ctx: Context, key: str | None) -> int:
    from pmsd.api.config import get_config as read

    for name, value in read(ctx, key).items():
        print(f"{name}: {json.dumps(value)}")
    return ExitStatus.OK


def unset_config(ctx: Context, key: str) -> int:
    from pmsd.api.config import get_config as read
    from pmsd.api.config import unset_config as remove

    name = remove(ctx, key)
    print(f"[pmsd] {name} = {json.dumps(read(ctx, name)[name])} (the default)")
    return ExitStatus.OK


def _ping_god(ctx: Context) -> PingResult:
    """Start god if needed, wait for its socket, and ask it who it is."""
    from pmsd.api.client import GodClient
    from pmsd.api.god import start_and_wait

    start_and_wait(ctx)
    client = GodClient(ctx)
    try:
        return client.ping()
    finally:
        client.close()


def ping(ctx: Context) -> int:
    reply = _ping_god(ctx)
    # PM2 prints `{ msg: 'pong' }`; the rest says which god answered.
    print("{ msg: 'pong' }")
    print(f"[pmsd] god pid {reply['pid']}, pmsd {reply['version']}, systemd {reply['systemd']}, "
          f"{reply['apps']} apps, state {reply['state_dir']}")
    return ExitStatus.OK


def kill(ctx: Context) -> int:
    from pmsd.api.god import stop_god
    from pmsd.api.lifecycle import delete

    if ctx.registry.read().apps:
        for outcome in delete(ctx, "all"):
            print(f"[pmsd] delete {outcome.name} (id {outcome.pm_id}): deleted")
    stopped = stop_god(ctx)
    print("[pmsd] god stopped" if stopped else "[pmsd] god was not running")
    return ExitStatus.OK


def events(ctx: Context, target: str | None, as_json: bool) -> int:
    import json

    from pmsd.api.client import GodClient
    from pmsd.api.god import start_and_wait
    from pmsd.api.targets import resolve_targets
    from pmsd.render.events import describe as describe_event

    wanted = {r.pm_id for r in resolve_targets(ctx.registry.read(), target)} if target else None
    start_and_wait(ctx)
    client = GodClient(ctx)
    try:
        if not as_json:
            print(f"[pmsd] process events of [{target or 'all'}] (Ctrl-C to stop)", flush=True)
        for event in client.events():
            if wanted is not None and event.pm_id not in wanted:
                continue
            print(json.dumps(event.to_json()) if as_json else describe_event(event), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
    return ExitStatus.OK


def start_or(ctx: Context, action: str, params: dict[str, Any]) -> int:
    """startOrRestart / startOrReload / startOrGracefulReload <ecosystem file>."""
    from pmsd.api.lifecycle import StartOptions
    from pmsd.api.start_or import start_or as api_start_or
    from pmsd.cli.grammar import output_request, start_request

    shown = output_request(params)
    set_output(shown["silent"], shown["mini_list"], shown["no_color"])
    path, options = start_request(params)
    try:
        outcomes = api_start_or(ctx, path, action, StartOptions(**options))
    finally:
        show_warnings(ctx)
    return report(ctx, outcomes, "start")


def send_signal(ctx: Context, signal: str, targets: Sequence[str]) -> int:
    from pmsd.api.signals import parse_signal, send_signal, signal_name

    number = parse_signal(signal)  # a bad signal is refused before systemd is asked
    failed = False
    for done in send_signal(ctx, number, list(targets)):
        if done.problem:
            failed = True
            print(f"[pmsd][ERROR] {signal_name(number)} not sent to {done.name} (id {done.pm_id}): {done.problem}",
                  file=sys.stderr)
        elif not Output.silent:
            print(f"[pmsd] {signal_name(number)} sent to the main process of {done.name} (id {done.pm_id})")
    return ExitStatus.ERROR if failed else ExitStatus.OK


def ecosystem(ctx: Context, mode: str | None) -> int:
    from pmsd.api.ecosystem_init import write_starter

    path = write_starter(os.getcwd(), mode)
    print(f"[pmsd] wrote {path}; start it with `pmsd start {os.path.basename(path)}`")
    return ExitStatus.OK


def update(ctx: Context) -> int:
    """Restart god so that it runs the pmsd now installed; apps are not touched (systemd runs them)."""
    from pmsd.api.god import god_disabled, stop_god

    if god_disabled(ctx):
        print("[pmsd] PMSD_NO_GOD is set: there is no god to update; apps are run by systemd and need nothing")
        return ExitStatus.OK
    was_running = stop_god(ctx)
    reply = _ping_god(ctx)
    print(f"[pmsd] god {'restarted' if was_running else 'started'}: pid {reply['pid']}, pmsd {reply['version']}; "
          "apps were not touched")
    return ExitStatus.OK


def metrics(ctx: Context) -> int:
    from pmsd.api.metrics import collect
    from pmsd.render.metrics import render_metrics

    scrape = collect(ctx)
    sys.stdout.write(render_metrics(scrape))  # with pmsd_up 0 when the apps could not be read, then the error
    if scrape.error is not None:
        raise scrape.error
    return ExitStatus.OK


def bug_report(ctx: Context) -> int:
    from pmsd.api.report import collect

    report = collect(ctx)
    print("pmsd report: paste this into your issue (it holds no environment values)")
    for title, items in report.sections:
        print(f"\n--- {title}")
        if not items:
            print("(none)")
        width = max((len(label) for label, _ in items), default=0)
        for label, value in items:
            print(f"{label.ljust(width)} : {value}")
    return ExitStatus.OK


def doctor(ctx: Context, as_json: bool) -> int:
    """Every check's finding; exit 1 when one fails (warnings alone: 0)."""
    from pmsd.api.doctor import diagnose
    from pmsd.model.doctor import Level, worst
    from pmsd.render.doctor import render_json, render_text

    findings = diagnose(ctx)
    scope = "user" if ctx.user else "system"
    sys.stdout.write(render_json(findings, scope) if as_json else render_text(findings, scope, _colour()))
    return ExitStatus.ERROR if worst(findings) == Level.FAIL else ExitStatus.OK


def save(ctx: Context, force: bool) -> int:
    from pmsd.api.persistence import save as api_save

    result = api_save(ctx, force)
    show_warnings(ctx)
    if result is not None and not Output.silent:
        print(f"[pmsd] saved {result.apps} app(s) in {result.path}; `pmsd resurrect` brings back {result.running} "
              "that run now, the others stay stopped")
    return ExitStatus.OK


def resurrect(ctx: Context, pm2_dump: str | None) -> int:
    from pmsd.api.persistence import resurrect as api_resurrect

    if pm2_dump is not None:
        return _import_pm2(ctx, pm2_dump)
    try:
        outcomes = api_resurrect(ctx)
    finally:
        show_warnings(ctx)
    return report(ctx, outcomes, "resurrect")


def _import_pm2(ctx: Context, path: str) -> int:
    from pmsd.api.lifecycle import start_apps
    from pmsd.definition.pm2dump import load_pm2_dump
    from pmsd.model.spec import Source

    apps, warnings = load_pm2_dump(os.path.expanduser(path))
    ctx.warnings.extend(warnings)
    try:
        outcomes = start_apps(ctx, apps, Source(path, os.path.dirname(os.path.abspath(path))))
    finally:
        show_warnings(ctx)
    return report(ctx, outcomes, "import")


def cleardump(ctx: Context) -> int:
    from pmsd.api.persistence import cleardump as api_cleardump

    path = api_cleardump(ctx)
    if not Output.silent:
        print(f"[pmsd] the saved app list {path} is empty now")
    return ExitStatus.OK


def startup(ctx: Context, platform: str | None, service_name: str, wait_ip: bool) -> int:
    from pmsd.api.startup import startup as api_startup

    _check_platform(platform)
    result = api_startup(ctx, service_name, wait_ip)
    scope = "" if ctx.user else " --system"
    print(f"[pmsd] {result.unit_path} is enabled: when the manager starts (at boot), `pmsd{scope} resurrect` "
          "brings back the saved apps")
    if result.linger is not None:
        print(f"[pmsd] {result.linger}", file=sys.stderr if "run it" in result.linger else sys.stdout)
    print(f"[pmsd] save the apps to bring back: pmsd{scope} save")
    return ExitStatus.OK


def unstartup(ctx: Context, platform: str | None, service_name: str) -> int:
    from pmsd.api.startup import unstartup as api_unstartup

    _check_platform(platform)
    removed = api_unstartup(ctx, service_name)
    print(f"[pmsd] removed {', '.join(removed)}" if removed else "[pmsd] startup was not set up: nothing to remove")
    return ExitStatus.OK


def _check_platform(platform: str | None) -> None:
    from pmsd.errors import UsageError

    if platform not in (None, "systemd"):
        raise UsageError(f"{platform}: pmsd runs on systemd only", "leave the platform out, or say systemd")


def export(ctx: Context, directory: str, targets: Sequence[str], force: bool) -> int:
    from pmsd.api.export import export_units

    paths = export_units(ctx, directory, list(targets) or None, force=force, version=ctx.manager.version)
    show_warnings(ctx)
    if not Output.silent:
        print(f"[pmsd] wrote {len(paths)} file(s) to {directory}; {os.path.join(directory, 'README.txt')} says "
              "how to install them")
    return ExitStatus.OK
