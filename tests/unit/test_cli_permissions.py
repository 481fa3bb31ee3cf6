"""Permission problems get a clear error and exit status 5, never a traceback (issue 11 item 6): `--system` as
a non-root user, and state files pmsd may not read."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import pytest

import pmsd.state.registry
from pmsd.errors import ExitStatus
from tests.unit.cli_harness import Env, run

PERMISSION = ExitStatus.PERMISSION
SYSTEM_NEEDS_ROOT = ("[pmsd][ERROR] pmsd --system manages the system manager's apps, which needs root\n"
                     "  hint: run it as root (sudo pmsd --system ...), or drop --system to manage your own apps\n")

COMMANDS = [["ls"], ["list"], ["jlist"], ["prettylist"], ["start", "main.py"], ["stop", "all"], ["restart", "x"],
            ["reload", "x"], ["delete", "x"], ["reset", "x"], ["scale", "x", "2"], ["describe", "x"], ["env", "x"],
            ["pid"], ["id", "x"], ["logs", "--nostream"], ["flush"], ["reloadLogs"], ["ping"], ["kill"],
            ["events"]]


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(a) for a in COMMANDS])
def test_system_mode_as_a_user_needs_root(env: Env, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    result = run(capsys, "--system", *argv)
    assert (result.status, result.err, result.out) == (PERMISSION, SYSTEM_NEEDS_ROOT, "")


def test_help_still_works_for_a_user(env: Env, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    result = run(capsys, "--system", "ls", "--help")
    assert result.status == 0 and "List apps" in result.out


def _deny(path_part: str) -> Any:
    real_open = builtins.open

    def fake_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if path_part in str(file):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    return fake_open


@pytest.mark.parametrize("argv", [["ls"], ["jlist"], ["describe", "x"], ["logs", "--nostream"], ["stop", "x"]])
def test_unreadable_registry(env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                             argv: list[str]) -> None:
    env.state.mkdir()
    (env.state / "registry.json").write_text('{"version": 1, "next_id": 0, "apps": []}')
    monkeypatch.setattr(pmsd.state.registry, "open", _deny("registry.json"), raising=False)
    result = run(capsys, *argv)
    assert result.status == PERMISSION
    assert result.err == (f"[pmsd][ERROR] permission denied reading pmsd's registry {env.state}/registry.json\n"
                          "  hint: it belongs to the user who started those apps: run pmsd as that user (for "
                          "--system, as root)\n")


def test_unwritable_lock(env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pmsd.state.registry, "open", _deny("registry.lock"), raising=False)
    result = run(capsys, "flush")
    assert result.status == PERMISSION
    assert result.err.startswith(f"[pmsd][ERROR] permission denied opening {env.state}/registry.lock\n")


def test_any_other_permission_error_is_reported_not_raised(env: Env, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def denied(*_args: Any, **_kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", "/somewhere/else")

    monkeypatch.setattr("pmsd.cli.commands.ls", denied)
    result = run(capsys, "ls")
    assert result.status == PERMISSION
    assert result.err.startswith("[pmsd][ERROR] permission denied: /somewhere/else\n")
