"""pmsd.linux.heldfiles: kernel files god keeps open between listings (issue 17)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

from pmsd.linux.heldfiles import HeldFiles, raise_open_files_limit
from pmsd.linux.procfs import read_file


def _fields(content: bytes | None) -> list[bytes]:
    assert content is not None
    return content.rsplit(b")", 1)[1].split()


def test_a_held_file_reads_what_opening_it_afresh_reads() -> None:
    held = HeldFiles()
    path = f"/proc/{os.getpid()}/stat"
    first = held.read(path)
    assert len(held) == 1
    sum(range(2_000_000))  # some CPU time, so that the figures move
    again, fresh = held.read(path), read_file(path)
    assert len(held) == 1  # the same file, read again
    assert _fields(again)[:3] == _fields(fresh)[:3]
    assert int(_fields(again)[11]) >= int(_fields(first)[11])
    held.close()
    assert len(held) == 0


def test_a_file_whose_kernel_object_is_gone_is_opened_again_by_its_path() -> None:
    """cgroupfs answers ENODEV (procfs ESRCH) once the object behind an open file is gone: the file is dropped
    and its path opened again; here nothing has that path any more."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    held = HeldFiles()
    path = f"/proc/{child.pid}/stat"
    try:
        assert held.read(path) is not None
    finally:
        child.kill()
        child.wait()
    assert held.read(path) is None
    assert len(held) == 0


def test_sweep_closes_the_files_no_read_asked_for_since_the_last_sweep() -> None:
    held = HeldFiles()
    mine, init = f"/proc/{os.getpid()}/stat", "/proc/self/status"
    held.read(mine)
    held.read(init)
    held.sweep()
    assert len(held) == 2
    held.read(mine)
    held.sweep()
    assert len(held) == 1
    held.sweep()
    assert len(held) == 0


def test_past_its_share_of_the_limit_a_file_is_read_without_being_kept() -> None:
    held = HeldFiles(most=1)
    held.read(f"/proc/{os.getpid()}/stat")
    assert held.read("/proc/self/status") is not None
    assert len(held) == 1
    held.close()


def test_a_forked_child_holds_none_and_has_the_limit_god_started_with() -> None:
    """god's runner forks a child per command: it must not keep god's files, nor the limit god raised for
    them (a program it runs would inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held = HeldFiles()
    held.read(f"/proc/{os.getpid()}/stat")
    raise_open_files_limit()
    try:
        pid = os.fork()
        if pid == 0:
            ok = len(held) == 0 and resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert len(held) == 1
    finally:
        held.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
