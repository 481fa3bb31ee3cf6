"""pmsd.linux.readiness against real child processes holding a listening socket the test created."""

from __future__ import annotations

import glob
import os
import select
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from pmsd.linux.readiness import epoll_targets, is_accepting, socket_inode, wait_accepting

TIMEOUT = 10.0

# One child program, several behaviours. argv: <mode> <fd of the inherited listening socket>.
CHILD = textwrap.dedent("""
    import selectors, socket, sys
    mode, fd = sys.argv[1], int(sys.argv[2])
    shared = socket.socket(fileno=fd)
    if mode == "epoll":
        print("waiting", flush=True)
        sys.stdin.readline()  # blocked in read(): holds the socket but is not accepting yet
        selector = selectors.EpollSelector()
        selector.register(shared, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                key.fileobj.accept()[0].close()
    elif mode == "accept":
        print("waiting", flush=True)
        while True:
            shared.accept()[0].close()
    elif mode == "other":
        other = socket.create_server(("127.0.0.1", 0))
        selector = selectors.EpollSelector()
        selector.register(other, selectors.EVENT_READ)
        print(other.fileno(), flush=True)
        sys.stdin.readline()
""")

NODE_CHILD = textwrap.dedent("""
    const net = require('net');
    net.createServer((c) => c.end()).listen({fd: Number(process.argv[1])}, () => console.log('listening'));
""")


@pytest.fixture
def shared() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()


def inode_of(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


def spawn(argv: list[str], sock: socket.socket) -> subprocess.Popen[str]:
    return subprocess.Popen([*argv, str(sock.fileno())], pass_fds=(sock.fileno(),), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def spawn_python(mode: str, sock: socket.socket) -> subprocess.Popen[str]:
    return spawn([sys.executable, "-c", CHILD, mode], sock)


def end(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()  # by pid, this child only
    proc.wait(timeout=TIMEOUT)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


def read_line(proc: subprocess.Popen[str], timeout: float = TIMEOUT) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"child {proc.pid} printed nothing within {timeout} s (exit status {proc.poll()})"
    return proc.stdout.readline().strip()


def accepting_soon(pid: int, inode: int) -> bool:
    return wait_accepting(lambda: [pid], lambda _pids: inode, time.monotonic() + TIMEOUT)


def syscall_readable(pid: int) -> bool:
    try:
        for path in glob.glob(f"/proc/{pid}/task/*/syscall"):
            with open(path) as handle:
                handle.read()
    except OSError:
        return False
    return True


def test_socket_inode_reads_the_inherited_socket(shared: socket.socket) -> None:
    proc = spawn_python("epoll", shared)
    try:
        assert read_line(proc) == "waiting"
        assert socket_inode(proc.pid, shared.fileno()) == inode_of(shared)
        assert socket_inode(proc.pid, 0) is None  # a pipe, not a socket
        assert socket_inode(proc.pid, 999) is None  # no such fd
    finally:
        end(proc)


def test_holding_the_socket_is_not_accepting_until_the_epoll_loop_starts(shared: socket.socket) -> None:
    proc = spawn_python("epoll", shared)
    try:
        assert read_line(proc) == "waiting"
        assert not is_accepting([proc.pid], inode_of(shared))
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert accepting_soon(proc.pid, inode_of(shared))
    finally:
        end(proc)


def test_thread_blocked_in_accept_is_accepting(shared: socket.socket) -> None:
    proc = spawn_python("accept", shared)
    try:
        assert read_line(proc) == "waiting"
        if not syscall_readable(proc.pid):
            pytest.skip("/proc/<pid>/task/*/syscall is not readable here")
        # No epoll in this child: only the accept() check can say yes.
        links = [os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{proc.pid}/fd")]
        assert "anon_inode:[eventpoll]" not in links
        assert accepting_soon(proc.pid, inode_of(shared))
    finally:
        end(proc)


def test_epoll_on_another_socket_is_not_accepting(shared: socket.socket) -> None:
    proc = spawn_python("other", shared)
    try:
        other_fd = int(read_line(proc))
        assert not is_accepting([proc.pid], inode_of(shared))
        other = socket_inode(proc.pid, other_fd)
        assert other is not None and other != inode_of(shared)
        assert is_accepting([proc.pid], other)  # the check itself works on this child
    finally:
        end(proc)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_listening_on_the_inherited_fd_is_accepting(shared: socket.socket) -> None:
    node = shutil.which("node")
    assert node is not None
    proc = spawn([node, "-e", NODE_CHILD], shared)
    try:
        assert read_line(proc) == "listening"
        assert accepting_soon(proc.pid, inode_of(shared))
    finally:
        end(proc)


def test_vanished_pid_is_not_accepting_and_does_not_stop_the_scan(shared: socket.socket) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=TIMEOUT)
    assert not is_accepting([gone.pid], inode_of(shared))
    assert socket_inode(gone.pid) is None
    proc = spawn_python("epoll", shared)
    try:
        assert read_line(proc) == "waiting"
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert wait_accepting(lambda: [gone.pid, proc.pid], lambda _pids: inode_of(shared),
                              time.monotonic() + TIMEOUT)
    finally:
        end(proc)


def test_wait_accepting_gives_up_at_the_deadline_but_checks_once() -> None:
    start = time.monotonic()
    assert not wait_accepting(lambda: [], lambda _pids: None, start + 0.1)
    assert 0.1 <= time.monotonic() - start < 2.0
    calls: list[float] = []

    def pids_of() -> list[int]:
        calls.append(time.monotonic())
        return []

    assert not wait_accepting(pids_of, lambda _pids: None, start - 1)  # deadline already passed
    assert len(calls) == 1


def test_epoll_targets_parses_the_kernel_format() -> None:
    fdinfo = ("pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1038\n"
              "tfd:        3 events:       19 data:                3  pos:0 ino:5ffcb sdev:9\n"
              "tfd:        7 events:       19 data:       7fff00000007  pos:0 ino:10 sdev:9\n")
    assert epoll_targets(fdinfo) == {0x5FFCB, 0x10}  # not 1038: that is the epoll file's own inode
