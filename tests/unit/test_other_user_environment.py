"""A system app run as another user never gets the caller's environment (issue 11 item 3): not root's HOME,
USER or LOGNAME (systemd sets the user's own), nor a secret exported in root's shell."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from pmsd.api.launch import write_environment
from pmsd.context import Context
from pmsd.definition.environment import runs_as_another_user
from pmsd.state.envfiles import read_env_file
from tests.unit.helpers import make_record

ROOT_SHELL = {"HOME": "/root", "USER": "root", "LOGNAME": "root", "SHELL": "/bin/bash",
              "ROOT_DB_PASSWORD": "hunter2", "PATH": "/root/bin:/usr/bin"}


def _environment(tmp_path: Path, user_mode: bool, user: str | None) -> dict[str, str]:
    ctx = Context(user=user_mode, environ=ROOT_SHELL, state_dir=str(tmp_path))
    record = make_record(pm_id=3, user=user, env={"APP_SETTING": "1"})
    write_environment(ctx, record, fresh=True)
    return read_env_file(ctx.registry.record_env_file(record))


def test_system_app_as_another_user_gets_none_of_the_callers_environment(tmp_path: Path) -> None:
    env = _environment(tmp_path, user_mode=False, user="nobody")
    assert not set(ROOT_SHELL) & set(env)
    assert env["APP_SETTING"] == "1" and env["pm_id"] == "3"


def test_system_app_as_the_caller_keeps_it_as_pm2_does(tmp_path: Path) -> None:
    me = pwd.getpwuid(os.getuid()).pw_name
    assert _environment(tmp_path, user_mode=False, user=me)["ROOT_DB_PASSWORD"] == "hunter2"
    assert _environment(tmp_path, user_mode=False, user=None)["ROOT_DB_PASSWORD"] == "hunter2"


def test_user_mode_keeps_it(tmp_path: Path) -> None:
    assert _environment(tmp_path, user_mode=True, user=None)["HOME"] == "/root"


@pytest.mark.parametrize(("user", "expected"), [
    (None, False), ("nobody", True), (str(pwd.getpwnam("nobody").pw_uid), True), ("no-such-user-here", True),
    (pwd.getpwuid(os.getuid()).pw_name, False), (str(os.getuid()), False),
])
def test_who_is_another_user(user: str | None, expected: bool) -> None:
    assert runs_as_another_user(user, system=True, caller_uid=os.getuid()) is expected
    assert runs_as_another_user(user, system=False, caller_uid=os.getuid()) is False
