"""The linger warning (issue 11 item 7): once, for a user without lingering, in user mode only."""

from __future__ import annotations

import pwd
from pathlib import Path

import pytest

from pmsd.api.linger import linger_warning
from pmsd.context import Context

NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    monkeypatch.setattr("os.getuid", lambda: NOBODY.pw_uid)
    return Context(user=True, environ={}, state_dir=str(tmp_path / "state"))


def test_warns_once_without_lingering(ctx: Context, tmp_path: Path) -> None:
    linger = tmp_path / "linger"
    linger.mkdir()
    warning = linger_warning(ctx, str(linger))
    assert warning is not None
    assert warning.startswith("user nobody has no lingering: systemd stops your user manager")
    assert "`loginctl enable-linger nobody`" in warning
    assert linger_warning(ctx, str(linger)) is None


def test_no_warning_with_lingering(ctx: Context, tmp_path: Path) -> None:
    linger = tmp_path / "linger"
    linger.mkdir()
    (linger / "nobody").touch()
    assert linger_warning(ctx, str(linger)) is None


def test_no_warning_for_root_or_system_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.getuid", lambda: 0)
    assert linger_warning(Context(user=True, environ={}, state_dir=str(tmp_path)), str(tmp_path)) is None
    monkeypatch.setattr("os.getuid", lambda: NOBODY.pw_uid)
    assert linger_warning(Context(user=False, environ={}, state_dir=str(tmp_path)), str(tmp_path)) is None
