"""What a user sees for every usage error and validation message, with no systemd involved.

Each test calls `main([...])` in-process with the words a user types, and checks the text printed and the exit
status (the way httpie tests its CLI). A fixture gives every test its own state directory, runtime directory
and app directory, PMSD_NO_GOD=1, and a `Context.manager` that raises: a message that only comes after talking
to systemd fails here with "this test must not reach systemd".
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from typing import NoReturn

import pytest

from pmsd.cli import commands
from pmsd.context import Context
from pmsd.errors import ExitStatus, PmsdError
from pmsd.model.record import AppRecord
from pmsd.state.registry import DAMAGED_HINT, Registry
from tests.unit.cli_harness import NO_SYSTEMD, Env, Result, run
from tests.unit.helpers import make_record, needs_node

USAGE = ExitStatus.USAGE
NOT_FOUND = ExitStatus.NOT_FOUND
ERROR = ExitStatus.ERROR
LS_HINT = "`pmsd ls` lists ids and names"


def expand(text: str, env: Env) -> str:
    return text.replace("$APP", str(env.app)).replace("$STATE", str(env.state))


def assert_error(result: Result, env: Env, status: int, message: str, hint: str | None = None) -> None:
    """stderr is exactly pmsd's error (a message ending in "..." is its stable leading part), nothing else."""
    message, hint = expand(message, env), expand(hint, env) if hint is not None else None
    assert (result.status, result.out) == (status, "")
    if message.endswith("..."):
        first, _, rest = result.err.partition("\n")
        assert first.startswith(f"[pmsd][ERROR] {message[:-3]}"), result.err
        assert rest == (f"  hint: {hint}\n" if hint is not None else ""), result.err
    else:
        assert result.err == f"[pmsd][ERROR] {message}\n" + (f"  hint: {hint}\n" if hint is not None else "")


