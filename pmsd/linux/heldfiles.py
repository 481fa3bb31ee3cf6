"""Kernel files god reads on every `pmsd ls`, kept open between reads (issue 17).

Opening a file deep in cgroupfs costs a path walk, ~7 us each here; reading an open one again with pread() at
offset 0 costs ~1 us. `ls` of 1,000 apps reads two such files per app (memory and cpu.stat), so god keeps them
open: ~20 ms less per listing.

A held file never serves a stale figure. When systemd removes a unit's cgroup (it stopped, or restarts into a
new cgroup at the same path), reads from the old file fail with ENODEV (kernfs_fop_read_iter(), fs/kernfs/file.c);
the file is then opened again by its path. While the old cgroup lives, no other one can have its path, so a read
that succeeds reads what opening the path afresh would.

Files not read by a whole listing (their app stopped or is gone) are closed after it (`sweep`). The number held
stays under a quarter of the process's soft RLIMIT_NOFILE, which god raises (raise_open_files_limit), leaving the
rest to the apps' log pipes and files and god's connections: past it, files are opened for each read, as
elsewhere. A child forked from god (pmsd.god.runner) closes them and gets the limit god started with back.
"""

from __future__ import annotations

import os
import resource
import weakref

from pmsd.linux.procfs import read_file

_BYTES = 1 << 16  # a cgroup file's figures fit many times over
# systemd gives services a soft limit of 1,024 (DefaultLimitNOFILE=, systemd-system.conf(5)) and asks programs
# that need more, and use no select(), to raise it themselves; god polls with epoll. 2 files per app: 8,192 apps.
_SOFT_LIMIT_WANTED = 1 << 16
_SOFT_LIMIT_AT_START = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
_ALL: weakref.WeakSet[HeldFiles] = weakref.WeakSet()


def raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _SOFT_LIMIT_WANTED if hard == resource.RLIM_INFINITY else min(hard, _SOFT_LIMIT_WANTED)
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _in_forked_child() -> None:
    """A forked child holds none of these files, and has the soft limit god had at its start."""
    for held in list(_ALL):
        held.forget()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != _SOFT_LIMIT_AT_START:
        resource.setrlimit(resource.RLIMIT_NOFILE, (_SOFT_LIMIT_AT_START, hard))


os.register_at_fork(after_in_child=_in_forked_child)


class HeldFiles:
    def __init__(self, most: int | None = None) -> None:
        self._fds: dict[str, int] = {}
        self._read_since_sweep: set[str] = set()
        self._most = most
        _ALL.add(self)

    def _room(self) -> bool:
        most = self._most if self._most is not None else resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 4
        return len(self._fds) < most

    def __len__(self) -> int:
        return len(self._fds)

    def read(self, path: str) -> bytes | None:
        """The file's bytes now, None when it cannot be read (as pmsd.linux.procfs.read_file)."""
        fd = self._fds.get(path)
        if fd is not None:
            try:
                content = os.pread(fd, _BYTES, 0)
            except OSError:  # ENODEV: the cgroup was removed; another may have its path now
                self._close(path)
            else:
                self._read_since_sweep.add(path)
                return content
        if not self._room():
            return read_file(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            content = os.pread(fd, _BYTES, 0)
        except OSError:
            os.close(fd)
            return None
        self._fds[path] = fd
        self._read_since_sweep.add(path)
        return content

    def sweep(self) -> None:
        """Close the files that no read asked for since the last sweep."""
        for path in self._fds.keys() - self._read_since_sweep:
            self._close(path)
        self._read_since_sweep.clear()

    def close(self) -> None:
        for path in list(self._fds):
            self._close(path)

    def forget(self) -> None:
        """Close them all, for good (a forked child's copies)."""
        self.close()
        self._most = 0

    def _close(self, path: str) -> None:
        os.close(self._fds.pop(path))
