"""`pmsd flush` empties an app's files with the app user's rights (issue 11 item 2)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from pmsd.api.flush import Flushed, flush
from pmsd.context import Context
from tests.unit.helpers import make_record

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")


def _system_app(tmp_path: Path, out_file: Path) -> Context:
    ctx = Context(user=False, environ={}, state_dir=str(tmp_path / "state"))
    with ctx.registry.transaction() as data:
        data.apps.append(make_record(pm_id=0, user="nobody", out_file=str(out_file)))
        data.next_id = 1
    return ctx


def _files(done: list[Flushed]) -> list[str]:
    """The files emptied (stderr, not in a file here, goes to the journal)."""
    return [flushed.path for flushed in done if flushed.path]


def test_a_symlink_swapped_in_for_the_log_is_not_followed_as_root(tmp_path: Path, nobody_dir: Path) -> None:
    secret = tmp_path / "root-only"
    secret.write_text("do not truncate\n")
    secret.chmod(0o600)
    (nobody_dir / "out.log").symlink_to(secret)
    ctx = _system_app(tmp_path, nobody_dir / "out.log")
    assert _files(flush(ctx, "all")) == []
    assert secret.read_text() == "do not truncate\n"
    assert ctx.warnings == [f"app 'main': {nobody_dir}/out.log not emptied: Permission denied (as user nobody)"]


def test_the_users_own_file_is_emptied(tmp_path: Path, nobody_dir: Path) -> None:
    log = nobody_dir / "out.log"
    log.write_text("old lines\n")
    nobody = pwd.getpwnam("nobody")
    os.chown(log, nobody.pw_uid, nobody.pw_gid)
    ctx = _system_app(tmp_path, log)
    assert _files(flush(ctx, "all")) == [str(log)]
    assert log.read_text() == "" and ctx.warnings == []


def test_a_missing_file_is_nothing_to_empty(tmp_path: Path, nobody_dir: Path) -> None:
    assert _files(flush(_system_app(tmp_path, nobody_dir / "never-written.log"), "all")) == []
