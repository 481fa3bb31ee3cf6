"""Hostile command lines (issue 19), without systemd: every command of `pmsd`, with words of any kind after it
(its own options with hostile values, "²", 5000-digit numbers, regular expressions that break `re`, undecodable
bytes as Python hands them over, "-", "--", ...) and anything on stdin.

The property: the command either gets past its arguments (it reaches systemd, which the harness of
tests/unit/cli_harness.py refuses, or it needs none and succeeds), or it exits non-zero with pmsd's or the
parser's usage message: no traceback, no hang, and nothing written to the state directory. And the fast path
(pmsd.cli.fast), which parses `start`, `ls`, `logs` and the listing commands without typer, agrees with typer on
what every command line means, or leaves it to typer. `PMSD_FUZZ_EXAMPLES=20000` runs more cases.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import typer.main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pmsd.api.logs
import pmsd.api.startup
import pmsd.cli.monit
from pmsd.cli import commands, fast
from pmsd.cli.app import app, run
from pmsd.cli.elsewhere import ELSEWHERE
from pmsd.cli.grammar import normalize_start_argv, output_request, parse_start, start_request
from pmsd.cli.main import main
from pmsd.errors import PmsdError
from pmsd.state.registry import Registry
from tests.unit.cli_harness import NO_SYSTEMD, make_env
from tests.unit.helpers import fuzz_examples, make_record, time_limit

GROUP = typer.main.get_command(app)
COMMANDS = sorted(GROUP.commands)  # type: ignore[attr-defined]
OPTIONS = {name: sorted({opt for param in GROUP.commands[name].params  # type: ignore[attr-defined]
                         for opt in param.opts + param.secondary_opts if opt.startswith("-")})
           for name in COMMANDS}

# Words a command line can hold (never a NUL byte: execve() cannot pass one), chosen for the code that reads
# them: ids and numbers ("²" is a digit to str.isdigit(), not to int()), regular expressions, signals, paths,
# targets that exist (the seeded apps, an ecosystem file), undecodable bytes (Python hands them over as lone
# surrogates) and text a terminal would act on.
WORDS = [
    "", " ", "-", "--", "---", "-=", "=", "²", "٣", "¹²", "9" * 5000, "9" * 25, "0", "1", "-1", "+1", "007", "0x10",
    "all", "api", "worker", "prod", "default", "main.py", "tool", "./tool", "missing.py", "apps.json",
    "broken.yaml", "nothing.toml", "dump.pm2", "/", "//", "~", "..", "/dev/null", "/(/", "/(a+)+$/", "//",
    "/" + "(" * 2000 + ")" * 2000 + "/", "/a{99999999999}/", "/[/", "/\\/", "SIGUSR2", "usr2", "SIGKILL", "KILL",
    "9", "64", "65", "SIG", "SIG_DFL", "SIGRTMIN+1", "name", "memory:desc", "cpu:asc", "x:y", "uptime:",
    "log_max_size", "log_retain", "pm2-logrotate:max_size", "metrics_listen", "10M", "unix", "127.0.0.1:9209",
    "[::1]:0", "true", "false", "null", "simple", "systemd", "upstart", "a\nb", "\n", "\r", "\x1b[2J", "\x9b",
    "\udcff", "a\udcffb", "\ud800", "日本 🚀", "%n", "$HOME", "*", "?", "x" * 300, "--help", "-h", "--version",
]
GLOBALS = ["--user", "--system", "-v", "--bogus", "--user --system"]


# The commands with a grammar of their own (PM2's commands pmsd does not have take any words and say so).
OWN_COMMANDS = sorted(set(COMMANDS) - set(ELSEWHERE))


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(OWN_COMMANDS) | st.sampled_from(OWN_COMMANDS) | st.sampled_from(COMMANDS)
                   | st.sampled_from(WORDS))
    own = OPTIONS.get(command, []) or ["--x"]
    word = (st.sampled_from(WORDS) | st.sampled_from(WORDS) | st.sampled_from(own)
            | st.builds(lambda option, value: f"{option}={value}", st.sampled_from(own), st.sampled_from(WORDS))
            | st.text(st.characters(exclude_characters="\0"), max_size=6))
    before = draw(st.sampled_from(["", *GLOBALS]))
    return [*before.split(), command, *draw(st.lists(word, max_size=5))]


STDIN = st.none() | st.sampled_from(['{"apps": [{"name": "api", "script": "tool"}]}', "", "[", "9" * 5000,
                                     "[" * 5000, '{"script": "tool", "env": {"X": 1e999}}', "[1]", '"\\ud800"'])


@contextmanager
def sandbox(stdin: str | None) -> Iterator[Path]:
    """A fresh systemd-free environment (cli_harness.make_env) per example, with two registered apps, a valid
    and a broken ecosystem file; startup's unit directory and HOME are inside it too. The state directory."""
    with tempfile.TemporaryDirectory(prefix="pmsd-cli-fuzz-") as top, pytest.MonkeyPatch.context() as patch:
        env = make_env(Path(top), patch)
        patch.setenv("HOME", str(Path(top, "home")))
        patch.setenv("XDG_CONFIG_HOME", str(Path(top, "config")))
        patch.setattr(pmsd.api.startup, "config_unit_dir", lambda user, environ: str(Path(top, "units")))
        patch.setattr(pmsd.api.logs, "follow", _accepted)  # `logs` follows until Ctrl-C: accepted by then
        patch.setattr(pmsd.cli.monit, "refresh", _accepted)  # `ls --watch` too
        if stdin is not None:
            patch.setattr(sys, "stdin", io.StringIO(stdin))
        # Python's own stderr writes what UTF-8 cannot hold (an undecodable argument) as \udcff; stdout is strict.
        if isinstance(sys.stderr, io.TextIOWrapper):
            sys.stderr.reconfigure(errors="backslashreplace")
        (env.app / "apps.json").write_text('{"apps": [{"name": "api", "script": "tool"}, {"script": "main.py"}]}')
        (env.app / "broken.yaml").write_text("apps: [\n")
        with Registry(str(env.state)).transaction() as data:
            data.apps.extend([make_record(0, name="api", namespace="prod", out_file=str(env.app / "logdir/o.log")),
                              make_record(1, name="worker")])
            data.next_id = 2
        commands.set_output()  # -s, -m and --no-color are remembered by the module: not from the last example
        yield env.state


