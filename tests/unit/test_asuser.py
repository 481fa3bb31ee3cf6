"""Opening files with an app user's rights (issue 11 item 2): a symlink the user swapped in reaches only what
the user could reach, and new files and directories belong to the user."""

from __future__ import annotations

import errno
import os
import pwd
from pathlib import Path

import pytest

from pmsd.linux.asuser import Identity, identity_of, open_as

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
NOBODY = pwd.getpwnam("nobody")
APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT


@pytest.fixture
def nobody() -> Identity:
    return identity_of("nobody")


def test_identity_of_a_name_and_a_uid() -> None:
    by_name, by_uid = identity_of("nobody"), identity_of(str(NOBODY.pw_uid))
    assert by_name == by_uid
    assert (by_name.uid, by_name.gid) == (NOBODY.pw_uid, NOBODY.pw_gid)
    with pytest.raises(KeyError):
        identity_of("no-such-user-here")


def test_a_new_file_and_its_directories_belong_to_the_user(nobody_dir: Path, nobody: Identity) -> None:
    path = nobody_dir / "logs" / "deep" / "out.log"
    fd = open_as(nobody, str(path), APPEND, make_parents=True)
    try:
        os.write(fd, b"hello\n")
    finally:
        os.close(fd)
    assert path.read_text() == "hello\n"
    assert (path.stat().st_uid, (nobody_dir / "logs" / "deep").stat().st_uid) == (NOBODY.pw_uid, NOBODY.pw_uid)


def test_a_symlink_to_a_root_only_file_is_refused(nobody_dir: Path, nobody: Identity, tmp_path: Path) -> None:
    secret = tmp_path / "root-only"
    secret.write_text("secret\n")
    secret.chmod(0o600)
    (nobody_dir / "out.log").symlink_to(secret)
    with pytest.raises(OSError) as raised:
        open_as(nobody, str(nobody_dir / "out.log"), APPEND)
    assert raised.value.errno == errno.EACCES
    assert secret.read_text() == "secret\n"


def test_a_file_in_a_root_directory_cannot_be_created(nobody: Identity, tmp_path: Path) -> None:
    with pytest.raises(OSError) as raised:
        open_as(nobody, str(tmp_path / "out.log"), APPEND)
    assert raised.value.errno == errno.EACCES
    assert not (tmp_path / "out.log").exists()