def plain(text: str) -> str:
    """typer's error text without rich's box, on one line (rich wraps it at the terminal width)."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def seed(env: Env, *records: AppRecord) -> None:
    with Registry(str(env.state)).transaction() as data:
        data.apps.extend(records)
        data.next_id = max(record.pm_id for record in records) + 1


# ------------------------------------------------------------------------------------------ start: flag values

FLAG_VALUES = [
    pytest.param("--max-restarts", "-1", "expected a whole number from 0 to 4294967295, got -1",
                 id="max-restarts-negative"),
    pytest.param("--max-restarts", "lots", "expected a whole number, got 'lots'", id="max-restarts-word"),
    pytest.param("--restart-delay", "abc", "expected milliseconds or a duration like '2s', '1m', got 'abc'",
                 id="restart-delay-word"),
    pytest.param("--restart-delay", "-5", "expected milliseconds or a duration like '2s', '1m', got '-5'",
                 id="restart-delay-negative"),
    pytest.param("--exp-backoff-restart-delay", "x", "expected milliseconds or a duration like '2s', '1m', got 'x'",
                 id="exp-backoff"),
    pytest.param("--min-uptime", "1x", "expected milliseconds or a duration like '2s', '1m', got '1x'",
                 id="min-uptime"),
    pytest.param("--kill-timeout", "0", "expected a duration above 0 ms", id="kill-timeout-zero"),
    pytest.param("--listen-timeout", "0", "expected a duration above 0 ms", id="listen-timeout-zero"),
    pytest.param("--instances", "abc", "expected a whole number, got 'abc'", id="instances-word"),
    pytest.param("--instances", "1.5", "expected a whole number, got '1.5'", id="instances-fraction"),
    pytest.param("--instances", "5000", "expected at most 1024 instances, got 5000", id="instances-too-many"),
    pytest.param("-i", "5000", "expected at most 1024 instances, got 5000", id="instances-short"),
    pytest.param("--exec-mode", "bogus", "expected 'fork' or 'cluster', got 'bogus'", id="exec-mode"),
    pytest.param("--port", "70000", "expected a port from 1 to 65535, or address:port, got '70000'", id="port-range"),
    pytest.param("--port", "localhost:3000",
                 "'localhost' is not an IP address (systemd's ListenStream= takes no host names)", id="port-host-name"),
    pytest.param("--port", "::1:3000", "write an IPv6 address in brackets, as in [::1]:3000; got '::1:3000'",
                 id="port-ipv6-brackets"),
    pytest.param("--cron-restart", "61 * * * *",
                 "invalid cron pattern '61 * * * *': field 'minute': 61 is out of range 0-59", id="cron-field"),
    pytest.param("--cron-restart", "* * *",
                 "invalid cron pattern '* * *': expected 5 fields (minute hour day-of-month month day-of-week) or "
                 "6 (second first), got 3", id="cron-field-count"),
    pytest.param("--cron-restart", "@weekly2",
                 "invalid cron pattern '@weekly2': unknown nickname '@weekly2' (known: @yearly, @annually, @monthly, "
                 "@weekly, @daily, @midnight, @hourly)", id="cron-nickname"),
    pytest.param("--watch-delay", "soon", "expected seconds (4, 0.5) or a duration like '500ms', '2s', got 'soon'",
                 id="watch-delay"),
    pytest.param("--max-memory-restart", "lots", "expected bytes or a size like '300K', '150M', '1G', got 'lots'",
                 id="max-memory-restart-word"),
    pytest.param("--max-memory-restart", "0", "expected a size above 0 bytes, got 0", id="max-memory-restart-zero"),
    pytest.param("--memory-max", "1X", "expected bytes or a size like '300K', '150M', '1G', got '1X'", id="memory-max"),
    pytest.param("--stop-exit-codes", "300", "exit codes run from 0 to 255, got 300", id="stop-exit-codes-range"),
    pytest.param("--stop-exit-codes", "0,x", "expected a whole number, got 'x'", id="stop-exit-codes-word"),
    pytest.param("--log-type", "xml", "expected 'json' (or 'raw'), got 'xml'", id="log-type"),
    pytest.param("--instance-var", "1BAD", "'1BAD' is not a valid environment variable name", id="instance-var"),
    pytest.param("--increment-var", "A-B", "'A-B' is not a valid environment variable name", id="increment-var"),
    pytest.param("--interpreter-args", "'unclosed",
                 "cannot split \"'unclosed\" into arguments: No closing quotation", id="interpreter-args"),
    pytest.param("--namespace", "", "cannot be empty", id="namespace-empty"),
]


@pytest.mark.parametrize("parser", ["fast", "typer"])
@pytest.mark.parametrize(("flag", "value", "problem"), FLAG_VALUES)
def test_bad_flag_value(env: Env, capsys: pytest.CaptureFixture[str], parser: str, flag: str, value: str,
                        problem: str) -> None:
    # A leading global option skips the fast path: both parsers must report the same.
    prefix = ["--user"] if parser == "typer" else []
    result = run(capsys, *prefix, "start", "tool", flag, value)
    long_flag = "--instances" if flag == "-i" else flag
    assert_error(result, env, USAGE, f"{long_flag}: {problem}")


FLAG_PROBLEMS = [
    pytest.param(["--cwd", "nowhere"], "--cwd: $APP/nowhere is not a directory", None, id="cwd-missing"),
    pytest.param(["--cwd", "tool"], "--cwd: $APP/tool is not a directory", None, id="cwd-is-a-file"),
    # The flags are --output, --error and --log; the messages name the option keys (out_file, ...).
    pytest.param(["--output", "tool/out.log"], "--out-file: $APP/tool is not a directory",
                 "give a path whose directories are directories", id="output-under-a-file"),
    pytest.param(["-e", "logdir"], "--error-file: $APP/logdir is a directory; give a file path", None,
                 id="error-is-a-directory"),
    pytest.param(["--log", "tool/x/all.log"], "--log-file: $APP/tool is not a directory",
                 "give a path whose directories are directories", id="log-under-a-file"),
    pytest.param(["--node-args", "'x"], "--interpreter-args: cannot split \"'x\" into arguments: No closing quotation",
                 None, id="node-args-alias"),
]


@pytest.mark.parametrize(("flags", "message", "hint"), FLAG_PROBLEMS)
def test_flag_problem(env: Env, capsys: pytest.CaptureFixture[str], flags: list[str], message: str,
                      hint: str | None) -> None:
    assert_error(run(capsys, "start", "tool", *flags), env, USAGE, message, hint)


# ------------------------------------------------------------------------------------------ start: the program

PROGRAMS = [
    pytest.param(["missing.py"], "command line: an app: script not found: $APP/missing.py",
                 "check the path (relative paths start from the app's cwd), or give a command on PATH",
                 id="missing-script-by-extension"),
    pytest.param(["./missing"], "command line: an app: script not found: $APP/missing",
                 "check the path (relative paths start from the app's cwd), or give a command on PATH",
                 id="missing-script-by-path"),
    pytest.param(["missing.py", "--name", "api"], "command line: app 'api': script not found: $APP/missing.py",
                 "check the path (relative paths start from the app's cwd), or give a command on PATH",
                 id="missing-script-named-app"),
    pytest.param(["pmsd-no-such-command"],
                 "command line: an app: script not found: 'pmsd-no-such-command' is neither a file in $APP nor a "
                 "command on PATH", None, id="command-not-on-path"),
    # An ecosystem file that does not exist is taken for a command.
    pytest.param(["missing.json"],
                 "command line: an app: script not found: 'missing.json' is neither a file in $APP nor a command "
                 "on PATH", None, id="missing-ecosystem-file"),
    # With nothing registered, `start all` and `start 42` are commands to look for.
    pytest.param(["all"], "command line: an app: script not found: 'all' is neither a file in $APP nor a command "
                 "on PATH", None, id="start-all-nothing-registered"),
    pytest.param(["42"], "command line: an app: script not found: '42' is neither a file in $APP nor a command "
                 "on PATH", None, id="start-id-nothing-registered"),
    pytest.param(["data.txt"],
                 "command line: an app: $APP/data.txt is not executable and pmsd knows no interpreter for it",
                 "pass --interpreter <program>, or chmod +x the script", id="not-executable-no-interpreter"),
    pytest.param(["tool", "--interpreter", "pmsd-no-such-interpreter"],
                 "command line: an app: interpreter 'pmsd-no-such-interpreter' not found on PATH",
                 "install pmsd-no-such-interpreter, or pass --interpreter with an absolute path",
                 id="interpreter-not-on-path"),
    pytest.param(["tool", "--interpreter", "/nonexistent/python"],
                 "command line: an app: interpreter /nonexistent/python does not exist or is not executable", None,
                 id="interpreter-absolute-missing"),
]


@pytest.mark.parametrize(("argv", "message", "hint"), PROGRAMS)
def test_program(env: Env, capsys: pytest.CaptureFixture[str], argv: list[str], message: str,
                 hint: str | None) -> None:
    assert_error(run(capsys, "start", *argv), env, USAGE, message, hint)


# ------------------------------------------------------------------------------------------ start: names

TOO_LONG = "x" * 250
LONG_ACCENTS = "é" * 60  # 120 bytes, 480 once escaped
LONG_ACCENTS_UNIT = "pmsd-" + "\\xc3\\xa9" * 4 + "\\xc"  # the first 40 characters
NAMES = [
    pytest.param(" ", "--name: an app name cannot be empty", "pass --name <name>", id="blank"),
    pytest.param("123", "--name: app name '123' is a number, which pmsd would read as an id",
                 "choose a name with at least one non-digit character", id="numeric"),
    pytest.param("all", "--name: 'all' is reserved: it means every app", "choose another --name", id="all"),
    pytest.param("god", "--name: 'god' is reserved: pmsd-god.service is pmsd's own daemon", "choose another --name",
                 id="god"),
    pytest.param("a\tb", "--name: app name 'a\\tb' contains control characters", "choose a printable name",
                 id="tab"),
    pytest.param("a\x7fb", "--name: app name 'a\\x7fb' contains control characters", "choose a printable name",
                 id="delete-char"),
    pytest.param(TOO_LONG, f"--name: app name {TOO_LONG!r} is too long: its unit name pmsd-{'x' * 35}... exceeds "
                 "systemd's 255 bytes",
                 "choose a shorter name (once escaped, each byte of a non-ASCII character takes four)", id="too-long"),
    pytest.param(LONG_ACCENTS, f"--name: app name {LONG_ACCENTS!r} is too long: its unit name {LONG_ACCENTS_UNIT}... "
                 "exceeds systemd's 255 bytes",
                 "choose a shorter name (once escaped, each byte of a non-ASCII character takes four)",
                 id="too-long-once-escaped"),
]


@pytest.mark.parametrize(("name", "message", "hint"), NAMES)
def test_bad_name(env: Env, capsys: pytest.CaptureFixture[str], name: str, message: str, hint: str) -> None:
    assert_error(run(capsys, "start", "tool", "--name", name), env, USAGE, message, hint)


# ------------------------------------------------------------------------------------------ start: ecosystem files

ECOSYSTEMS = [
    # PM2 reads a .json file that is not JSON as a JavaScript expression; this one is neither.
    pytest.param("bad.json", '{"apps": [\n  {"name": "x", "script": "tool" "y"}\n]}\n', [], USAGE,
                 "bad.json:2: neither JSON nor a JavaScript expression (as PM2 reads .json files): "
                 "SyntaxError: Unexpected string", None, id="invalid-json", marks=needs_node),
    pytest.param("latin.json", b'{"name": "caf\xe9", "script": "tool"}', [], USAGE, "latin.json: not UTF-8 text",
                 None, id="json-not-utf8"),
    pytest.param("bad.yaml", "apps:\n  - name: a\n    script: tool\n   bad: 1\n", [], USAGE,
                 "bad.yaml:4:4: invalid YAML: ...", None, id="invalid-yaml"),
    pytest.param("bad.toml", '[[apps]]\nname = "a"\nscript = tool\n', [], USAGE,
                 "bad.toml: invalid TOML: Invalid value (at line 3, column 10)", None, id="invalid-toml"),
    pytest.param("notlist.json", '{"apps": 3}', [], USAGE,
                 "notlist.json: 'apps' must be a list of apps", None, id="apps-not-a-list"),
    pytest.param("noapps.json", '{"apps": []}', [], USAGE, "noapps.json: declares no apps", None, id="no-apps"),
    pytest.param("empty.yaml", "[]\n", [], USAGE, "empty.yaml: declares no apps", None, id="empty-list"),
    pytest.param("scalar.json", '"tool"', [], USAGE, "scalar.json: expected {apps: [...]}, an app, or a list of apps",
                 None, id="not-an-app"),
    pytest.param("nothing.yaml", "", [], USAGE, "nothing.yaml: expected {apps: [...]}, an app, or a list of apps",
                 None, id="empty-yaml"),
    pytest.param("notmap.json", '{"apps": [{"script": "tool"}, "tool"]}', [], USAGE,
                 "notmap.json: app #2 is not a mapping of options", None, id="app-not-a-mapping"),
    pytest.param("intkey.yaml", "apps:\n  - name: a\n    script: tool\n    1: x\n", [], USAGE,
                 "intkey.yaml: app 'a', key '1': option names must be strings", None, id="non-string-key"),
    pytest.param("noscript.json", '{"apps": [{"name": "a"}]}', [], USAGE,
                 "noscript.json: app 'a', key 'script': missing",
                 "every app needs a script (a file or a command on PATH)", id="missing-script-key"),
    pytest.param("missing.json", '{"apps": [{"name": "a", "script": "missing.py"}]}', [], USAGE,
                 "missing.json: app 'a': script not found: $APP/missing.py",
                 "check the path (relative paths start from the app's cwd), or give a command on PATH",
                 id="missing-script-file"),
    pytest.param("dup.json", '{"apps": [{"name": "a", "script": "tool"}, {"name": "a", "script": "tool"}]}', [],
                 USAGE, "dup.json: app names must be unique, repeated: a", None, id="duplicate-names"),
    pytest.param("dupdefault.json", '[{"script": "tool"}, {"script": "./tool"}]', [], USAGE,
                 "dupdefault.json: app names must be unique, repeated: tool", None, id="duplicate-default-names"),
    pytest.param("one.json", '{"apps": [{"name": "a", "script": "tool"}]}', ["--only", "b,c"], NOT_FOUND,
                 "one.json has no app named b, c (--only)", None, id="only-missing-app"),
    pytest.param("cwd.json", '{"apps": [{"name": "a", "script": "tool", "cwd": "nowhere"}]}', [], USAGE,
                 "cwd.json: app 'a', key 'cwd': $APP/nowhere is not a directory", None, id="cwd-missing"),
    pytest.param("cwdfile.json", '{"apps": [{"name": "a", "script": "tool", "cwd": "tool"}]}', [], USAGE,
                 "cwdfile.json: app 'a', key 'cwd': $APP/tool is not a directory", None, id="cwd-is-a-file"),
    pytest.param("outlog.json", '{"apps": [{"name": "a", "script": "tool", "out_file": "tool/out.log"}]}', [], USAGE,
                 "outlog.json: app 'a', key 'out_file': $APP/tool is not a directory",
                 "give a path whose directories are directories", id="log-under-a-file"),
    # The file says `output`; the message names the option it is an alias of.
    pytest.param("alias.json", '{"apps": [{"name": "a", "script": "tool", "output": "tool/out.log"}]}', [], USAGE,
                 "alias.json: app 'a', key 'out_file': $APP/tool is not a directory",
                 "give a path whose directories are directories", id="log-alias-under-a-file"),
    pytest.param("errlog.json", '{"apps": [{"name": "a", "script": "tool", "error_file": "logdir"}]}', [], USAGE,
                 "errlog.json: app 'a', key 'error_file': $APP/logdir is a directory; give a file path", None,
                 id="log-is-a-directory"),
    pytest.param("envport.json", '{"apps": [{"name": "a", "script": "tool", "instances": 2, "env": {"PORT": "x"}}]}',
                 [], USAGE, "envport.json: app 'a', key 'env': PORT: expected a port from 1 to 65535, or "
                 "address:port, got 'x'", "set `port` explicitly, or fix env.PORT", id="cluster-env-port"),
    pytest.param("value.json", '{"apps": [{"name": "a", "script": "tool", "max_restarts": "lots"}]}', [], USAGE,
                 "value.json: app 'a', key 'max_restarts': expected a whole number, got 'lots'", None,
                 id="bad-value"),
    pytest.param("bool.yaml", "name: a\nscript: tool\nautorestart: sometimes\n", [], USAGE,
                 "bool.yaml: app 'a', key 'autorestart': expected true or false, got 'sometimes'", None,
                 id="bad-boolean"),
    # A flag given with an ecosystem file overrides every app, and is reported as the file's key.
    pytest.param("flag.json", '{"apps": [{"name": "a", "script": "tool"}]}', ["--max-restarts", "-1"], USAGE,
                 "flag.json: app 'a', key 'max_restarts': expected a whole number from 0 to 4294967295, got -1",
                 None, id="flag-override"),
    pytest.param("envname.json", '{"apps": [{"name": "a", "script": "tool", "env": {"1BAD": "x"}}]}', [], USAGE,
                 "envname.json: app 'a', key 'env': '1BAD' is not a valid environment variable name (letters, "
                 "digits and _, not starting with a digit)", None, id="env-variable-name"),
    pytest.param("envstr.json", '{"apps": [{"name": "a", "script": "tool", "env": "A=1"}]}', [], USAGE,
                 "envstr.json: app 'a', key 'env': expected a mapping of variable names to values, got 'A=1'", None,
                 id="env-not-a-mapping"),
    pytest.param("overlay.json", '{"apps": [{"name": "a", "script": "tool", "env_production": ["A=1"]}]}',
                 ["--env", "production"], USAGE, "overlay.json: app 'a', key 'env_production': expected a mapping "
                 "of variable names to values, got a list", None, id="env-overlay"),
    pytest.param("intname.json", '{"apps": [{"name": 123, "script": "tool"}]}', [], USAGE,
                 "intname.json: an app, key 'name': app name '123' is a number, which pmsd would read as an id",
                 "choose a name with at least one non-digit character", id="numeric-name"),
    pytest.param("godname.toml", '[[apps]]\nname = "god"\nscript = "tool"\n', [], USAGE,
                 "godname.toml: app 'god', key 'name': 'god' is reserved: pmsd-god.service is pmsd's own daemon",
                 "choose another --name", id="reserved-name"),
    pytest.param("ns.json", '{"apps": [{"name": "a", "script": "tool", "namespace": ""}]}', [], USAGE,
                 "ns.json: app 'a', key 'namespace': cannot be empty", None, id="namespace-empty"),
    pytest.param("user.json", '{"apps": [{"name": "a", "script": "tool", "user": "nobody"}]}', [], USAGE,
                 "app 'a': 'user' (User=) needs the system manager",
                 "run it with `pmsd --system start ...` as root, or drop the option for user mode",
                 id="user-option-in-user-mode"),
]


@pytest.mark.parametrize(("filename", "content", "extra", "status", "message", "hint"), ECOSYSTEMS)
def test_ecosystem_file(env: Env, capsys: pytest.CaptureFixture[str], filename: str, content: str | bytes,
                        extra: list[str], status: int, message: str, hint: str | None) -> None:
    path = env.app / filename
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    assert_error(run(capsys, "start", filename, *extra), env, status, message, hint)


def test_javascript_ecosystem_without_node(env: Env, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    (env.app / "ecosystem.config.js").write_text("module.exports = {apps: [{script: 'tool'}]}\n")
    monkeypatch.setenv("PATH", str(env.state))  # a directory without node (it does not even exist)
    assert_error(run(capsys, "start", "ecosystem.config.js"), env, USAGE,
                 "ecosystem.config.js is JavaScript, and evaluating it needs node, which is not on PATH",
                 "install Node.js (apt-get install nodejs), or write the ecosystem as JSON, YAML or TOML")


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_javascript_ecosystem_that_node_cannot_evaluate(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    (env.app / "ecosystem.config.js").write_text("module.exports = {\n")
    result = run(capsys, "start", "ecosystem.config.js")
    assert result.status == USAGE and result.out == ""
    assert result.err.startswith("[pmsd][ERROR] ecosystem.config.js: evaluating it with node failed:\n    ")
    assert "SyntaxError" in result.err and "hint:" not in result.err


def test_unknown_keys_warning(env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """--no-autostart registers the app without systemd; only the process table after it needs systemd."""
    (env.app / "eco.json").write_text('{"apps": [{"name": "a", "script": "tool", "colour": "red", "sizee": 1, '
                                      '"vizion": false}]}')
    monkeypatch.setattr(commands, "ls", lambda ctx: ExitStatus.OK)
    result = run(capsys, "start", "eco.json", "--no-autostart")
    assert result.status == ExitStatus.OK
    assert result.err == ("[pmsd][WARN] eco.json: app 'a': unknown keys ignored: colour, sizee\n"
                          "[pmsd][WARN] eco.json: app 'a': accepted, no effect under pmsd: vizion (PM2's git "
                          "metadata of the app's directory)\n")
    assert result.out == "[pmsd] start a (id 0): registered\n"


def test_unknown_keys_warning_when_start_fails(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    (env.app / "typo.json").write_text('{"apps": [{"name": "a", "scirpt": "tool"}]}')
    result = run(capsys, "start", "typo.json")
    assert result.status == USAGE
    assert "[pmsd][WARN] typo.json: app 'a': unknown keys ignored: scirpt" in result.err
    assert "[pmsd][ERROR] typo.json: app 'a', key 'script': missing" in result.err


# ------------------------------------------------------------------------------------------ targets

UNKNOWN_TARGETS = [
    pytest.param(["stop", "nobody"], "no app, id or namespace named 'nobody'", id="stop"),
    pytest.param(["stop", "7"], "no app with id 7", id="stop-id"),
    pytest.param(["restart", "nobody"], "no app, id or namespace named 'nobody'", id="restart"),
    pytest.param(["restart", "42"], "no app with id 42", id="restart-id"),
    pytest.param(["reload", "nobody"], "no app, id or namespace named 'nobody'", id="reload"),
    pytest.param(["delete", "nobody"], "no app, id or namespace named 'nobody'", id="delete"),
    pytest.param(["del", "nobody"], "no app, id or namespace named 'nobody'", id="del"),
    pytest.param(["reset", "nobody"], "no app, id or namespace named 'nobody'", id="reset"),
    pytest.param(["scale", "nobody", "2"], "no app, id or namespace named 'nobody'", id="scale"),
    pytest.param(["scale", "nobody", "abc"], "no app, id or namespace named 'nobody'", id="scale-bad-number"),
    pytest.param(["describe", "nobody"], "no app, id or namespace named 'nobody'", id="describe"),
    pytest.param(["env", "nobody"], "no app, id or namespace named 'nobody'", id="env"),
    pytest.param(["pid", "nobody"], "no app, id or namespace named 'nobody'", id="pid"),
    pytest.param(["logs", "nobody", "--nostream"], "no app, id or namespace named 'nobody'", id="logs"),
    pytest.param(["flush", "nobody"], "no app, id or namespace named 'nobody'", id="flush"),
    pytest.param(["events", "nobody"], "no app, id or namespace named 'nobody'", id="events"),
]


@pytest.mark.parametrize(("argv", "message"), UNKNOWN_TARGETS)
def test_unknown_target(env: Env, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert_error(run(capsys, *argv), env, NOT_FOUND, message, LS_HINT)
    assert not (env.state / "registry.json").exists()  # refused before any effect


@pytest.mark.parametrize("verb", ["stop", "restart", "reload", "delete"])
def test_all_with_nothing_registered(env: Env, capsys: pytest.CaptureFixture[str], verb: str) -> None:
    # PM2's _operate (lib/API.js): `all` with no process prints "No process found" and exits non-zero.
    assert_error(run(capsys, verb, "all"), env, NOT_FOUND, f"no apps to {verb}",
                 "`pmsd ls` lists them; `pmsd start` adds one")
    assert not (env.state / "registry.json").exists()


def test_reset_all_with_nothing_registered(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    # PM2's reset of `all` resets the empty list of ids and succeeds.
    result = run(capsys, "reset", "all")
    assert (result.status, result.err) == (ExitStatus.OK, "")
    assert result.out.startswith("[pmsd] nothing to do\n")


def test_describe_all_with_nothing_registered(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    # PM2's describe of nothing prints "... doesn't exist" and exits non-zero.
    assert_error(run(capsys, "describe", "all"), env, NOT_FOUND, "no apps are registered", "`pmsd start` adds one")


REGISTERED = [
    pytest.param(["scale", "web", "abc"], USAGE, "scale: expected a number, +N or -N, got 'abc'", None,
                 id="scale-word"),
    pytest.param(["scale", "web", "+1x"], USAGE, "scale: expected a number, +N or -N, got '+1x'", None,
                 id="scale-suffix"),
    pytest.param(["scale", "web", "-5"], USAGE, "scale: -5 would leave -4 instances",
                 "`pmsd stop` the app to stop it all", id="scale-below-one"),
    pytest.param(["scale", "web", "0"], USAGE, "scale: 0 would leave 0 instances", "`pmsd stop` the app to stop it all",
                 id="scale-zero"),
    pytest.param(["scale", "web", "2000"], USAGE, "scale: at most 1024 instances, asked for 2000", None,
                 id="scale-too-many"),
    pytest.param(["scale", "web", "+1024"], USAGE, "scale: at most 1024 instances, asked for 1025", None,
                 id="scale-relative-too-many"),
    pytest.param(["scale", "shop", "2"], USAGE, "scale takes one app, 'shop' means 2: api, worker", None,
                 id="scale-namespace"),
    pytest.param(["scale", "7", "2"], NOT_FOUND, "no app with id 7", LS_HINT, id="scale-unknown-id"),
    pytest.param(["start", "tool", "--name", "web"], USAGE,
                 "an app named 'web' already exists (id 0, script /srv/app/main.py)",
                 "pick another --name, or `pmsd delete 0` first", id="start-name-taken"),
    pytest.param(["env", "web"], ERROR, "app 'web' has no stored environment",
                 "`pmsd restart web --update-env` stores the current one", id="env-not-stored"),
]


@pytest.mark.parametrize(("argv", "status", "message", "hint"), REGISTERED)
def test_registered_app(env: Env, capsys: pytest.CaptureFixture[str], argv: list[str], status: int, message: str,
                        hint: str | None) -> None:
    seed(env, make_record(0, name="web"), make_record(1, name="api", namespace="shop"),
         make_record(2, name="worker", namespace="shop"))
    before = (env.state / "registry.json").read_bytes()
    assert_error(run(capsys, *argv), env, status, message, hint)
    assert (env.state / "registry.json").read_bytes() == before


# ------------------------------------------------------------------------------------------ state files

REGISTRY_FILES = [
    pytest.param("{bad", "pmsd's registry $STATE/registry.json cannot be read: Expecting property name enclosed in "
                 "double quotes: line 1 column 2 (char 1)", id="not-json"),
    pytest.param("[1]", "pmsd's registry $STATE/registry.json is damaged: it is not a JSON object", id="not-an-object"),
    pytest.param('{"version": 1, "apps": [{}]}',
                 "pmsd's registry $STATE/registry.json is damaged: unexpected content (KeyError: 'next_id')",
                 id="missing-field"),
]


@pytest.mark.parametrize(("content", "message"), REGISTRY_FILES)
@pytest.mark.parametrize("argv", [["stop", "web"], ["ls"], ["start", "tool"]], ids=["stop", "ls", "start"])
def test_damaged_registry(env: Env, capsys: pytest.CaptureFixture[str], argv: list[str], content: str,
                          message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No backup, no save, and systemd cannot list the app units either: the damage is reported."""
    def no_systemd(ctx: Context) -> NoReturn:
        raise PmsdError("systemd cannot be reached")

    monkeypatch.setattr(Context, "manager", property(no_systemd))
    env.state.mkdir()
    (env.state / "registry.json").write_text(content)
    assert_error(run(capsys, *argv), env, ERROR, message, DAMAGED_HINT)


