"""Open a file with another user's rights, from a process running as root.

pmsd often runs as root on behalf of apps that run as other users. A file such an app writes (its log file)
must be opened with the app user's rights: opened by root, a path the user controls (a symlink swapped in for
`out.log`) would give the app a root-opened descriptor to any file on the system, and a file that did not exist
would be created owned by root. A forked child takes the user's uid, gid and groups, opens the file (creating
it, and its missing parent directories, as that user) and hands the descriptor back over a socket pair
(SCM_RIGHTS): the kernel checks every path component against the user, so a symlink only reaches what the
user could reach anyway.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import pwd
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    """Who a process runs as: uid, primary gid and supplementary groups (as initgroups(3) gives a login)."""

    uid: int
    gid: int
    groups: tuple[int, ...]


def identity_of(user: str, group: str | None = None) -> Identity:
    """The identity systemd gives a service with User=`user` (and Group=`group`); KeyError if unknown."""
    entry = pwd.getpwuid(int(user)) if _numeric(user) else pwd.getpwnam(user)
    gid = entry.pw_gid
    if group is not None:
        gid = int(group) if _numeric(group) else grp.getgrnam(group).gr_gid
    return Identity(entry.pw_uid, gid, tuple(os.getgrouplist(entry.pw_name, gid)))


def _numeric(name: str) -> bool:
    """A uid or gid as systemd reads one (parse_uid()): ASCII digits. "²" or "٣", which str.isdigit() takes and
    int() reads or fails on, are names to systemd."""
    return name.isascii() and name.isdigit()


def open_as(identity: Identity, path: str, flags: int, mode: int = 0o640, make_parents: bool = False) -> int:
    """A descriptor for `path`, opened by `identity`; OSError with the child's errno when it could not."""
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    pid = os.fork()
    if pid == 0:  # the child: never returns
        parent_end.close()
        _child_open(child_end, identity, path, flags | os.O_CLOEXEC, mode, make_parents)
    child_end.close()
    try:
        message, fds, _flags, _address = socket.recv_fds(parent_end, 16, 1)
    finally:
        parent_end.close()
        os.waitpid(pid, 0)
    if fds:
        return fds[0]
    code = int(message.decode() or errno.EIO)
    raise OSError(code, os.strerror(code), path)


def _child_open(channel: socket.socket, identity: Identity, path: str, flags: int, mode: int,
                make_parents: bool) -> None:
    status = 0
    try:
        os.setgroups(list(identity.groups))
        os.setresgid(identity.gid, identity.gid, identity.gid)
        os.setresuid(identity.uid, identity.uid, identity.uid)
        if make_parents:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        fd = os.open(path, flags, mode)
        socket.send_fds(channel, [b""], [fd])
    except OSError as error:
        with contextlib.suppress(OSError):
            channel.send(str(error.errno or errno.EIO).encode())
    except BaseException:
        status = 1
    finally:
        os._exit(status)
