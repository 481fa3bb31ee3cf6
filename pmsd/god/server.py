"""The Unix socket side of god's API: accept, check the peer, split lines, hand requests to god."""

from __future__ import annotations

import array
import contextlib
import errno
import os
import socket
import struct
from collections.abc import Callable, Mapping
from typing import Any

from pmsd.errors import ExitStatus
from pmsd.god.loop import Loop
from pmsd.model.protocol import MAX_LINE, decode, encode, error_reply

Handler = Callable[["Connection", dict[str, Any]], Mapping[str, object] | None]

_UCRED = struct.Struct("iII")  # struct ucred: pid, uid, gid (socket(7), SO_PEERCRED)
MAX_BACKLOG_BYTES = 4 << 20  # a subscriber this far behind is dropped rather than buffered forever
MAX_FDS = 3  # file descriptors one message may carry: the caller's stdin, stdout, stderr ("run")
_FDS_SPACE = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)


class Connection:
    def __init__(self, sock: socket.socket, server: ApiServer) -> None:
        self.sock = sock
        self.server = server
        self.inbox = b""
        self.outbox = b""
        self.subscribed = False
        self.closed = False
        self.writing = False  # the loop calls _flush when the socket can take more (a reply larger than its buffer)
        self.fds: list[int] = []  # received with SCM_RIGHTS, for the request being handled; closed unless taken

    def take_fds(self) -> list[int]:
        """The descriptors that came with the current request; the caller owns (and closes) them."""
        taken, self.fds = self.fds, []
        return taken

    def _close_fds(self) -> None:
        for fd in self.take_fds():
            with contextlib.suppress(OSError):
                os.close(fd)

    def send(self, message: Mapping[str, object]) -> None:
        if self.closed:
            return
        self.outbox += encode(message)
        if self.subscribed and len(self.outbox) > MAX_BACKLOG_BYTES:
            self.close()  # a subscriber this far behind on events; a reply, however large, is sent whole
            return
        self._flush()

    def _flush(self) -> None:
        if self.closed:
            return
        rest = send_some(self.sock, self.outbox)
        if rest is None:
            self.close()
            return
        self.outbox = rest
        # What the peer's buffer could not take (a large reply, a slow reader) goes out when the socket can take
        # it. (Regression: it used to wait for the next message, and a 1,000-app `ls` for a watchdog tick per
        # socket buffer.)
        self._want_writable(bool(rest))

    def _want_writable(self, wanted: bool) -> None:
        if wanted == self.writing or self.closed:
            return
        with contextlib.suppress(KeyError, ValueError):  # not watched (a refused peer): it is closed at once
            self.server.loop.set_writer(self.sock.fileno(), self._flush if wanted else None)
            self.writing = wanted

    def on_readable(self) -> None:
        try:
            chunk, ancillary, _, _ = self.sock.recvmsg(65536, _FDS_SPACE, socket.MSG_CMSG_CLOEXEC)
        except BlockingIOError:
            return
        except OSError:
            chunk, ancillary = b"", []
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
                self.fds.extend(fds)
        if not chunk:
            self.close()
            return
        self.inbox += chunk
        while b"\n" in self.inbox:
            line, self.inbox = self.inbox.split(b"\n", 1)
            if line.strip():
                self._handle(line)
            self._close_fds()  # descriptors no request took (sent with a method that wants none)
        if len(self.inbox) > MAX_LINE:
            self.send(error_reply(None, "request too long", status=ExitStatus.USAGE))
            self.close()

    def _handle(self, line: bytes) -> None:
        try:
            request = decode(line)
        except ValueError as error:
            self.send(error_reply(None, f"not a JSON request: {error}", status=ExitStatus.USAGE))
            return
        reply = self.server.handler(self, request)
        if reply is not None:
            self.send(reply)

    def close(self) -> None:
        self._close_fds()
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(KeyError, ValueError):
            self.server.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        self.server.connections.discard(self)


class ApiServer:
    def __init__(self, path: str, loop: Loop, handler: Handler) -> None:
        self.path = path
        self.loop = loop
        self.handler = handler
        self.connections: set[Connection] = set()
        self.sock = listen_unix(path)
        loop.add_reader(self.sock.fileno(), self._accept)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE):
                    return
                raise
            client.setblocking(False)
            connection = Connection(client, self)
            uid = peer_uid(client)
            if uid != os.getuid():
                # The file mode already keeps others out; this holds even if someone loosens it.
                connection.send(error_reply(None, f"uid {uid} may not use this pmsd god (owner uid {os.getuid()})",
                                            status=ExitStatus.PERMISSION))
                connection.close()
                continue
            self.connections.add(connection)
            self.loop.add_reader(client.fileno(), connection.on_readable)

    def broadcast(self, message: Mapping[str, object]) -> None:
        for connection in list(self.connections):
            if connection.subscribed:
                connection.send(message)

    def close(self) -> None:
        for connection in list(self.connections):
            connection.close()
        with contextlib.suppress(KeyError, ValueError):
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def send_some(sock: socket.socket, data: bytes) -> bytes | None:
    """Send what a non-blocking socket takes now: the rest (b"" when all went), None when the peer is gone."""
    while data:
        try:
            sent = sock.send(data)
        except BlockingIOError:
            return data
        except OSError:
            return None
        data = data[sent:]
    return data


def listen_unix(path: str, backlog: int = 64) -> socket.socket:
    """A non-blocking listening socket at `path`, for god's user only (mode 0600), in place of one a killed god
    left."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a socket left by a god that was killed
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    old_umask = os.umask(0o177)  # created 0600: there is no moment when others could connect
    try:
        sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old_umask)
    return sock


def peer_uid(sock: socket.socket) -> int:
    _, uid, _ = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return int(uid)
