"""`start` validates every app before any effect: no D-Bus (so no god start), no lock, nothing written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NoReturn

import pytest

from pmsd.api import lifecycle
from pmsd.api.lifecycle import StartOptions, start
from pmsd.context import Context
from pmsd.errors import NotFoundError, UsageError


class _NoSystemd(Context):
    @property
    def manager(self) -> NoReturn:
        raise AssertionError("validation must come before any D-Bus call")


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ok.py").write_text("print('ok')\n")
    # God enabled (no PMSD_NO_GOD): starting it would be the first D-Bus call.
    return _NoSystemd(user=True, environ={"PATH": os.environ.get("PATH", "")},
                      state_dir=str(tmp_path / "state"))


def _ecosystem(tmp_path: Path, apps: list[dict[str, object]]) -> str:
    path = tmp_path / "ecosystem.json"
    path.write_text(json.dumps({"apps": apps}))
    return str(path)


def test_a_missing_script_in_the_last_app_stops_everything(ctx: Context, tmp_path: Path) -> None:
    path = _ecosystem(tmp_path, [{"name": "a", "script": "ok.py"}, {"name": "b", "script": "missing.py"}])
    with pytest.raises(UsageError, match="script not found"):
        start(ctx, path)
    assert not os.path.exists(ctx.state_dir)


def test_duplicate_names_are_refused_before_any_effect(ctx: Context, tmp_path: Path) -> None:
    path = _ecosystem(tmp_path, [{"name": "a", "script": "ok.py"}, {"name": "a", "script": "ok.py"}])
    with pytest.raises(UsageError, match="repeated: a"):
        start(ctx, path)
    assert not os.path.exists(ctx.state_dir)


def test_only_naming_a_missing_app_is_refused_before_any_effect(ctx: Context, tmp_path: Path) -> None:
    path = _ecosystem(tmp_path, [{"name": "a", "script": "ok.py"}])
    with pytest.raises(NotFoundError, match="no app named b"):
        start(ctx, path, StartOptions(only=("b",)))
    assert not os.path.exists(ctx.state_dir)


def test_a_bad_flag_is_refused_before_any_effect(ctx: Context) -> None:
    with pytest.raises(UsageError, match="--max-restarts"):
        start(ctx, "ok.py", StartOptions(overrides={"max_restarts": -1}))
    assert not os.path.exists(ctx.state_dir)


@pytest.mark.parametrize("verb", ["restart", "reload", "stop", "delete", "reset"])
def test_unknown_targets_are_refused_before_any_effect(ctx: Context, verb: str) -> None:
    with pytest.raises(NotFoundError):
        getattr(lifecycle, verb)(ctx, "nothing-here")
    assert not os.path.exists(ctx.state_dir)
