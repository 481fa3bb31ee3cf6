"""PM2's verbs and flags on pmsd's command line (issue 12): what each does, in-process, with a fake manager
where a command must reach systemd and with none where it must not."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import pmsd.api.lifecycle
from pmsd.api.lifecycle import Outcome, StartOptions
from pmsd.api.report import journald_rate_limits
from pmsd.api.signals import parse_signal, signal_name
from pmsd.api.start_or import start_or
from pmsd.cli import commands
from pmsd.cli.elsewhere import ELSEWHERE
from pmsd.cli.grammar import IGNORED_FLAGS, normalize_start_argv, parse_start, start_request
from pmsd.context import Context
from pmsd.definition.build import build_spec
from pmsd.definition.ecosystem import load_apps
from pmsd.definition.parsers import parse_seconds_ms
from pmsd.errors import ExitStatus, UsageError
from pmsd.model.spec import COMMAND_LINE, Source
from pmsd.state.registry import Registry
from pmsd.systemd.states import ActiveState, UnitListing
from tests.unit.cli_harness import NO_SYSTEMD, Env, run
from tests.unit.helpers import make_record, make_state

USAGE = ExitStatus.USAGE


class FakeManager:
    """What the commands under test ask systemd, answered from a dict of running units."""

    version = 252

    def __init__(self, running: dict[str, int]) -> None:
        self.running = running  # unit -> main pid
        self.killed: list[tuple[str, int, str]] = []

    def service_state(self, unit: str, **_: Any) -> Any:
        if unit not in self.running:
            return None
        return make_state(name=unit, main_pid=self.running[unit])

    def list_units(self, patterns: Any) -> list[UnitListing]:
        return [UnitListing(unit, "loaded", ActiveState.ACTIVE, "running", b"/x") for unit in sorted(self.running)]

    def kill_unit(self, unit: str, signal: int, whom: str = "main") -> None:
        self.killed.append((unit, signal, whom))

    def close(self) -> None:
        pass


def fake_manager(monkeypatch: pytest.MonkeyPatch, running: dict[str, int]) -> FakeManager:
    manager = FakeManager(running)
    monkeypatch.setattr(Context, "manager", property(lambda self: manager))
    return manager


def seed(env: Env, *records: Any) -> None:
    with Registry(str(env.state)).transaction() as data:
        data.apps.extend(records)
        data.next_id = max(record.pm_id for record in records) + 1


# ------------------------------------------------------------------------------------------ flags: grammar


@pytest.mark.parametrize(("argv", "expected"), [
    pytest.param(["app.js", "--watch"], ["app.js", "--watch=true"], id="watch-alone"),
    pytest.param(["app.js", "--watch", "src"], ["app.js", "--watch=src"], id="watch-path"),
    pytest.param(["app.js", "--watch", "src", "--watch", "lib"], ["app.js", "--watch=src,lib"], id="watch-twice"),
    pytest.param(["--watch", "app.js"], ["--watch=true", "app.js"], id="watch-before-script"),
    pytest.param(["app.js", "--watch", "--name", "x"], ["app.js", "--watch=true", "--name", "x"],
                 id="watch-then-option"),
    pytest.param(["app.js", "--stop-exit-codes", "0", "3", "-f"], ["app.js", "--stop-exit-codes=0,3", "-f"],
                 id="exit-codes-variadic"),
    pytest.param(["app.js", "--stop-exit-codes", "0,3"], ["app.js", "--stop-exit-codes=0,3"], id="exit-codes-comma"),
    pytest.param(["app.js", "-l"], ["app.js", "--log="], id="log-alone"),
    pytest.param(["app.js", "-l", "all.log"], ["app.js", "--log=all.log"], id="log-path"),
    pytest.param(["app.js", "--filter-env", "-s"], ["app.js", "--filter-env=true", "-s"], id="filter-env-alone"),
    pytest.param(["app.js", "--name", "--watch"], ["app.js", "--name", "--watch"], id="a-value-is-a-value"),
    pytest.param(["app.js", "--", "--watch", "x"], ["app.js", "--", "--watch", "x"], id="script-args-untouched"),
])
def test_optional_and_variadic_flags_are_normalized(argv: list[str], expected: list[str]) -> None:
    assert normalize_start_argv(argv) == expected


def request(argv: list[str]) -> tuple[str, dict[str, Any]]:
    params = parse_start(normalize_start_argv(argv))
    assert params is not None, argv
    return start_request(params)


def test_pm2_short_forms() -> None:
    _, options = request(["app.js", "-k", "3000", "-a", "-x", "-c", "0 * * * *", "-l", "all.log"])
    assert options["overrides"] == {"kill_timeout": "3000", "exec_mode": "fork", "cron_restart": "0 * * * *",
                                    "log_file": "all.log"}
    assert options["update_env"] is True
    _, options = request(["app.js", "--cron", "0 * * * *"])
    assert options["overrides"] == {"cron_restart": "0 * * * *"}


def test_watch_flag_values() -> None:
    assert request(["app.js", "--watch"])[1]["overrides"] == {"watch": "true"}
    assert request(["app.js", "--watch", "src", "--watch", "lib"])[1]["overrides"] == {"watch": ["src", "lib"]}
    assert request(["app.js", "-l"])[1]["overrides"] == {}  # the journal keeps the lines


@pytest.mark.parametrize(("text", "ms"), [("4", 4000), ("0.5", 500), ("1.25", 1250), ("500ms", 500),
                                          ("2s", 2000), ("1m", 60_000), ("0", 0)])
def test_watch_delay_flag_is_seconds_as_pm2_reads_it(text: str, ms: int) -> None:
    assert parse_seconds_ms(text) == ms
    assert request(["app.js", "--watch-delay", text])[1]["overrides"] == {"watch_delay": ms}


def test_watch_delay_in_an_ecosystem_file_stays_milliseconds(tmp_path: Path) -> None:
    (tmp_path / "tool").write_text("#!/bin/sh\n")
    (tmp_path / "tool").chmod(0o755)
    spec = build_spec({"script": "./tool", "watch_delay": 4}, Source("eco.json", str(tmp_path)), None,
                      "/usr/bin:/bin", [])
    assert spec.watch_delay == 4


def test_bad_watch_delay_names_the_flag() -> None:
    with pytest.raises(UsageError, match="--watch-delay: expected seconds"):
        request(["app.js", "--watch-delay", "soon"])


def test_output_and_instrumentation_flags_parse() -> None:
    argv = ["app.js", "-s", "-m", "--no-color", "--parallel", "4", *(flag.names[0] for flag in IGNORED_FLAGS)]
    target, options = request(argv)
    assert target == "app.js" and options["overrides"] == {}


def test_ignored_flags_say_so_in_help(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "start", "--help")
    assert result.status == 0
    text = " ".join(result.out.split())
    for flag in ("--no-vizion", "--no-pmx", "--trace", "--v8", "--deep-monitoring", "--no-treekill"):
        assert flag in text
    assert "Ignored: PM2 instrumentation" in text


@pytest.mark.parametrize("parser", ["fast", "typer"])
def test_flags_pmsd_does_not_honour_are_accepted_with_a_warning(
        env: Env, capsys: pytest.CaptureFixture[str], parser: str) -> None:
    prefix = ["--user"] if parser == "typer" else []
    # A missing --cwd fails before systemd is reached, after the keys were read: what comes before it was accepted.
    result = run(capsys, *prefix, "start", "tool", "--no-treekill", "--shutdown-with-message", "--filter-env",
                 "-p", "app.pid", "--trace", "--no-pmx", "-s", "--cwd", "nowhere")
    assert result.status == USAGE
    assert "accepted, no effect under pmsd: pid_file (" in result.err
    assert "shutdown_with_message" not in result.err  # honoured now
    assert "filter_env" not in result.err and "treekill" not in result.err  # both honoured now
    assert "--cwd: " in result.err and "is not a directory" in result.err
    assert NO_SYSTEMD not in result.err


@pytest.mark.parametrize("parser", ["fast", "typer"])
def test_watch_without_a_value_and_variadic_exit_codes_reach_both_parsers(
        env: Env, capsys: pytest.CaptureFixture[str], parser: str) -> None:
    prefix = ["--user"] if parser == "typer" else []
    result = run(capsys, *prefix, "start", "tool", "--watch", "--stop-exit-codes", "0", "300")
    assert (result.status, result.err) == (USAGE, "[pmsd][ERROR] --stop-exit-codes: exit codes run from 0 to "
                                                  "255, got 300\n")


# ------------------------------------------------------------------------------------------ command strings


def test_a_command_string_runs_through_the_shell_named_after_the_command(tmp_path: Path) -> None:
    spec = build_spec({"script": "sleep 1000 && echo done"}, Source(COMMAND_LINE, str(tmp_path)), None,
                      "/usr/bin:/bin", [])
    shell = shutil.which("bash", path="/usr/bin:/bin") or shutil.which("sh", path="/usr/bin:/bin")
    assert spec.name == "sleep 1000 && echo done"
    assert spec.interpreter == "none"
    assert spec.argv == (shell, "-c", "sleep 1000 && echo done")


def test_a_command_string_keeps_its_name_and_quotes_script_args(tmp_path: Path) -> None:
    spec = build_spec({"script": "echo hi", "name": "greet", "args": ["a b", "$HOME"]},
                      Source(COMMAND_LINE, str(tmp_path)), None, "/usr/bin:/bin", [])
    assert spec.name == "greet"
    assert spec.argv[1:] == ("-c", "echo hi 'a b' '$HOME'")


def test_a_file_whose_name_has_a_space_is_run_as_a_file(tmp_path: Path) -> None:
    script = tmp_path / "my tool"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    spec = build_spec({"script": "my tool"}, Source(COMMAND_LINE, str(tmp_path)), None, "/usr/bin:/bin", [])
    assert spec.exec_path == str(script) and spec.name == "my tool"


# ------------------------------------------------------------------------------------------ ls --sort, -m


@pytest.mark.parametrize("parser", ["fast", "typer"])
def test_ls_sort_and_mini_list(env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                               parser: str) -> None:
    seed(env, make_record(0, name="b"), make_record(1, name="a"), make_record(2, name="c"))
    fake_manager(monkeypatch, {"pmsd-a.service": 12, "pmsd-b.service": 11, "pmsd-c.service": 13})
    prefix = ["--user"] if parser == "typer" else []
    result = run(capsys, *prefix, "ls", "--sort", "name:desc", "-m")
    assert result.status == 0, result.err
    assert [line for line in result.out.splitlines() if line.startswith("+---")] == ["+--- c", "+--- b", "+--- a"]
    assert "pid : 13" in result.out and "unit : pmsd-c.service" in result.out
    result = run(capsys, *prefix, "ls", "--sort=pid")
    assert result.out.index(" b ") < result.out.index(" a ") < result.out.index(" c ")


def test_ls_refuses_an_unknown_sort_field_before_systemd(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "ls", "--sort", "colour")
    assert result.status == USAGE
    assert result.err.startswith("[pmsd][ERROR] --sort 'colour': expected <field>[:asc|desc], field one of name")


# ------------------------------------------------------------------------------------------ sendSignal


@pytest.mark.parametrize(("text", "number"), [("SIGUSR2", 12), ("USR2", 12), ("usr2", 12), ("sigterm", 15),
                                              ("10", 10), ("SIGRTMIN", 34)])
def test_parse_signal(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["SIGNOPE", "0", "999", "", "USR 2"])
def test_parse_signal_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_signal(text)


def test_send_signal_goes_to_the_main_process_of_each_app(
        env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    seed(env, make_record(0, name="api"), make_record(1, name="worker"))
    manager = fake_manager(monkeypatch, {"pmsd-api.service": 11, "pmsd-worker.service": 12})
    result = run(capsys, "sendSignal", "USR2", "api", "1")
    assert (result.status, result.err) == (0, "")
    assert manager.killed == [("pmsd-api.service", 12, "main"), ("pmsd-worker.service", 12, "main")]
    assert result.out == ("[pmsd] SIGUSR2 sent to the main process of api (id 0)\n"
                          "[pmsd] SIGUSR2 sent to the main process of worker (id 1)\n")
    assert signal_name(12) == "SIGUSR2"


def test_send_signal_to_a_stopped_app_fails(env: Env, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    seed(env, make_record(0, name="api"))
    manager = fake_manager(monkeypatch, {})
    result = run(capsys, "sendSignal", "SIGHUP", "api")
    assert result.status == ExitStatus.ERROR
    assert result.err == "[pmsd][ERROR] SIGHUP not sent to api (id 0): not running\n"
    assert manager.killed == []


def test_send_signal_refuses_a_bad_signal_before_systemd(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "sendSignal", "SIGNOPE", "api")
    assert result.status == USAGE
    assert result.err.startswith("[pmsd][ERROR] unknown signal 'SIGNOPE'")


# ------------------------------------------------------------------------------------------ ecosystem / init


@pytest.mark.parametrize("verb", ["ecosystem", "init"])
def test_ecosystem_writes_a_starter_and_never_overwrites(env: Env, capsys: pytest.CaptureFixture[str],
                                                        verb: str) -> None:
    result = run(capsys, verb)
    assert result.status == 0, result.err
    path = env.app / "ecosystem.config.js"
    assert result.out == f"[pmsd] wrote {path}; start it with `pmsd start ecosystem.config.js`\n"
    text = path.read_text()
    assert "module.exports" in text and "// " in text
    path.write_text("mine")
    result = run(capsys, verb)
    assert result.status == USAGE
    assert result.err.startswith(f"[pmsd][ERROR] {path} already exists; pmsd does not overwrite it")
    assert path.read_text() == "mine"


@pytest.mark.skipif(shutil.which("node") is None, reason="evaluating ecosystem.config.js needs node")
@pytest.mark.parametrize("mode", [[], ["simple"]])
def test_the_starter_file_loads(env: Env, capsys: pytest.CaptureFixture[str], mode: list[str]) -> None:
    assert run(capsys, "ecosystem", *mode).status == 0
    apps = load_apps(str(env.app / "ecosystem.config.js"))
    assert [app["name"] for app in apps] == ["app"] and apps[0]["script"] == "app.js"


# ------------------------------------------------------------------------------------------ startOr*


def test_start_or_reload_starts_new_apps_and_reloads_existing_ones_with_the_files_env(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    (env.app / "eco.json").write_text(
        '{"apps": [{"name": "old", "script": "./tool", "env": {"A": "2"}}, {"name": "new", "script": "./tool"}]}')
    seed(env, make_record(0, name="old", env={"A": "1"}))
    calls: list[tuple[str, object]] = []

    def fake_create(ctx: Context, data: object, spec: Any) -> list[Outcome]:
        calls.append(("start", spec.name))
        return [Outcome("started", 1, spec.name)]

    def fake_reload_app(ctx: Context, data: object, name: str, group: list[Any], update_env: bool) -> list[Outcome]:
        calls.append(("reload", (name, update_env)))
        return [Outcome("reloaded", 0, name)]

    monkeypatch.setattr(pmsd.api.lifecycle, "_create", fake_create)
    monkeypatch.setattr(pmsd.api.lifecycle, "_reload_app", fake_reload_app)
    ctx = Context(user=True)
    outcomes = start_or(ctx, "eco.json", "reload")
    assert calls == [("reload", ("old", True)), ("start", "new")]
    assert [o.action for o in outcomes] == ["reloaded", "started"]
    assert Registry(str(env.state)).read().by_name("old").spec.env == {"A": "2"}  # type: ignore[union-attr]


def test_start_or_restart_is_start_of_the_file(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    (env.app / "eco.json").write_text('{"apps": [{"name": "x", "script": "./tool"}]}')
    calls: list[str] = []

    def fake_start(ctx: Context, target: str, options: StartOptions | None = None) -> list[Outcome]:
        calls.append(target)
        return []

    monkeypatch.setattr(pmsd.api.lifecycle, "start", fake_start)
    assert start_or(Context(user=True), "eco.json", "restart") == []
    assert calls == ["eco.json"]


@pytest.mark.parametrize("verb", ["startOrRestart", "startOrReload", "startOrGracefulReload"])
def test_start_or_needs_an_ecosystem_file(env: Env, capsys: pytest.CaptureFixture[str], verb: str) -> None:
    result = run(capsys, verb, "tool")
    assert result.status == USAGE
    assert result.err.startswith("[pmsd][ERROR] tool is not an ecosystem file")
    result = run(capsys, verb, "missing.json")
    assert result.status == ExitStatus.NOT_FOUND


# ------------------------------------------------------------------------------------------ report, update


def test_journald_rate_limits_follow_drop_ins(tmp_path: Path) -> None:
    conf = tmp_path / "journald.conf"
    conf.write_text("[Journal]\n#RateLimitBurst=1\nRateLimitIntervalSec=10s\n")
    dropins = tmp_path / "journald.conf.d"
    dropins.mkdir()
    (dropins / "50-a.conf").write_text("[Journal]\nRateLimitBurst=5000\n")
    (dropins / "90-b.conf").write_text("[Other]\nRateLimitBurst=1\n[Journal]\nRateLimitBurst=250000\n")
    assert journald_rate_limits(str(conf), [str(dropins)]) == [
        ("RateLimitIntervalSec", f"10s ({conf})"), ("RateLimitBurst", f"250000 ({dropins}/90-b.conf)")]
    assert journald_rate_limits(str(tmp_path / "none"), []) == [
        ("RateLimitIntervalSec", "30s (default)"), ("RateLimitBurst", "10000 (default)")]


def test_report_lists_what_a_bug_report_needs(env: Env, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    seed(env, make_record(0, name="api"))
    fake_manager(monkeypatch, {"pmsd-api.service": 11})
    result = run(capsys, "report")
    assert result.status == 0, result.err
    for part in ("--- pmsd", "version", "python", "scope", "user", "manager version : 252", "--- god",
                 "pmsd-god.service : not loaded", "disabled (PMSD_NO_GOD) : yes", "--- journald rate limits",
                 "RateLimitBurst", "--- pmsd units", "pmsd-api.service : loaded active/running"):
        assert part in " ".join(result.out.split()), part


def test_report_without_a_manager_still_prints(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    from pmsd.errors import PmsdError

    def no_manager(self: Context) -> None:
        raise PmsdError("no systemd user manager")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Context, "manager", property(no_manager))
        result = run(capsys, "report")
    assert result.status == 0, result.err
    assert "manager version : unavailable (no systemd user manager)" in " ".join(result.out.split())


def test_update_without_god(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "update")
    assert result.status == 0
    assert "PMSD_NO_GOD is set" in result.out


# ------------------------------------------------------------------------------------------ PM2-only commands


@pytest.mark.parametrize("command", sorted(ELSEWHERE))
def test_pm2_only_commands_say_what_to_use_instead(env: Env, capsys: pytest.CaptureFixture[str],
                                                   command: str) -> None:
    result = run(capsys, command, "some", "--args")
    status = ELSEWHERE[command][1]
    assert result.status == status
    text = result.err if status else result.out
    assert text.startswith(f"[pmsd] `pm2 {command}` is not part of pmsd: ")
    assert text.count("\n") == 1 and (result.out if status else result.err) == ""


def test_harmless_pm2_only_commands_exit_zero() -> None:
    assert sorted(name for name, (_, status) in ELSEWHERE.items() if status == 0) == [
        "logout", "logrotate", "uninstall-otel", "unlink", "unmonitor"]


def test_several_targets_reach_the_api(env: Env, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []

    def fake_stop(ctx: Context, target: object, **_: Any) -> list[Outcome]:
        seen.append(target)
        return []

    monkeypatch.setattr(pmsd.api.lifecycle, "stop", fake_stop)
    fake_manager(monkeypatch, {})
    assert run(capsys, "stop", "a", "b", "-s").status == 0
    assert run(capsys, "stop", "a").status == 0
    assert seen == [["a", "b"], "a"]
    assert os.environ.get("PMSD_NO_GOD") == "1"


@pytest.mark.parametrize("parser", ["fast", "typer"])
def test_no_daemon_is_refused_with_the_reason_before_anything_happens(
        env: Env, capsys: pytest.CaptureFixture[str], parser: str) -> None:
    prefix = ["--user"] if parser == "typer" else []
    result = run(capsys, *prefix, "start", "tool", "--no-daemon")
    assert result.status == USAGE
    assert "--no-daemon: pmsd has no daemon to run in the foreground" in result.err
    assert NO_SYSTEMD not in result.err


def test_attach_follows_the_started_apps_logs(env: Env, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    followed: list[str | None] = []
    monkeypatch.setattr(commands, "ls", lambda ctx: ExitStatus.OK)

    def follow(ctx: Context, target: str | None) -> int:
        followed.append(target)
        return ExitStatus.OK

    monkeypatch.setattr(commands, "logs", follow)
    (env.app / "two.json").write_text('{"apps": [{"name": "a.b", "script": "tool"}, {"name": "c", "script": "tool"}]}')
    assert run(capsys, "start", "two.json", "--no-autostart", "--attach").status == ExitStatus.OK
    assert followed == [r"/^(a\.b|c)$/"]


def test_names_target_of_one_app_is_its_name() -> None:
    assert commands.names_target(["api"]) == "api"


def test_capital_v_prints_the_version(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    from pmsd import __version__

    for flag in ("-V", "-v", "--version"):
        result = run(capsys, "--user", flag)
        assert (result.status, result.out) == (ExitStatus.OK, f"{__version__}\n")


def test_ext_makes_the_other_files_ignore_watch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "app.js").write_text("x")
    (tmp_path / "notes.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    _target, options = request(["app.js", "--watch", "--ext", "js", "--ignore-watch", "logs"])
    assert options["overrides"]["ignore_watch"] == [str(tmp_path / "notes.txt")]  # replaces it, as in PM2
    with pytest.raises(UsageError, match="--ext: expected file extensions"):
        request(["app.js", "--ext", ","])


def test_write_puts_a_definition_that_starts_the_same_app(env: Env, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "ls", lambda ctx: ExitStatus.OK)
    monkeypatch.setenv("PWD", str(env.app))
    result = run(capsys, "start", "tool", "--name", "w1", "--no-autostart", "-w", "--max-restarts", "3", "--",
                 "--port", "1")
    assert result.status == ExitStatus.OK, result.err
    path = env.app / "w1-pm2.json"
    assert f"[pmsd] w1: definition written to {path}" in result.out
    stored = Registry(str(env.state)).read().instances_of("w1")[0].spec
    rebuilt = build_spec(load_apps(str(path))[0], Source(str(path), str(env.app)), None, os.environ.get("PATH"), [])
    assert rebuilt == stored
