"""Is a cluster instance accepting connections on the shared listening socket?

Why: a cluster app runs as N systemd instances that all inherit one listening socket (fd 3, passed by the
app's socket unit). During a rolling reload pmsd restarts one instance at a time and must not stop the next
old instance until the new one is serving. Connecting to the port proves nothing: the kernel hands the
connection to whichever instance happens to be waiting, which may well be an old one.

How: look at the new instance's own processes in /proc. An instance counts as accepting once one of its
processes either

* has the listening socket registered in an epoll instance (what libuv, asyncio, uvicorn, gunicorn's
  async workers and most event loops do). The epoll fd's ``/proc/<pid>/fdinfo/<fd>`` lists one line per
  watched file, printed by ``ep_show_fdinfo()`` in the kernel's fs/eventpoll.c as
  ``tfd: %8d events: %8x data: %16llx pos:%lli ino:%lx sdev:%x``; ``ino`` (hex) is the watched file's
  inode, which for a socket is the number in ``socket:[N]``. Socket, pipe and anon-inode numbers all come
  from the kernel's one ``get_next_ino()`` counter, so matching the number alone does not confuse them.
* or has a thread blocked in accept()/accept4() on the socket: ``/proc/<pid>/task/<tid>/syscall`` gives the
  syscall number (decimal) and its arguments (hex), the first being the fd. Syscall numbers are per
  architecture; on an unknown one this check is skipped.

Limits:

* Reading ``/proc/<pid>/syscall`` needs ptrace access to the process (Yama's ptrace_scope=1 refuses it for
  non-descendants, and the instances are children of the systemd manager, not of pmsd). When it is refused,
  the accept() check is treated as "not known" and ignored; the epoll check needs only same-uid access to
  fd/ and fdinfo/, which ptrace_scope does not restrict.
* select() and poll() keep their fd sets in user memory, invisible without ptrace: apps that wait with them
  (gunicorn's sync workers, many small servers) are never seen as accepting. Such apps should signal
  readiness themselves (``wait_ready`` with sd_notify READY=1) instead. Likewise io_uring accepts, and
  threads blocked in accept() when ptrace access is refused.
* "Registered" is not "serving": a process that registers the socket and then blocks elsewhere counts as
  accepting. That is the best /proc can tell without the app's help.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable

from pmsd.linux.procfs import cgroup_pids

# accept and accept4, from each architecture's syscall table (arch/x86/entry/syscalls/syscall_64.tbl and
# the generic include/uapi/asm-generic/unistd.h that arm64 uses).
_ACCEPT_SYSCALLS: dict[str, frozenset[int]] = {
    "x86_64": frozenset({43, 288}),
    "aarch64": frozenset({202, 242}),
    "arm64": frozenset({202, 242}),
}
_EPOLL_LINK = "anon_inode:[eventpoll]"
_FIRST_POLL = 0.001
_MAX_POLL = 0.02


def socket_inode(pid: int, fd: int = 3) -> int | None:
    """The inode of ``/proc/<pid>/fd/<fd>`` when that fd is a socket, else None (also when pid is gone)."""
    try:
        link = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return None
    if not (link.startswith("socket:[") and link.endswith("]")):
        return None
    try:
        return int(link[len("socket:["):-1])
    except ValueError:
        return None


def first_socket_inode(pids: Iterable[int], fd: int = 3) -> int | None:
    """The socket inode at ``fd`` in the first of ``pids`` that has a socket there."""
    for pid in pids:
        inode = socket_inode(pid, fd)
        if inode is not None:
            return inode
    return None


def epoll_targets(fdinfo: str) -> set[int]:
    """The inodes an epoll instance watches, from the text of its ``/proc/<pid>/fdinfo/<fd>``."""
    inodes: set[int] = set()
    for line in fdinfo.splitlines():
        if not line.startswith("tfd:"):
            continue
        for field in line.split():
            if field.startswith("ino:"):
                with contextlib.suppress(ValueError):
                    inodes.add(int(field[len("ino:"):], 16))
                break
    return inodes


def is_accepting(pids: Iterable[int], inode: int) -> bool:
    """Whether any of ``pids`` watches socket ``inode`` with epoll or has a thread blocked accepting on it.

    Processes that vanish or refuse access while being scanned count as not accepting.
    """
    accept_calls = _ACCEPT_SYSCALLS.get(os.uname().machine, frozenset())
    return any(_pid_accepting(pid, inode, accept_calls) for pid in pids)


def wait_accepting(pids_of: Callable[[], list[int]], inode_of: Callable[[list[int]], int | None],
                   deadline: float) -> bool:
    """Poll until the processes ``pids_of()`` accept on the socket ``inode_of(pids)``; False at ``deadline``.

    Both callables are asked again on every poll: a freshly started instance may not have exec'd (or even
    exist) yet. ``deadline`` is a ``time.monotonic()`` value; the check runs at least once, even when the
    deadline has already passed. Polls start 1 ms apart and double up to 20 ms.
    """
    interval = _FIRST_POLL
    while True:
        pids = pids_of()
        inode = inode_of(pids) if pids else None
        if inode is not None and is_accepting(pids, inode):
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(interval, remaining))
        interval = min(interval * 2, _MAX_POLL)


def wait_cgroup_accepting(control_group: str, deadline: float, inode: int | None = None, fd: int = 3) -> bool:
    """`wait_accepting` for the processes of a unit's cgroup (its ``ControlGroup`` property).

    Without ``inode``, the shared socket is whatever socket the cgroup's processes hold at ``fd``; pass the
    inode (e.g. read from an old instance with `socket_inode`) when the app may close or move that fd.
    """
    def inode_of(pids: list[int]) -> int | None:
        return inode if inode is not None else first_socket_inode(pids, fd)

    return wait_accepting(lambda: cgroup_pids(control_group), inode_of, deadline)


def _pid_accepting(pid: int, inode: int, accept_calls: frozenset[int]) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:  # gone (FileNotFoundError), or not ours (PermissionError)
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != _EPOLL_LINK:
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as handle:
                watched = epoll_targets(handle.read())
        except OSError:  # fd closed meanwhile, or the process exited (ESRCH: ProcessLookupError)
            continue
        if inode in watched:
            return True
    return bool(accept_calls) and _blocked_in_accept(pid, inode, accept_calls)


def _blocked_in_accept(pid: int, inode: int, accept_calls: frozenset[int]) -> bool:
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall") as handle:
                # "<nr> <arg1> ... <sp> <pc>" while blocked in a syscall, "running", or "-1 <sp> <pc>".
                fields = handle.read().split()
        except OSError:  # gone, or ptrace access refused: not known, so not evidence either way
            continue
        try:
            if len(fields) < 2 or int(fields[0]) not in accept_calls:
                continue
            fd = int(fields[1], 16)
        except ValueError:  # "running"
            continue
        if socket_inode(pid, fd) == inode:
            return True
    return False
