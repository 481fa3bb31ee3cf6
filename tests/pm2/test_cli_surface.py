"""The PM2 → pmsd command-line table (tests/pm2/cli_surface.py) against pmsd's real CLI, in-process and
without systemd: a row's class must be what the CLI does. With PM2 installed where the differential suite keeps
it, the table's rows are compared with `pm2 --help`'s, so a PM2 upgrade shows what is new."""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import time
from contextlib import suppress
from pathlib import Path

import click
import pytest
import typer.main

from pmsd.cli.app import app
from pmsd.cli.elsewhere import ELSEWHERE
from pmsd.cli.grammar import Flag, start_flags
from pmsd.errors import ExitStatus
from tests.pm2.cli_surface import CATCH_ALL, COMMANDS, OPTIONS, PMSD_ONLY, Command, Option, Surface
from tests.pm2.conftest import PM2_BIN
from tests.unit.cli_harness import Env, make_env, run

ACCEPTED = (Surface.SAME, Surface.DIFFERS)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    return make_env(tmp_path, monkeypatch)


def _group() -> click.Group:
    group = typer.main.get_command(app)
    assert isinstance(group, click.Group)
    return group


def _flags(command: str) -> set[str]:
    """Every option spelling the pmsd command ("" for the global options) accepts, --help included."""
    group = _group()
    with click.Context(group, info_name="pmsd", **group.context_settings) as ctx:  # -h, as `pmsd` builds it
        if not command:
            params = group.get_params(ctx)
        else:
            target = group.commands[command]
            with click.Context(target, parent=ctx, info_name=command, **target.context_settings) as child:
                params = target.get_params(child)
    return {name for param in params for name in (*param.opts, *param.secondary_opts)}


def _names(rows: tuple[Command, ...] | tuple[Option, ...]) -> list[str]:
    return ["|".join(row.names) for row in rows]


def test_no_duplicate_rows() -> None:
    for rows in (COMMANDS, OPTIONS):
        names = _names(rows)
        assert not [name for name, count in collections.Counter(names).items() if count > 1]
    commands = [name for row in COMMANDS for name in row.names]
    assert len(commands) == len(set(commands))
    # PM2 itself lists --version twice (-V and -v) and -c twice (--cron and --cron-restart).
    options = collections.Counter(name for row in OPTIONS for name in row.names)
    assert {name for name, count in options.items() if count > 1} == {"--version", "-c"}


def test_rows_say_why() -> None:
    rows: list[Command | Option] = [*COMMANDS, *OPTIONS]
    for row in rows:
        assert bool(row.why) == (row.surface in (Surface.DIFFERS, Surface.MISSING)), row


def test_every_pmsd_command_has_a_row() -> None:
    """A new pmsd command is either one of PM2's (classify it) or pmsd's own (PMSD_ONLY)."""
    table = {name for row in COMMANDS for name in row.pmsd}
    assert set(_group().commands) == table | set(PMSD_ONLY)


@pytest.mark.parametrize("name", [name for row in COMMANDS if row.surface in ACCEPTED for name in row.pmsd])
def test_accepted_command(env: Env, capsys: pytest.CaptureFixture[str], name: str) -> None:
    result = run(capsys, name, "--help")
    assert result.status == 0, result
    assert f"pmsd {name} [OPTIONS]" in " ".join(result.out.split()), result.out


