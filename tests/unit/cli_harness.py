"""Running the `pmsd` CLI in-process with no systemd: an isolated environment per test, and the text a user sees.

Every test gets its own state directory, runtime directory and app directory, PMSD_NO_GOD=1, and a
`Context.manager` that raises: a message that only comes after talking to systemd fails with "this test must
not reach systemd".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from pmsd.cli import app as typer_cli
from pmsd.cli.main import main
from pmsd.context import Context

NO_SYSTEMD = "this test must not reach systemd"


def _no_systemd(self: Context) -> NoReturn:
    raise AssertionError(NO_SYSTEMD)


@dataclass(frozen=True)
class Env:
    app: Path  # the current directory: small scripts, a directory for log files
    state: Path  # PMSD_STATE_DIR


@dataclass(frozen=True)
class Result:
    status: int
    out: str
    err: str


def make_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text("print('hi')\n")
    (app / "data.txt").write_text("no interpreter is known for .txt, and it is not executable\n")
    tool = app / "tool"  # runs as it is: no interpreter, so no dependence on what PATH holds
    tool.write_text("#!/bin/sh\nexec sleep 1000\n")
    tool.chmod(0o755)
    (app / "logdir").mkdir()
    state = tmp_path / "state"
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    monkeypatch.setenv("PMSD_STATE_DIR", str(state))
    monkeypatch.setenv("PMSD_NO_GOD", "1")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={runtime}/no-bus")
    monkeypatch.setenv("NO_COLOR", "1")
    for name in ("PMSD_DEBUG", "PMSD_GOD_SOCKET", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(app)
    monkeypatch.setattr(Context, "manager", property(_no_systemd))
    monkeypatch.setattr(typer_cli._state, "user", True)  # module state: `--system` in one test must not leak
    return Env(app, state)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    status = main(list(argv))
    captured = capsys.readouterr()
    return Result(status, captured.out, captured.err)