def test_registry_of_a_newer_pmsd(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env.state.mkdir()
    (env.state / "registry.json").write_text('{"version": 9}')
    assert_error(run(capsys, "stop", "web"), env, ERROR, "$STATE/registry.json has format version 9, this pmsd "
                 "reads 1", "upgrade pmsd")


def test_state_directory_under_a_file(env: Env, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMSD_STATE_DIR", str(env.app / "tool" / "state"))
    result = run(capsys, "flush")
    assert result.status != ExitStatus.OK and result.err.startswith("[pmsd][ERROR] ")


# ------------------------------------------------------------------------------------------ command-line grammar

GRAMMAR = [
    pytest.param(["frobnicate"], ("No such command", "frobnicate"), id="unknown-command"),
    pytest.param(["--bogus"], ("No such option", "--bogus"), id="unknown-global-option"),
    pytest.param(["start", "tool", "--bogus"], ("No such option", "--bogus"), id="unknown-start-option"),
    pytest.param(["stop", "x", "--bogus"], ("No such option", "--bogus"), id="unknown-stop-option"),
    pytest.param(["start"], ("Missing argument 'TARGET'",), id="start-without-target"),
    pytest.param(["stop"], ("Missing argument 'TARGET...'",), id="stop-without-target"),
    pytest.param(["scale", "web"], ("Missing argument 'NUMBER'",), id="scale-without-number"),
    pytest.param(["--user", "--system", "ls"], ("--user and --system exclude each other",), id="user-and-system"),
    pytest.param(["start", "tool", "--max-restarts"], ("--max-restarts", "requires an argument"),
                 id="option-without-value"),
    pytest.param(["start", "tool", "--no-autorestart=yes"], ("--no-autorestart", "does not take a value"),
                 id="switch-with-value"),
    pytest.param(["logs", "--lines", "abc"], ("Invalid value for '--lines'", "'abc' is not a valid integer"),
                 id="logs-lines-word"),
    pytest.param(["logs", "--lines", "-1"], ("Invalid value for '--lines'", "-1 is not in the range x>=0"),
                 id="logs-lines-negative"),
]


@pytest.mark.parametrize(("argv", "expected"), GRAMMAR)
def test_usage_error(env: Env, capsys: pytest.CaptureFixture[str], argv: list[str], expected: Sequence[str]) -> None:
    result = run(capsys, *argv)
    assert (result.status, result.out) == (USAGE, "")
    text = plain(result.err)
    for part in expected:
        assert part in text, result.err
    assert "[pmsd][ERROR]" not in result.err and "Traceback" not in result.err


def test_the_guard_is_in_place(env: Env) -> None:
    """The fixture's guard is what makes the cases above meaningful: check it is in place."""
    with pytest.raises(AssertionError, match=NO_SYSTEMD):
        Context(user=True).manager  # noqa: B018
    assert os.environ["PMSD_NO_GOD"] == "1"
