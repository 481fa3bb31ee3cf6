"""`pmsd startup`'s unit, and how startup/unstartup install it (no systemd: the manager is a stand-in)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

import pmsd.api.startup
from pmsd.api.startup import startup, unstartup
from pmsd.context import Context
from pmsd.definition.startup_unit import STARTUP_UNIT, startup_unit_text
from pmsd.errors import UsageError


class FakeManager:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def reload(self) -> None:
        self.calls.append(("reload",))

    def stop(self, unit: str) -> None:
        self.calls.append(("stop", unit))


def _ctx(tmp_path: Path, user: bool = True, **environ: str) -> tuple[Context, FakeManager]:
    manager = FakeManager()
    ctx = Context(user=user, environ={"XDG_CONFIG_HOME": str(tmp_path / "config"), **environ},
                  state_dir=str(tmp_path / "state"))
    ctx._manager = manager  # type: ignore[assignment]
    return ctx, manager


@pytest.mark.parametrize(("user", "scope", "wanted_by"), [(True, "--user", "default.target"),
                                                          (False, "--system", "multi-user.target")])
def test_the_unit_resurrects_at_the_managers_start(user: bool, scope: str, wanted_by: str) -> None:
    text = startup_unit_text(user, "/opt/my venv/bin/python", "/var/lib/pm%sd", wait_network=False)
    lines = text.splitlines()
    assert f'ExecStart="/opt/my venv/bin/python" -P -m pmsd {scope} resurrect --silent' in lines
    assert "Environment=PMSD_STATE_DIR=/var/lib/pm%%sd" in lines  # % is a specifier: doubled
    assert "Type=oneshot" in lines and "RemainAfterExit=yes" in lines and f"WantedBy={wanted_by}" in lines
    assert not any(line.startswith(("After=", "Wants=")) for line in lines)


def test_wait_ip_and_no_god() -> None:
    lines = startup_unit_text(False, "/usr/bin/python3", "/var/lib/pmsd", wait_network=True, no_god=True).splitlines()
    assert "After=network-online.target" in lines and "Wants=network-online.target" in lines
    assert "Environment=PMSD_STATE_DIR=/var/lib/pmsd PMSD_NO_GOD=1" in lines


def test_startup_installs_and_enables_and_unstartup_removes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pmsd.api.startup, "_enable_linger", lambda ctx: None)
    ctx, manager = _ctx(tmp_path, PMSD_NO_GOD="1")
    result = startup(ctx)
    unit_dir = tmp_path / "config" / "systemd" / "user"
    assert result.unit_path == str(unit_dir / STARTUP_UNIT)
    assert "PMSD_NO_GOD=1" in (unit_dir / STARTUP_UNIT).read_text()
    link = unit_dir / "default.target.wants" / STARTUP_UNIT
    assert os.readlink(link) == f"../{STARTUP_UNIT}" and link.exists()
    assert manager.calls == [("reload",)]
    assert startup(ctx).unit_path == result.unit_path  # again: idempotent
    assert unstartup(ctx) == [str(link), str(unit_dir / STARTUP_UNIT)]
    assert not link.exists() and not (unit_dir / STARTUP_UNIT).exists()
    assert not link.parent.exists()  # the .wants directory it made, empty again
    assert manager.calls[-2:] == [("stop", STARTUP_UNIT), ("reload",)]
    assert unstartup(ctx) == []


@pytest.mark.parametrize("name", ["", "a b", "x@y", "é", "a/b", "x" * 300])
def test_a_service_name_systemd_cannot_take_is_refused(tmp_path: Path, name: str) -> None:
    ctx, manager = _ctx(tmp_path)
    with pytest.raises(UsageError, match="--service-name"):
        startup(ctx, service_name=name)
    assert not (tmp_path / "config").exists() and manager.calls == []


def test_lingering_failure_gives_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 1, "", "Failed to connect to bus\n")

    monkeypatch.setattr(pmsd.api.startup, "lingering", lambda name: False)
    monkeypatch.setattr(subprocess, "run", failing)
    ctx, _manager = _ctx(tmp_path)
    result = startup(ctx)
    assert result.linger is not None and "sudo loginctl enable-linger" in result.linger
