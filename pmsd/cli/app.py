"""The typer CLI: PM2's grammar, each command a thin call into pmsd's API."""

from __future__ import annotations

import inspect
import os
from typing import Any, List, Optional  # noqa: UP035 - typer 0.7 (Debian 12) needs typing's aliases

import typer

from pmsd import __version__
from pmsd.cli import commands, delegate
from pmsd.cli.grammar import START_ARGS_HELP, START_TARGET_HELP, start_flags
from pmsd.context import Context
from pmsd.errors import ExitStatus, PmsdError

app = typer.Typer(
    name="pmsd",
    help="PM2's process manager, with systemd doing the supervising. Apps run as transient units "
    "`pmsd-<name>.service` of your systemd user manager (or the system manager with --system). "
    "PM2's commands for its own daemon, modules and PM2 Plus (link, install, plus, ...) are accepted "
    "and say in one line what to use instead.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


class State:
    user: bool = True


_state = State()


def _ctx() -> Context:
    if not _state.user and os.geteuid() != 0:
        # The system manager's apps and pmsd's registry of them (/var/lib/pmsd, 0700) are root's.
        raise PmsdError("pmsd --system manages the system manager's apps, which needs root",
                        "run it as root (sudo pmsd --system ...), or drop --system to manage your own apps",
                        ExitStatus.PERMISSION)
    return Context(user=_state.user, run_by_god=delegate.IN_GOD)


def _version(value: bool) -> None:
    if value:
        print(__version__)
        raise typer.Exit()


@app.callback()
def main(
    system: bool = typer.Option(False, "--system", help="Manage apps of the systemd system manager (root)."),
    user: bool = typer.Option(False, "--user", help="Manage apps of your systemd user manager (the default)."),
    version: bool = typer.Option(False, "--version", "-v", "-V", callback=_version, is_eager=True,
                                 help="Print pmsd's version."),
) -> None:
    if system and user:
        raise typer.BadParameter("--user and --system exclude each other")
    _state.user = not system


TARGET_HELP = "An app name, an id, a namespace, or 'all'."
TARGETS_HELP = "One or more: app names, ids, namespaces, or 'all'."
STDIN_TARGETS_HELP = TARGETS_HELP[:-1] + "; ecosystem files; or '-' for a JSON definition on stdin."
NAME_HELP = "Rename the app (one app; a fork app: its unit stops and one of the new name starts)."
NODE_ARGS_HELP = "Replace the interpreter's arguments ('null' removes them), as PM2's restart flag does."
ENV_HELP = "Apply env_<ENV> of the ecosystem file (or stdin) given as the target."
ONLY_HELP = "Ecosystem files: only these apps (a,b)."
SILENT_HELP = "Print nothing but errors and warnings."
PARALLEL_HELP = "Accepted for PM2's scripts; pmsd acts on apps one at a time."


def start(**params: Any) -> None:
    """Start an app (PM2's `start`): a script, a command, or every app of an ecosystem file.

    Starting a name, id or namespace that exists restarts it, as PM2 does. Examples:

      pmsd start app.js --name api -- --port 3000

      pmsd start ecosystem.config.js --env production
    """
    ctx = _ctx()
    try:
        raise typer.Exit(commands.start(ctx, params))
    finally:
        commands.finish(ctx)


def _start_signature(target_help: str = START_TARGET_HELP) -> inspect.Signature:
    """Typer reads a command's parameters from its signature: build it from the shared grammar."""
    P = inspect.Parameter
    params = [
        P("target", P.POSITIONAL_OR_KEYWORD, annotation=str, default=typer.Argument(..., help=target_help)),
        P("args", P.POSITIONAL_OR_KEYWORD, annotation=Optional[List[str]],  # noqa: UP006, UP045
          default=typer.Argument(None, help=START_ARGS_HELP)),
    ]
    for flag in start_flags():
        params.append(P(flag.dest, P.KEYWORD_ONLY, annotation=bool if flag.switch else Optional[str],  # noqa: UP045
                        default=typer.Option(False if flag.switch else None, *flag.names, help=flag.help)))
    return inspect.Signature(params)


start.__signature__ = _start_signature()  # type: ignore[attr-defined]
app.command(context_settings={"allow_interspersed_args": True})(start)

ECOSYSTEM_HELP = "An ecosystem file (.config.js .json .yaml .yml .toml)."


def _start_or(action: str, doc: str) -> Any:
    def command(**params: Any) -> None:
        ctx = _ctx()
        try:
            raise typer.Exit(commands.start_or(ctx, action, params))
        finally:
            commands.finish(ctx)

    command.__doc__ = doc
    command.__signature__ = _start_signature(ECOSYSTEM_HELP)  # type: ignore[attr-defined]
    return command


app.command("startOrRestart", context_settings={"allow_interspersed_args": True})(_start_or(
    "restart", "Start the ecosystem file's apps that do not exist, restart (with the file's definition and "
    "environment) those that do, as PM2's startOrRestart."))
app.command("startOrReload", context_settings={"allow_interspersed_args": True})(_start_or(
    "reload", "Start the ecosystem file's apps that do not exist, reload (with the file's environment) those "
    "that do, as PM2's startOrReload: cluster apps one instance at a time."))
app.command("startOrGracefulReload", context_settings={"allow_interspersed_args": True})(_start_or(
    "reload", "Same as startOrReload (PM2 keeps both names)."))


def _one_or_many(targets: List[str]) -> str | List[str]:  # noqa: UP006
    """One target as it is; several as the sequence the API takes."""
    return targets[0] if len(targets) == 1 else list(targets)


def _definition_overrides(name: str | None, node_args: str | None, interpreter_args: str | None) -> dict[str, str]:
    """restart/reload flags that change an app's definition, as PM2 option keys (pmsd.api.lifecycle)."""
    overrides = {}
    if name is not None:
        overrides["name"] = name
    if interpreter_args is not None or node_args is not None:
        overrides["interpreter_args"] = interpreter_args if interpreter_args is not None else str(node_args)
    return overrides


def _only(only: str | None) -> tuple[str, ...]:
    return tuple(part for part in (only or "").split(",") if part)


def _lifecycle(verb: str, targets: List[str], silent: bool = False, **kwargs: object) -> None:  # noqa: UP006
    from pmsd.api import lifecycle

    commands.set_output(silent=silent)
    ctx = _ctx()
    try:
        try:
            outcomes = getattr(lifecycle, verb)(ctx, _one_or_many(targets), **kwargs)
        finally:
            commands.show_warnings(ctx)
        raise typer.Exit(commands.report(ctx, outcomes, verb))
    finally:
        commands.finish(ctx)


@app.command()
def stop(
    targets: List[str] = typer.Argument(..., metavar="TARGET...", help=STDIN_TARGETS_HELP),  # noqa: UP006
    watch: bool = typer.Option(False, "--watch", help="Accepted as in PM2: stopping always ends file "
                               "watching."),
    silent: bool = typer.Option(False, "--silent", "-s", help=SILENT_HELP),
) -> None:
    """Stop apps; they stay listed as 'stopped' and `pmsd start` brings them back. As in PM2, file watching
    ends, and a cron_restart timer keeps running and starts the app at its next time."""
    _lifecycle("stop", targets, silent)


@app.command()
def restart(
    targets: List[str] = typer.Argument(..., metavar="TARGET...", help=STDIN_TARGETS_HELP),  # noqa: UP006
    update_env: bool = typer.Option(False, "--update-env", "-a", help="Take the current environment instead "
                                    "of the one stored at start."),
    watch: bool = typer.Option(False, "--watch", help="Toggle file watching: on (the app's cwd) if off, off "
                               "if on, as PM2 does."),
    name: Optional[str] = typer.Option(None, "--name", "-n", help=NAME_HELP),  # noqa: UP045
    node_args: Optional[str] = typer.Option(None, "--node-args", help=NODE_ARGS_HELP),  # noqa: UP045
    interpreter_args: Optional[str] = typer.Option(None, "--interpreter-args", help=NODE_ARGS_HELP),  # noqa: UP045
    env: Optional[str] = typer.Option(None, "--env", help=ENV_HELP),  # noqa: UP045
    only: Optional[str] = typer.Option(None, "--only", help=ONLY_HELP),  # noqa: UP045
    silent: bool = typer.Option(False, "--silent", "-s", help=SILENT_HELP),
    parallel: Optional[str] = typer.Option(None, "--parallel", help=PARALLEL_HELP),  # noqa: UP045
) -> None:
    """Restart apps (stopped ones start again); counts in the ↺ column. --name, --node-args change the
    definition first, as in PM2; an ecosystem file restarts its apps with its definition and starts the
    missing ones; `-` restarts the apps of the JSON definition on stdin with its env."""
    _lifecycle("restart", targets, silent, update_env=update_env, toggle_watch=watch, env_name=env,
               only=_only(only), overrides=_definition_overrides(name, node_args, interpreter_args))


@app.command()
def reload(
    targets: List[str] = typer.Argument(..., metavar="TARGET...", help=STDIN_TARGETS_HELP),  # noqa: UP006
    update_env: bool = typer.Option(False, "--update-env", "-a", help="Take the current environment instead "
                                    "of the one stored at start."),
    name: Optional[str] = typer.Option(None, "--name", "-n", help=NAME_HELP),  # noqa: UP045
    node_args: Optional[str] = typer.Option(None, "--node-args", help=NODE_ARGS_HELP),  # noqa: UP045
    interpreter_args: Optional[str] = typer.Option(None, "--interpreter-args", help=NODE_ARGS_HELP),  # noqa: UP045
    env: Optional[str] = typer.Option(None, "--env", help=ENV_HELP),  # noqa: UP045
    only: Optional[str] = typer.Option(None, "--only", help=ONLY_HELP),  # noqa: UP045
    silent: bool = typer.Option(False, "--silent", "-s", help=SILENT_HELP),
    parallel: Optional[str] = typer.Option(None, "--parallel", help=PARALLEL_HELP),  # noqa: UP045
) -> None:
    """Zero-downtime restart of cluster apps: one instance at a time, each new one ready (READY=1 with
    wait_ready, else accepting on the shared socket, at most listen_timeout) before the next old one gets
    SIGINT (SIGKILL after kill_timeout); the others keep serving. Fork-mode apps are restarted. An
    ecosystem file reloads its apps with its env and starts the missing ones, as PM2 does."""
    _lifecycle("reload", targets, silent, update_env=update_env, env_name=env, only=_only(only),
               overrides=_definition_overrides(name, node_args, interpreter_args))


@app.command(context_settings={"ignore_unknown_options": True})  # "-1" is a number here, not an option
def scale(
    target: str = typer.Argument(..., help="An app name or id."),
    number: str = typer.Argument(..., help="Instances wanted: N, or +N / -N relative to now."),
) -> None:
    """Add or remove instances of an app (pmsd-<app>@<n>.service); running instances are left alone.
    As PM2's scale, the oldest instances (lowest ids) are removed first, and new ones take the lowest free
    instance numbers (NODE_APP_INSTANCE). A fork app becomes a cluster of instances."""
    _lifecycle("scale", [target], request=number)


@app.command("delete")
def delete_(
    targets: List[str] = typer.Argument(..., metavar="TARGET...", help=STDIN_TARGETS_HELP),  # noqa: UP006
    silent: bool = typer.Option(False, "--silent", "-s", help=SILENT_HELP),
) -> None:
    """Stop apps and forget them: unit, registry entry and stored environment are removed."""
    _lifecycle("delete", targets, silent)


app.command("del", hidden=True)(delete_)


@app.command()
def reset(
    targets: List[str] = typer.Argument(..., metavar="TARGET...", help=TARGETS_HELP),  # noqa: UP006
    silent: bool = typer.Option(False, "--silent", "-s", help=SILENT_HELP),
) -> None:
    """Reset the restart counters of apps."""
    _lifecycle("reset", targets, silent)


@app.command("sendSignal")
def send_signal(
    signal: str = typer.Argument(..., help="SIGUSR2, USR2, or a number."),
    targets: List[str] = typer.Argument(..., metavar="TARGET...", help=TARGETS_HELP),  # noqa: UP006
    silent: bool = typer.Option(False, "--silent", "-s", help=SILENT_HELP),
) -> None:
    """Send a signal to the main process of apps (systemd's KillUnit), as PM2 signals the process it runs."""
    commands.set_output(silent=silent)
    _with_ctx_kw("send_signal", signal=signal, targets=targets)


@app.command("ecosystem")
def ecosystem(mode: Optional[str] = typer.Argument(None, help="'simple': without the comments.")) -> None:  # noqa: UP045
    """Write a commented starter ecosystem.config.js in the current directory (alias: init); an existing
    file is never overwritten."""
    _with_ctx_kw("ecosystem", mode=mode)


app.command("init", hidden=True)(ecosystem)


@app.command("update")
def update() -> None:
    """Restart god (pmsd-god.service) so that it runs the pmsd now installed (alias: updatePM2). Apps are not
    touched: systemd runs them."""
    _with_ctx("update")


app.command("updatePM2", hidden=True)(update)


@app.command("report")
def report() -> None:
    """Print what a bug report needs: pmsd and Python versions, scope, systemd's version, god, lingering,
    journald's rate limits and pmsd's units."""
    _with_ctx("bug_report")


@app.command("metrics")
def metrics() -> None:
    """Print one Prometheus scrape (text format 0.0.4) of every app: status, memory, CPU seconds, restarts,
    unstable restarts, start time, open file descriptors; labels name, id, app_instance, namespace, unit.

    For node_exporter's textfile collector, write a new file and rename it over the old one (from a cron job or
    a timer), so the collector never reads half a file:

      f=/var/lib/node_exporter/textfile/pmsd.prom; pmsd metrics > $f.$$; mv $f.$$ $f

    When the apps cannot be read it still prints pmsd_up 0 (which the rename above passes on), then exits with
    the error. To have Prometheus scrape god over HTTP instead: `pmsd set metrics_listen 127.0.0.1:9209` (or
    'unix'); README, "Metrics"."""
    _with_ctx("metrics")


@app.command("doctor")
def doctor(
    json_out: bool = typer.Option(False, "--json", help="One JSON object: scope, status (ok, warn or fail) and "
                                  "the findings (check, level, found, why, fix)."),
) -> None:
    """Check what makes pmsd misbehave on this host, and say how to fix each: the manager reachable, systemd's
    version and the features it gives pmsd, lingering (user mode), cgroup v2 and the controllers the manager
    has (why memory figures fall back to /proc), journald's rate limit and storage, god's state, other
    processes on cluster apps' ports, and the clock. Each finding is OK, WARN or FAIL with why and the exact
    command or file. Exit status 1 when a check fails, 0 otherwise (warnings included). Starts nothing."""
    _with_ctx_kw("doctor", as_json=json_out)


@app.command("examples")
def examples() -> None:
    """Print a few common commands."""
    print("pmsd start app.js --name api -- --port 3000   # a script, with arguments\n"
          "pmsd start \"npm run dev\"                      # a command, run by the shell\n"
          "pmsd start ecosystem.config.js --env production\n"
          "pmsd ls ; pmsd logs api ; pmsd describe api\n"
          "pmsd restart api ; pmsd stop api ; pmsd delete api\n"
          "pmsd start app.js -i max --port 3000 ; pmsd reload app\n"
          "More: README, 'A tour for PM2 users'.")


def _elsewhere(name: str) -> Any:
    def command(ctx: typer.Context) -> None:
        from pmsd.cli.elsewhere import ELSEWHERE, message

        status = ELSEWHERE[name][1]
        typer.echo(message(name), err=status != ExitStatus.OK)
        raise typer.Exit(status)

    command.__doc__ = f"PM2's {name}: not part of pmsd; says what to use instead."
    return command


def _register_elsewhere() -> None:
    from pmsd.cli.elsewhere import ELSEWHERE

    for name in ELSEWHERE:
        app.command(name, hidden=True, add_help_option=False,
                    context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(_elsewhere(name))


_register_elsewhere()


@app.command()
def ping() -> None:
    """Start god (pmsd-god.service) if it is not running and check that it answers."""
    _with_ctx("ping")


@app.command()
def kill() -> None:
    """Stop and delete every app, then stop god (PM2's `kill`). `pmsd ping` or any start brings god back."""
    _with_ctx("kill")


@app.command()
def events(
    target: Optional[str] = typer.Argument(None, help=TARGET_HELP + " Default: all."),  # noqa: UP045
    json_out: bool = typer.Option(False, "--json", help="One JSON object per event (event, app, pm_id, at, "
                                  "and the event's details)."),
) -> None:
    """Print process events as they happen (start, online, exit with code or signal, restart, waiting
    restart, errored, stop, delete, memory/watch/cron restart), with timestamps. Starts god if needed."""
    _with_ctx_kw("events", target=target, as_json=json_out)


def _with_ctx(command: str, *args: str | None) -> None:
    ctx = _ctx()
    try:
        raise typer.Exit(getattr(commands, command)(ctx, *args))
    finally:
        commands.finish(ctx)


@app.command("ls")
def ls(
    sort: Optional[str] = typer.Option(None, "--sort", help="Sort by name, namespace, pid, id, cpu, memory, "  # noqa: UP045
                                       "uptime or status, :asc (default) or :desc (memory:desc)."),
    mini: bool = typer.Option(False, "--mini-list", "-m", help="One block of 'field : value' lines per app."),
    watch: bool = typer.Option(False, "--watch", help="Show the list again every second until Ctrl-C, as `pm2 ls "
                               "--watch`: redrawn in place on a terminal, one table after another to a pipe or "
                               "file."),
) -> None:
    """List apps in PM2's table (aliases: list, status, l, ps)."""
    _with_ctx_kw("ls", sort=sort, mini=mini, watch=watch)


for _alias in ("list", "status", "l", "ps"):
    app.command(_alias, hidden=True)(ls)


@app.command()
def monit() -> None:
    """A live view of the apps, PM2's monit (alias: imonit): status, restarts, CPU and memory of each app's whole
    unit cgroup, updated every second, with their last minutes as sparklines; the selected app's unit, limits
    and last exit as systemd tells it; its logs as they come (journal or files).

    Keys: up/down or j/k select, r restart, s stop (asks first), l reload, PgUp/PgDn scroll the logs, Home/End
    their oldest/newest, ? help, q or Ctrl-C quit. Printed to a pipe or a file, it shows the `pmsd ls` table
    once."""
    _with_ctx("monit")


app.command("imonit", hidden=True)(monit)


@app.command()
def jlist() -> None:
    """Print the process list as JSON, in PM2's jlist shape."""
    _with_ctx("jlist")


@app.command()
def prettylist() -> None:
    """Print the process list as JavaScript objects, as `pm2 prettylist` does."""
    _with_ctx("prettylist")


@app.command()
def describe(targets: List[str] = typer.Argument(..., metavar="TARGET...", help=TARGETS_HELP)) -> None:  # noqa: UP006
    """Show everything about apps, including their systemd unit (aliases: show, info)."""
    ctx = _ctx()
    try:
        for target in targets:
            status = commands.describe(ctx, target)
        raise typer.Exit(status)
    finally:
        commands.finish(ctx)


for _alias in ("show", "info", "desc"):
    app.command(_alias, hidden=True)(describe)


@app.command("env")
def env_(target: str = typer.Argument(..., help="An app id or name.")) -> None:
    """Print the environment an app runs with."""
    _with_ctx("env", target)


@app.command()
def pid(target: Optional[str] = typer.Argument(None, help=TARGET_HELP)) -> None:  # noqa: UP045
    """Print main PIDs: of one app, or of every running app."""
    _with_ctx("pid", target)


@app.command("id")
def id_(name: str = typer.Argument(..., help="An app name.")) -> None:
    """Print the ids of the app with this name."""
    _with_ctx("ids", name)


@app.command()
def logs(
    target: Optional[str] = typer.Argument(None, help=TARGET_HELP + " Default: all."),  # noqa: UP045
    lines: int = typer.Option(15, "--lines", min=0, help="Lines of history to print per app."),
    nostream: bool = typer.Option(False, "--nostream", help="Print the history and exit; do not follow."),
    raw: bool = typer.Option(False, "--raw", help="Only the messages, no '<id>|<name> |' prefix."),
    json_out: bool = typer.Option(False, "--json", help="One JSON record per line (PM2's log JSON: message, "
                                  "timestamp, type, process_id, app_name)."),
    timestamp: Optional[str] = typer.Option(None, "--timestamp", help="Prefix each line with its time; the "  # noqa: UP045
                                            "optional value is a moment.js pattern (default "
                                            "YYYY-MM-DDTHH:mm:ss)."),
    out: bool = typer.Option(False, "--out", help="Only stdout (apps with out_file, or whose stderr goes "
                             "to error_file)."),
    err: bool = typer.Option(False, "--err", help="Only stderr: apps with error_file. In the journal, "
                             "stdout and stderr share one stream and pmsd will not guess."),
    highlight: Optional[str] = typer.Option(None, "--highlight", help="Highlight this text in lines."),  # noqa: UP045
) -> None:
    """Print the last lines of apps' logs, then follow new ones until Ctrl-C (PM2's `logs`).

    Lines come from the journal, by unit (`journalctl --user-unit pmsd-<name>.service` shows the same), or
    from the files an app names in out_file/error_file/log_file. Works whether god runs or not.
    """
    _with_ctx_kw("logs", target=target, lines=lines, stream=not nostream, raw=raw, as_json=json_out,
                 timestamp=timestamp, out=out, err=err, highlight=highlight)


app.command("log", hidden=True)(logs)


@app.command()
def flush(target: Optional[str] = typer.Argument(None, help=TARGET_HELP + " Default: all.")) -> None:  # noqa: UP045
    """Empty apps' log files; for the journal, start `pmsd logs` after this point (journald cannot
    delete one unit's lines)."""
    _with_ctx_kw("flush", target=target)


@app.command("reloadLogs")
def reload_logs() -> None:
    """Reopen every log file god writes, without restarting any app (after logrotate or a person moved or
    removed one). The journal needs nothing; a file systemd appends to (an app started while god was down)
    stays open until the app restarts."""
    _with_ctx_kw("reload_logs")


_CONFIG_KEYS_HELP = "A global setting: log_max_size, log_retain, log_compress, log_rotate_interval, " \
    "pm2_log_paths, metrics_listen (or pm2-logrotate:max_size, :retain, :compress)."


@app.command("set")
def set_(
    key: str = typer.Argument(..., help=_CONFIG_KEYS_HELP),
    value: str = typer.Argument(..., help="Its value: '10M', '30', 'true', '24h', 'unix', '127.0.0.1:9209'."),
) -> None:
    """Set a global setting for every app, as `pm2 set` does for pm2-logrotate: log_max_size,
    log_retain (30), log_compress (false) and log_rotate_interval rotate the files god writes (an app's own
    option wins); pm2_log_paths true sends apps started from then on with no -o/-e to PM2's default files,
    $PM2_HOME/logs/<app>-out.log and <app>-error.log ($PM2_HOME: ~/.pm2); metrics_listen has god serve
    Prometheus metrics (`pmsd metrics`) over HTTP on 'unix' (metrics.sock beside god's socket) or an address and
    port ('127.0.0.1:9209'), off by default. god applies a change at once."""
    _with_ctx_kw("set_config", key=key, value=value)


@app.command("get")
def get_(key: Optional[str] = typer.Argument(None, help=_CONFIG_KEYS_HELP + " Without one: all.")  # noqa: UP045
         ) -> None:
    """Print the global settings (`pmsd set`) with their values, set or default."""
    _with_ctx_kw("get_config", key=key)


@app.command("unset")
def unset_(key: str = typer.Argument(..., help=_CONFIG_KEYS_HELP)) -> None:
    """Put a global setting back to its default."""
    _with_ctx_kw("unset_config", key=key)


@app.command()
def save(force: bool = typer.Option(False, "--force", help="Save even when pmsd knows no apps (an empty list).")
         ) -> None:
    """Record every app (definition, id, environment, whether it runs) for `pmsd resurrect`, as `pm2 save`.

    The save it replaces is kept as a backup, read when the save itself is damaged."""
    _with_ctx_kw("save", force=force)


app.command("dump", hidden=True)(save)


@app.command()
def resurrect(
    pm2: Optional[str] = typer.Option(  # noqa: UP045
        None, "--pm2", metavar="DUMP",
        help="Instead, start the apps of PM2's saved list (`pm2 save`'s dump.pm2, e.g. ~/.pm2/dump.pm2); those "
             "PM2 had stopped are registered, not started."),
    silent: bool = typer.Option(False, "--silent", "-s", help=SILENT_HELP),
) -> None:
    """Bring back the saved apps: put back those pmsd does not know, start those that should run and do not.

    Idempotent; `pmsd startup` runs it at boot. One app that fails to start does not keep the others down."""
    commands.set_output(silent=silent)
    _with_ctx_kw("resurrect", pm2_dump=pm2)


@app.command()
def cleardump() -> None:
    """Empty the saved app list (the previous one stays as the backup)."""
    _with_ctx_kw("cleardump")


@app.command("export")
def export_(
    directory: str = typer.Argument(..., help="Where to write the files (a new or empty directory)."),
    targets: Optional[List[str]] = typer.Argument(None, metavar="[TARGET]...",  # noqa: UP006, UP045
                                                  help="Only these apps (names, ids, namespaces, /regex/)."),
    force: bool = typer.Option(False, "--force", "-f", help="Write into a directory that is not empty "
                               "(the export's own files are replaced, others left alone)."),
) -> None:
    """Write plain systemd unit files (and env files, template, socket, timer) for the apps, to run them
    without pmsd; README.txt in the directory says where to copy them and what to enable."""
    _with_ctx_kw("export", directory=directory, targets=targets or [], force=force)


STARTUP_PLATFORM_HELP = "PM2's init system argument: only systemd (the default) is there to choose."
SERVICE_NAME_HELP = "The unit's name (default pmsd.resurrect.service)."


@app.command()
def startup(
    platform: Optional[str] = typer.Argument(None, help=STARTUP_PLATFORM_HELP),  # noqa: UP045
    service_name: str = typer.Option("pmsd.resurrect", "--service-name", help=SERVICE_NAME_HELP),
    wait_ip: bool = typer.Option(False, "--wait-ip", help="Start the apps once the network is up "
                                 "(network-online.target)."),
) -> None:
    """Bring the saved apps back at boot: a unit that runs `pmsd resurrect` when the manager starts (user mode:
    wanted by default.target, with lingering turned on; --system: multi-user.target). Then `pmsd save`."""
    _with_ctx_kw("startup", platform=platform, service_name=service_name, wait_ip=wait_ip)


@app.command()
def unstartup(
    platform: Optional[str] = typer.Argument(None, help=STARTUP_PLATFORM_HELP),  # noqa: UP045
    service_name: str = typer.Option("pmsd.resurrect", "--service-name", help=SERVICE_NAME_HELP),
) -> None:
    """Stop bringing the saved apps back at boot (the unit `pmsd startup` installed is removed; lingering
    stays as it is)."""
    _with_ctx_kw("unstartup", platform=platform, service_name=service_name)


def _with_ctx_kw(command: str, **kwargs: object) -> None:
    ctx = _ctx()
    try:
        raise typer.Exit(getattr(commands, command)(ctx, **kwargs))
    finally:
        commands.finish(ctx)


def run(argv: list[str]) -> int:
    try:
        app(args=argv, prog_name="pmsd", standalone_mode=True)
    except SystemExit as done:
        return int(done.code or 0) if not isinstance(done.code, str) else 1
    return 0