class Accepted(Exception):
    """The command got past its arguments into what runs until Ctrl-C."""


def _accepted(*_args: object, **_kwargs: object) -> Any:
    raise Accepted


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under `directory` and a digest of its content."""
    return {str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(directory.rglob("*")) if path.is_file()}


def run_hostile(argv: list[str], capsys: pytest.CaptureFixture[str], stdin: str | None = None) -> str:
    """How `pmsd <argv>` ended: "accepted" or "refused"; fails on a traceback, a hang or a refusal that wrote."""
    with sandbox(stdin) as state:
        before = snapshot(state)
        try:
            with time_limit(20, f"pmsd {argv}"):
                status = main(list(argv))
        except AssertionError as error:
            assert NO_SYSTEMD in str(error), error
            status = None
        except Accepted:
            status = None
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err, (argv, out, err)
        # Python's words for programmers (int() of "²" or of 5000 digits) are no message for a user.
        assert "set_int_max_str_digits" not in err and "invalid literal for int()" not in err, (argv, err)
        if status is None or status == 0:
            return "accepted"
        assert snapshot(state) == before, f"pmsd {argv} was refused, yet wrote to the state directory"
        for line in err.splitlines():
            if line.startswith("[pmsd]"):  # what pmsd prints (click's and rich's own messages are theirs)
                assert not any(char in line for char in "\r\x1b\x9b"), (argv, line)
        return "refused"


@settings(max_examples=fuzz_examples(150), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(argv=command_lines(), stdin=STDIN)
def test_hostile_command_lines_are_refused_cleanly(argv: list[str], stdin: str | None,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run_hostile(argv, capsys, stdin)


# ------------------------------------------------------------------------------------------ the fast path

FAST_COMMANDS = ["start", "ls", "list", "status", "l", "ps", "jlist", "prettylist", "metrics", "logs", "log",
                 "monit", "imonit"]


@st.composite
def fast_lines(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(FAST_COMMANDS))
    own = OPTIONS[command] + ["--", "-"]
    word = (st.sampled_from(own) | st.sampled_from(WORDS)
            | st.builds(lambda option, value: f"{option}={value}", st.sampled_from(own), st.sampled_from(WORDS)))
    return [command, *draw(st.lists(word, max_size=6))]


class Called(Exception):
    """What a command was called with, instead of running it."""

    def __init__(self, what: object) -> None:
        super().__init__(repr(what))
        self.what = what


def _recorder(name: str, function: Callable[..., int]) -> Callable[..., int]:
    signature = inspect.signature(function)

    def record(*args: object, **kwargs: object) -> int:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = {key: value for key, value in bound.arguments.items() if key != "ctx"}
        if name in ("start", "start_or"):
            arguments["params"] = _meaning(arguments["params"])
        raise Called((name, arguments))

    return record


def _meaning(params: dict[str, Any]) -> object:
    """What parsed `start` parameters ask for (both parsers' params go through start_request)."""
    try:
        return start_request(dict(params)), output_request(params)
    except PmsdError as error:
        return "refused", error.message


def _outcome(parse: Callable[[], int | None]) -> object:
    try:
        result = parse()
    except Called as called:
        return called.what
    except SystemExit as done:
        return ("exit", done.code)
    return None if result is None else ("status", result)


@settings(max_examples=fuzz_examples(150), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(argv=fast_lines())
def test_the_fast_path_means_what_typer_means_or_leaves_it_to_typer(argv: list[str],
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    with sandbox(None), pytest.MonkeyPatch.context() as patch:
        for name in ("start", "ls", "logs", "jlist", "prettylist", "metrics", "monit"):
            patch.setattr(commands, name, _recorder(name, getattr(commands, name)))
        if argv[0] in ("logs", "log"):
            argv = fast.normalize_logs_argv(argv)
        if argv[0] == "start":
            argv = [argv[0], *normalize_start_argv(argv[1:])]
        with time_limit(20, f"the fast path of {argv}"):
            quick = _outcome(lambda: fast.try_fast_path(list(argv)))
            full = _outcome(lambda: run(list(argv)))
    capsys.readouterr()
    if quick is not None:
        assert quick == full, (argv, quick, full)


def test_the_sandbox_keeps_state_in_its_own_directory(capsys: pytest.CaptureFixture[str]) -> None:
    with sandbox(None) as state:
        assert os.environ["PMSD_STATE_DIR"] == str(state) and (state / "registry.json").exists()


# ------------------------------------------------------------------------------------------ regressions
# Each defect the fuzzers found (or that reading the code for them showed), with its smallest input.


@pytest.mark.parametrize(("argv", "stdin", "status", "message"), [
    # str.isdigit() is true for "²", which int() refuses (ValueError escaped), and for 5000 digits, which int()
    # does not read: targets, signal numbers and `logs --lines`.
    (["stop", "²"], None, 3, "no app, id or namespace named '²'"),
    (["describe", "9" * 5000], None, 3, "no app with id 999999999999999999...\n"),
    (["sendSignal", "²", "api"], None, 2, "unknown signal '²'"),
    (["sendSignal", "9" * 5000, "api"], None, 2, "signal 9999999999999999999999999999999999999999 is not a signal"),
    # `re` raises RecursionError and OverflowError too, not only re.error.
    (["stop", "/" + "(" * 2000 + ")" * 2000 + "/"], None, 2, "invalid regular expression /((((("),
    (["delete", "/a{99999999999}/"], None, 2, "invalid regular expression /a{99999999999}/"),
    # float("9" * 400) is infinity: OverflowError from round() and int().
    (["start", "tool", "--watch-delay", "9" * 400], None, 2, "--watch-delay: expected seconds"),
    (["start", "tool", "--max-memory-restart", "9" * 400 + "G"], None, 2, "--max-memory-restart: expected bytes"),
    (["set", "log_max_size", "9" * 400 + "G"], None, 2, "set log_max_size: expected bytes"),
    # json.loads raises ValueError and RecursionError beside JSONDecodeError.
    (["stop", "-"], "9" * 5000, 2, "stdin: invalid JSON: a number has more than 4300 digits"),
    (["restart", "-"], "[" * 5000 + "]" * 5000, 2, "stdin: invalid JSON: nested too deeply"),
    # A value quoted in a message reached the terminal as it was: here, clear the screen.
    (["startOrReload", "\x1b[2J"], None, 2, "\\x1b[2J is not an ecosystem file"),
], ids=lambda value: ascii(value)[:30] if isinstance(value, list) else "")
def test_hostile_arguments_are_refused_with_a_message(argv: list[str], stdin: str | None, status: int, message: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with sandbox(stdin):
        assert main(argv) == status
        err = capsys.readouterr().err
    assert err.startswith(f"[pmsd][ERROR] {message}") and "Traceback" not in err, err
    assert run_hostile(argv, capsys, stdin) == "refused"


def test_logs_lines_that_int_cannot_read_are_left_to_typer(capsys: pytest.CaptureFixture[str]) -> None:
    # The fast path called int("²") (ValueError escaped); now typer explains it, as for any value it refuses.
    assert fast._parse_logs(["--lines", "²"]) is None and fast._parse_logs(["--lines", "9" * 5000]) is None
    assert fast._parse_logs(["--lines=12", "api"]) == {"target": "api", "lines": 12}
    assert run_hostile(["logs", "--lines", "²"], capsys) == "refused"


def test_a_short_option_with_an_equals_sign_is_left_to_typer() -> None:
    # `-c=x`: the fast path read the value "x", typer (as PM2's commander) reads "=x"; they must not disagree.
    assert parse_start(["app.js", "-c=0 * * * *"]) is None and parse_start(["app.js", "-n=api"]) is None
    assert parse_start(["app.js", "--name=api"]) == {"args": [], "name": "api", "target": "app.js"}


def test_an_empty_inline_value_is_the_value_as_typer_reads_it() -> None:
    # `logs --highlight= --err`: the fast path took "--err" as the value to highlight, typer highlights "".
    assert fast._parse_logs(["--highlight=", "--err"]) == {"target": None, "highlight": "", "err": True}
