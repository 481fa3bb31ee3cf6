"""filter_env through pmsd.api.launch.write_environment: the caller's environment is filtered when it is captured
(start, restart --update-env); a restart that keeps the stored environment does not capture it again."""

from __future__ import annotations

import os
from pathlib import Path

from pmsd.api.launch import write_environment
from pmsd.context import Context
from pmsd.state.envfiles import read_env_file
from tests.unit.helpers import make_record

CALLER = {"HOME": "/home/me", "PATH": "/usr/bin", "AWS_SECRET_KEY": "s3cr3t", "GITHUB_TOKEN": "ghp"}


def _written(tmp_path: Path, filter_env: bool | tuple[str, ...], user_mode: bool = True,
             user: str | None = None) -> dict[str, str]:
    ctx = Context(user=user_mode, environ=CALLER, state_dir=str(tmp_path))
    record = make_record(pm_id=5, env={"OWN": "1"}, filter_env=filter_env, user=user)
    write_environment(ctx, record, fresh=True)
    return read_env_file(ctx.registry.record_env_file(record))


def test_filter_env_true_leaves_only_the_definition_and_pm2_variables(tmp_path: Path) -> None:
    assert _written(tmp_path, True) == {"OWN": "1", "pm_id": "5", "name": "main", "namespace": "default",
                                        "NODE_APP_INSTANCE": "0"}


def test_filter_env_strings_drop_matching_caller_variables(tmp_path: Path) -> None:
    env = _written(tmp_path, ("SECRET", "TOKEN"))
    assert "AWS_SECRET_KEY" not in env and "GITHUB_TOKEN" not in env
    assert env["HOME"] == "/home/me" and env["OWN"] == "1"


def test_without_filter_env_the_caller_environment_is_kept(tmp_path: Path) -> None:
    assert _written(tmp_path, False)["AWS_SECRET_KEY"] == "s3cr3t"


def test_filter_env_adds_nothing_for_an_app_run_as_another_user(tmp_path: Path) -> None:
    # A system app run as another user gets no caller environment at all; filter_env cannot give any back.
    for filter_env in (False, True, ("NOTHING_MATCHES",)):
        env = _written(tmp_path, filter_env, user_mode=False, user="nobody")
        assert not set(CALLER) & set(env), filter_env


def test_a_restart_keeping_the_stored_environment_does_not_capture_the_caller_again(tmp_path: Path) -> None:
    ctx = Context(user=True, environ=CALLER, state_dir=str(tmp_path))
    record = make_record(pm_id=6, filter_env=True)
    write_environment(ctx, record, fresh=True)
    write_environment(ctx, record, fresh=False)
    assert "HOME" not in read_env_file(ctx.registry.record_env_file(record))
    assert os.stat(ctx.registry.record_env_file(record)).st_mode & 0o777 == 0o600
