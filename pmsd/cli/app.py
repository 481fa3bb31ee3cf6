"""The typer CLI: PM2's grammar, each command a thin call into pmsd's API."""

from __future__ import annotations

import inspect
import os
from typing import Any, List, Optional  # noqa: UP035 - typer 0.7 (Debian 12) needs typing's aliases

import typer

from pmsd import __version__
from pmsd.cli import commands
from pmsd.cli.grammar import START_ARGS_HELP, START_TARGET_HELP, start_flags
from pmsd.context import Context
from pmsd.errors import ExitStatus, PmsdError

app = typer.Typer(
    name="pmsd",
    help="PM2's process manager, with systemd doing the supervising. Apps run as transient units "
    "`pmsd-<name>.service` of your systemd user manager (or the system manager with --system).",
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
    return Context(user=_state.user)


def _version(value: bool) -> None:
    if value:
        print(__version__)
        raise typer.Exit()


@app.callback()
def main(
    system: bool = typer.Option(False, "--system", help="Manage apps of the systemd system manager (root)."),
    user: bool = typer.Option(False, "--user", help="Manage apps of your systemd user manager (the default)."),
    version: bool = typer.Option(False, "--version", "-v", callback=_version, is_eager=True,
                                 help="Print pmsd's version."),
) -> None:
    if system and user:
        raise typer.BadParameter("--user and --system exclude each other")
    _state.user = not system


TARGET_HELP = "An app name, an id, a namespace, or 'all'."


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
        ctx.close()


def _start_signature() -> inspect.Signature:
    """Typer reads a command's parameters from its signature: build it from the shared grammar."""
    P = inspect.Parameter
    params = [
        P("target", P.POSITIONAL_OR_KEYWORD, annotation=str, default=typer.Argument(..., help=START_TARGET_HELP)),
        P("args", P.POSITIONAL_OR_KEYWORD, annotation=Optional[List[str]],  # noqa: UP006, UP045
          default=typer.Argument(None, help=START_ARGS_HELP)),
    ]
    for flag in start_flags():
        params.append(P(flag.dest, P.KEYWORD_ONLY, annotation=bool if flag.switch else Optional[str],  # noqa: UP045
                        default=typer.Option(False if flag.switch else None, *flag.names, help=flag.help)))
    return inspect.Signature(params)


start.__signature__ = _start_signature()  # type: ignore[attr-defined]
app.command(context_settings={"allow_interspersed_args": True})(start)


def _lifecycle(verb: str, target: str, **kwargs: bool | str) -> None:
    from pmsd.api import lifecycle

    ctx = _ctx()
    try:
        try:
            outcomes = getattr(lifecycle, verb)(ctx, target, **kwargs)
        finally:
            commands.show_warnings(ctx)
        raise typer.Exit(commands.report(ctx, outcomes, verb))
    finally:
        ctx.close()


@app.command()
def stop(
    target: str = typer.Argument(..., help=TARGET_HELP),
    watch: bool = typer.Option(False, "--watch", help="Accepted as in PM2: stopping always ends file "
                               "watching."),
) -> None:
    """Stop apps; they stay listed as 'stopped' and `pmsd start` brings them back. As in PM2, file watching
    ends, and a cron_restart timer keeps running and starts the app at its next time."""
    _lifecycle("stop", target)


@app.command()
def restart(
    target: str = typer.Argument(..., help=TARGET_HELP),
    update_env: bool = typer.Option(False, "--update-env", help="Take the current environment instead of "
                                    "the one stored at start."),
    watch: bool = typer.Option(False, "--watch", help="Toggle file watching: on (the app's cwd) if off, off "
                               "if on, as PM2 does."),
) -> None:
    """Restart apps (stopped ones start again); counts in the ↺ column."""
    _lifecycle("restart", target, update_env=update_env, toggle_watch=watch)


@app.command()
def reload(
    target: str = typer.Argument(..., help=TARGET_HELP),
    update_env: bool = typer.Option(False, "--update-env", help="Take the current environment instead of "
                                    "the one stored at start."),
) -> None:
    """Zero-downtime restart of cluster apps: one instance at a time, each new one ready (READY=1 with
    wait_ready, else accepting on the shared socket, at most listen_timeout) before the next old one gets
    SIGINT (SIGKILL after kill_timeout); the others keep serving. Fork-mode apps are restarted."""
    _lifecycle("reload", target, update_env=update_env)


@app.command(context_settings={"ignore_unknown_options": True})  # "-1" is a number here, not an option
def scale(
    target: str = typer.Argument(..., help="An app name or id."),
    number: str = typer.Argument(..., help="Instances wanted: N, or +N / -N relative to now."),
) -> None:
    """Add or remove instances of an app (pmsd-<app>@<n>.service); running instances are left alone.
    Removed instances are the highest-numbered. A fork app becomes a cluster of instances."""
    _lifecycle("scale", target, request=number)


@app.command("delete")
def delete_(target: str = typer.Argument(..., help=TARGET_HELP)) -> None:
    """Stop apps and forget them: unit, registry entry and stored environment are removed."""
    _lifecycle("delete", target)


app.command("del", hidden=True)(delete_)


@app.command()
def reset(target: str = typer.Argument(..., help=TARGET_HELP)) -> None:
    """Reset the restart counters of apps."""
    _lifecycle("reset", target)


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
        ctx.close()


@app.command("ls")
def ls() -> None:
    """List apps in PM2's table (aliases: list, status, l, ps)."""
    _with_ctx("ls")


for _alias in ("list", "status", "l", "ps"):
    app.command(_alias, hidden=True)(ls)


@app.command()
def jlist() -> None:
    """Print the process list as JSON, in PM2's jlist shape."""
    _with_ctx("jlist")


@app.command()
def prettylist() -> None:
    """Print the process list as JavaScript objects, as `pm2 prettylist` does."""
    _with_ctx("prettylist")


@app.command()
def describe(target: str = typer.Argument(..., help=TARGET_HELP)) -> None:
    """Show everything about apps, including their systemd unit (aliases: show, info)."""
    _with_ctx("describe", target)


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
    """Explain how log destinations are reopened: journald rotates itself; files stay open (O_APPEND)."""
    _with_ctx_kw("reload_logs")


def _with_ctx_kw(command: str, **kwargs: object) -> None:
    ctx = _ctx()
    try:
        raise typer.Exit(getattr(commands, command)(ctx, **kwargs))
    finally:
        ctx.close()


def run(argv: list[str]) -> int:
    try:
        app(args=argv, prog_name="pmsd", standalone_mode=True)
    except SystemExit as done:
        return int(done.code or 0) if not isinstance(done.code, str) else 1
    return 0