def test_unknown_command_is_a_usage_error(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    (row,) = [row for row in COMMANDS if row.names == (CATCH_ALL,)]
    assert row.surface is Surface.DIFFERS
    result = run(capsys, "no-such-command")
    assert result.status == ExitStatus.USAGE
    assert "No such command" in result.err


@pytest.mark.parametrize("name", [name for row in COMMANDS if row.surface is Surface.ELSEWHERE
                                  for name in row.names])
@pytest.mark.parametrize("extra", [(), ("--help",)])
def test_elsewhere_command(env: Env, capsys: pytest.CaptureFixture[str], name: str, extra: tuple[str, ...]) -> None:
    result = run(capsys, name, *extra)
    text = result.out + result.err
    assert text.count("\n") == 1 and text.startswith(f"[pmsd] `pm2 {name}` is not part of pmsd: "), text
    assert result.status in (ExitStatus.OK, ExitStatus.USAGE)
    assert (result.status == ExitStatus.OK) == (result.out != "")  # a refusal goes to stderr
    assert name in ELSEWHERE


@pytest.mark.parametrize("name", [name for row in COMMANDS if row.surface is Surface.MISSING for name in row.names])
def test_missing_command_is_refused(env: Env, capsys: pytest.CaptureFixture[str], name: str) -> None:
    """Once pmsd has it, its row must say how it compares."""
    result = run(capsys, name, "--help")
    assert result.status == ExitStatus.USAGE and "No such command" in result.err, result


def _option_id(row: Option) -> str:
    return "|".join(row.names)


def _grammar(row: Option, name: str) -> Flag | None:
    """`pmsd start`'s declaration of a flag (pmsd.cli.grammar), which says whether it is ignored or only warned
    about."""
    return next((flag for flag in start_flags() if name in flag.names), None) if row.command == "start" else None


@pytest.mark.parametrize("row", OPTIONS, ids=_option_id)
def test_option(row: Option) -> None:
    accepted = _flags(row.command)
    assert set(row.flags) <= accepted, f"pmsd {row.command} does not accept {set(row.flags) - accepted}"
    declared = [_grammar(row, name) for name in row.flags]
    if row.surface in ACCEPTED:
        assert row.flags
        assert row.surface is not Surface.SAME or set(row.names) <= set(row.flags), "same spelling"
        assert not any(flag and (flag.ignored or flag.unsupported) for flag in declared), "honoured"
    elif row.surface is Surface.ELSEWHERE:
        assert row.command == "start" and set(row.names) == set(row.flags)
        assert all(flag and flag.ignored for flag in declared), "accepted and ignored"
    else:
        warned = bool(declared) and all(flag and flag.unsupported for flag in declared)
        refused = set(row.names) - accepted
        assert warned or refused, "pmsd has it now: say how it compares"


def _pm2_help(home: Path) -> str:
    """`pm2 --help` with a private PM2_HOME; it spawns PM2's daemon, which is ended by its own pid file."""
    environ = {**os.environ, "PM2_HOME": str(home), "NO_COLOR": "1"}
    try:
        return subprocess.run([str(PM2_BIN), "--help"], capture_output=True, text=True, env=environ,
                              timeout=60).stdout
    finally:
        subprocess.run([str(PM2_BIN), "kill"], capture_output=True, env=environ, timeout=30)
        with suppress(OSError, ValueError, ProcessLookupError):
            pid = int((home / "pm2.pid").read_text().strip())
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)  # this test's daemon only, by its pid


def _listed(text: str, section: str) -> list[str]:
    """The first column of a `pm2 --help` section: "delete|del", "-V, --version", "-l --log"."""
    rows: list[str] = []
    inside = False
    for line in text.splitlines():
        if re.match(r"^\s+\w+:$", line):
            inside = line.strip() == f"{section}:"
            continue
        if inside and line.strip():
            signature = re.split(r"\s{2,}", line.strip())[0]
            rows.append(" ".join(re.sub(r"<[^>]*>|\[[^\]]*\]", " ", signature).split()))  # no <value>, [path]
    return rows


@pytest.mark.skipif(not PM2_BIN.exists(), reason=f"PM2 is not installed at {PM2_BIN} (the differential suite's)")
def test_table_matches_pm2_help(tmp_path: Path) -> None:
    text = _pm2_help(tmp_path / "pm2home")
    commands = [row.split()[0] for row in _listed(text, "Commands")]
    options = [" ".join(row.replace(",", " ").split()) for row in _listed(text, "Options")]
    assert sorted(commands) == sorted(_names(COMMANDS)), "PM2's commands changed: classify the new ones"
    assert sorted(options) == sorted(" ".join(row.names) for row in OPTIONS), "PM2's options changed"


@pytest.mark.skipif(not PM2_BIN.exists(), reason=f"PM2 is not installed at {PM2_BIN} (the differential suite's)")
def test_installed_pm2s_schema_keys_all_have_a_meaning() -> None:
    """The installed PM2's own schema, so that a key a newer PM2 adds is noticed (tests/unit/test_ecosystem_schema.py
    holds PM2 7.0.4's)."""
    from tests.unit.test_ecosystem_schema import PM2_SCHEMA_ALIASES, PM2_SCHEMA_KEYS, pm2_key_meaning

    schema = json.loads((PM2_BIN.resolve().parents[1] / "lib" / "API" / "schema.json").read_text())
    keys = {key for key in schema if not key.startswith("^")}  # "^env_\S*$": the env_<name> overlays
    aliases = {alias for entry in schema.values() if isinstance(entry, dict)
               for alias in ([entry["alias"]] if isinstance(entry.get("alias"), str) else entry.get("alias", []))}
    assert sorted(key for key in keys | aliases if pm2_key_meaning(key) is None) == []
    assert keys | aliases <= set(PM2_SCHEMA_KEYS) | set(PM2_SCHEMA_ALIASES) | {"interpreter"}
