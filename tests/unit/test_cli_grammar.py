"""The typer CLI and the fast path must accept the same options."""

from __future__ import annotations

import typer.main

from pmsd.cli import fast
from pmsd.cli.app import app
from pmsd.cli.grammar import parse_start, start_flags


def _options_of(command_name: str) -> set[str]:
    group = typer.main.get_command(app)
    command = group.commands[command_name]  # type: ignore[attr-defined]
    return {opt for param in command.params for opt in param.opts if opt.startswith("-")}


def test_start_fast_parser_knows_every_typer_option() -> None:
    fast_names = {name for flag in start_flags() for name in flag.names}
    assert fast_names == _options_of("start")


def test_logs_fast_parser_knows_every_typer_option() -> None:
    assert set(fast.LOGS_FLAGS) | set(fast.LOGS_VALUE_OPTIONS) == _options_of("logs")


def test_parse_start_reads_flags_switches_and_script_args() -> None:
    params = parse_start(["app.js", "--name", "api", "-f", "--max-restarts=3", "--no-autorestart",
                          "--", "--port", "3000"])
    assert params is not None
    assert params["target"] == "app.js"
    assert params["name"] == "api" and params["force"] is True and params["max_restarts"] == "3"
    assert params["autorestart"] is True  # the switch was given; grammar.start_request turns it into false
    assert params["args"] == ["--port", "3000"]


def test_parse_start_leaves_what_it_does_not_know_to_typer() -> None:
    assert parse_start(["app.js", "--bogus"]) is None
    assert parse_start(["app.js", "--name"]) is None
    assert parse_start([]) is None


def test_timestamp_takes_an_optional_pattern() -> None:
    assert fast.normalize_logs_argv(["logs", "--timestamp", "api"]) == [
        "logs", "--timestamp", fast.PM2_TIMESTAMP, "api"]
    assert fast.normalize_logs_argv(["logs", "--timestamp", "HH:mm", "api"]) == [
        "logs", "--timestamp", "HH:mm", "api"]


def test_ls_fast_parser_knows_every_typer_option() -> None:
    assert set(fast.LS_FLAGS) | set(fast.LS_VALUE_OPTIONS) == _options_of("ls")


def test_start_or_commands_take_starts_flags() -> None:
    for command in ("startOrRestart", "startOrReload", "startOrGracefulReload"):
        assert _options_of(command) == _options_of("start")


def test_every_pm2_start_flag_is_known() -> None:
    """PM2 7.0.4's `start` options (lib/binaries/CLI.js), less those of other commands (startup: -u --hp
    --wait-ip --service-name; -w --write; --no-daemon; --sort; -v; container mode) and --ignore-watch's
    spelling, which pmsd has as is."""
    pm2 = {"-s", "--silent", "--ext", "-n", "--name", "-m", "--mini-list", "--interpreter", "--interpreter-args",
           "--node-args", "-o", "--output", "-e", "--error", "-l", "--log", "--filter-env", "--log-type",
           "--log-date-format", "--time", "--disable-logs", "--env", "-a", "--update-env", "-f", "--force", "-i",
           "--instances", "--parallel", "--shutdown-with-message", "-p", "--pid", "-k", "--kill-timeout",
           "--listen-timeout", "--max-memory-restart", "--restart-delay", "--exp-backoff-restart-delay", "-x",
           "--execute-command", "--max-restarts", "--uid", "--gid", "--namespace", "--cwd", "-c", "--cron",
           "--cron-restart", "--source-map-support", "--only", "--disable-source-map-support", "--wait-ready",
           "--merge-logs", "--watch", "--ignore-watch", "--watch-delay", "--no-color", "--no-vizion",
           "--no-autostart", "--no-autorestart", "--stop-exit-codes", "--no-treekill", "--no-pmx",
           "--no-automation", "--trace", "--disable-trace", "--attach", "--v8", "--event-loop-inspector",
           "--deep-monitoring"}
    assert pm2 <= _options_of("start")
