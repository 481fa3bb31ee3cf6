"""Test app: a minimal HTTP/1.1 server on a socket inherited the sd_listen_fds(3) way, standard library only.

systemd (or pmsd's cluster mode, through a socket unit) passes the listening socket as fd 3 with
LISTEN_FDS=1 and LISTEN_PID=<this pid>. Several instances may share it: the kernel hands each connection to one
of them, so accept() can find nothing (another instance was quicker) and the socket is used non-blocking.

Every response is 200 with this process's pid as the body and `Connection: close`. SIGINT/SIGTERM stop the
accepting; connections already accepted are still answered, then the process exits 0.

Environment: READY_DELAY_MS waits that long before accepting, then sends READY=1 to $NOTIFY_SOCKET (for
Type=notify units); TRACE=1 prints one line per event (for tests).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import sys
import time

SD_LISTEN_FDS_START = 3
MAX_HEADER_BYTES = 64 * 1024
TRACE = os.environ.get("TRACE") == "1"


def trace(line: str) -> None:
    if TRACE:
        print(f"listen_fds {os.getpid()} {line}", flush=True)


def inherited_socket() -> socket.socket:
    """The first socket systemd passed, as sd_listen_fds(3) defines it; exits 2 when there is none."""
    count = os.environ.get("LISTEN_FDS")
    if count is None or os.environ.get("LISTEN_PID") != str(os.getpid()) or not count.isdigit() or int(count) < 1:
        print("listen_fds.py: no socket passed in (LISTEN_FDS/LISTEN_PID are not set for this process); "
              "run it from a systemd socket unit or in pmsd cluster mode", file=sys.stderr)
        sys.exit(2)
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):  # children have other pids: don't mislead them
        os.environ.pop(name, None)
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)  # family and type are read from the fd
    sock.setblocking(False)
    return sock


def sd_notify(message: str) -> None:
    """Send one sd_notify(3) message to $NOTIFY_SOCKET, if the service manager gave one."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as notify:
        notify.connect(address)
        notify.sendall(message.encode())


class Connection:
    """One accepted connection: read a request, answer it, close."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = b""
        self.outgoing = b""

    def on_readable(self) -> bool:
        """Read what arrived; False when the connection is finished with (closed by the peer, or garbage)."""
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not data:
            return False
        self.received += data
        head, separator, body = self.received.partition(b"\r\n\r\n")
        if not separator:
            return len(self.received) <= MAX_HEADER_BYTES
        if len(body) < _content_length(head):
            return True
        payload = f"{os.getpid()}\n".encode()
        self.outgoing = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            + f"Content-Length: {len(payload)}\r\nX-Pid: {os.getpid()}\r\n".encode()
            + b"Connection: close\r\n\r\n" + payload
        )
        return True

    def on_writable(self) -> bool:
        """Write what is pending; False once everything is written (the connection is then closed)."""
        try:
            sent = self.sock.send(self.outgoing)
        except BlockingIOError:
            return True
        except OSError:
            return False
        self.outgoing = self.outgoing[sent:]
        return bool(self.outgoing)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return int(value.strip())
    return 0


def catch_stop_signals() -> tuple[socket.socket, socket.socket]:
    """SIGINT and SIGTERM arrive as bytes (their numbers) on the first socket, for the selector to see; the
    second is the end Python writes them to, which must stay open."""
    wakeup_read, wakeup_write = socket.socketpair()
    wakeup_read.setblocking(False)
    wakeup_write.setblocking(False)
    signal.set_wakeup_fd(wakeup_write.fileno(), warn_on_full_buffer=False)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: None)
    return wakeup_read, wakeup_write


def serve(listener: socket.socket, wakeup_read: socket.socket) -> None:
    selector = selectors.DefaultSelector()  # epoll on Linux
    selector.register(wakeup_read, selectors.EVENT_READ)
    selector.register(listener, selectors.EVENT_READ)
    connections: dict[socket.socket, Connection] = {}
    accepting = True
    trace(f"listening {listener.getsockname()}")
    while accepting or connections:
        for key, _events in selector.select():
            sock = key.fileobj
            if sock is wakeup_read:
                try:
                    signals = wakeup_read.recv(64)
                except BlockingIOError:
                    continue
                if accepting and signals:
                    accepting = False
                    trace(f"shutdown {signal.Signals(signals[0]).name}")
                    selector.unregister(listener)
                    listener.close()  # our copy only: the service manager keeps the socket listening
            elif sock is listener:
                if accepting:
                    _accept(listener, selector, connections)
            else:
                assert isinstance(sock, socket.socket)
                _service(connections[sock], selector, connections)
    trace("exit 0")


def _accept(listener: socket.socket, selector: selectors.BaseSelector, connections: dict[socket.socket, Connection],
            ) -> None:
    try:
        sock, peer = listener.accept()
    except (BlockingIOError, InterruptedError):
        return  # another instance took it
    sock.setblocking(False)
    connections[sock] = Connection(sock)
    selector.register(sock, selectors.EVENT_READ)
    trace(f"accepted {peer}")


def _service(connection: Connection, selector: selectors.BaseSelector,
             connections: dict[socket.socket, Connection]) -> None:
    sock = connection.sock
    alive = connection.on_writable() if connection.outgoing else connection.on_readable()
    if alive and connection.outgoing:
        selector.modify(sock, selectors.EVENT_WRITE)
        return
    if alive:
        return
    selector.unregister(sock)
    del connections[sock]
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    sock.close()
    trace("closed")


def main() -> None:
    listener = inherited_socket()
    wakeup_read, _wakeup_write = catch_stop_signals()  # a stop during the warm-up is seen once serving starts
    ready_delay = os.environ.get("READY_DELAY_MS")
    if ready_delay is not None:
        time.sleep(int(ready_delay) / 1000)  # pretend to warm up; connections wait in the socket's backlog
        sd_notify("READY=1")
    serve(listener, wakeup_read)
    sys.exit(0)


if __name__ == "__main__":
    main()
