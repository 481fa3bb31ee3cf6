"""god's Prometheus endpoint (`pmsd set metrics_listen`): a small HTTP/1.x responder on god's own loop.

GET (or HEAD) /metrics answers the scrape, anything else 404; one request per connection (Connection: close).
The body is computed when a request comes, so a god nobody scrapes does no work for it. Nothing here blocks
the loop: sockets are non-blocking, a request is at most MAX_REQUEST_BYTES, the answer goes out as fast as the
client takes it, and a client that has not sent its request and taken the answer within CLIENT_TIMEOUT_S is
dropped. A client that shuts its sending side before it has read the whole answer loses the rest (HTTP
clients do not: they close when they are done).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

from pmsd.definition.config import METRICS_UNIX, config_value, parse_metrics_listen
from pmsd.god.loop import Loop, Timer
from pmsd.god.server import listen_unix, send_some
from pmsd.render.metrics import CONTENT_TYPE

MAX_REQUEST_BYTES = 8192  # a scraper's request line and headers take a few hundred
CLIENT_TIMEOUT_S = 10.0  # Prometheus' default scrape_timeout
MAX_CLIENTS = 16  # connections served at once; more are closed as they come
METRICS_PATH = "/metrics"


class _Client:
    def __init__(self, sock: socket.socket, listener: MetricsListener) -> None:
        self.sock = sock
        self.listener = listener
        self.inbox = b""
        self.outbox = b""
        self.answering = False
        self.closed = False
        self.timer: Timer = listener.loop.call_later(CLIENT_TIMEOUT_S, self.close)

    def on_readable(self) -> None:
        try:
            chunk = self.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.close()
            return
        if self.answering:
            return  # one request per connection: what follows it is not read
        self.inbox += chunk
        head_end = self.inbox.find(b"\r\n\r\n")
        if head_end < 0:
            head_end = self.inbox.find(b"\n\n")  # bare line feeds, as a person typing into nc sends
        if 0 <= head_end <= MAX_REQUEST_BYTES:
            self._answer(self.listener.respond(self.inbox[:head_end]))
        elif len(self.inbox) > MAX_REQUEST_BYTES:
            self._answer(response(431, "Request Header Fields Too Large", b"request too large\n"))

    def _answer(self, answer: bytes) -> None:
        self.answering = True
        self.outbox = answer
        self._flush()

    def _flush(self) -> None:
        rest = send_some(self.sock, self.outbox) if not self.closed else None
        if rest:  # the rest when the socket can take it
            self.outbox = rest
            self.listener.loop.set_writer(self.sock.fileno(), self._flush)
        else:  # all sent, or the client is gone
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.timer.cancel()
        self.listener.clients.discard(self)
        with contextlib.suppress(KeyError, ValueError):
            self.listener.loop.remove_reader(self.sock.fileno())
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)  # the answer ends here
            # What the client sent beyond its request, read: closing with unread data would reset the connection,
            # and the client could lose the answer still on its way (an oversized request's 431).
            for _ in range(16):
                if not self.sock.recv(65536):
                    break
        self.sock.close()


class MetricsListener:
    """Listens where metrics_listen says, while it says so; `collect` computes the scrape's text."""

    def __init__(self, loop: Loop, collect: Callable[[], str], log: Callable[[str], None], unix_path: str) -> None:
        self.loop = loop
        self.collect = collect
        self.log = log
        self.unix_path = unix_path
        self.listen = ""  # what metrics_listen asked for
        self.sock: socket.socket | None = None
        self.clients: set[_Client] = set()

    def configure(self, config: Mapping[str, Any]) -> None:
        """Follow the global settings (pmsd.definition.config): open, move or close the listening socket. A place
        that could not be listened on is tried again at the next change of settings or apps."""
        try:
            listen = parse_metrics_listen(config_value(config, "metrics_listen"))
        except ValueError as error:
            self.log(f"metrics_listen: {error}; metrics are not served (`pmsd set metrics_listen` fixes it)")
            listen = ""
        if listen == self.listen and (self.sock is not None or not listen):
            return
        self.close()
        self.listen = listen
        if not listen:
            return
        where = self.unix_path if listen == METRICS_UNIX else listen
        try:
            self.sock = listen_unix(self.unix_path, 16) if listen == METRICS_UNIX else _listen_tcp(listen)
        except OSError as error:
            self.log(f"cannot serve metrics on {where}: {error.strerror or error}; "
                     "`pmsd set metrics_listen` another address, or free this one")
            return
        self.loop.add_reader(self.sock.fileno(), self._accept)
        self.log(f"serving Prometheus metrics on {where}, {METRICS_PATH}")

    def _accept(self) -> None:
        # None: closed by a change of settings handled earlier in the same turn of the loop, after the select
        while self.sock is not None:
            try:
                sock, _ = self.sock.accept()
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue  # that client is gone already
                return  # out of descriptors or memory (EMFILE, ENOBUFS...): the rest wait in the backlog
            if len(self.clients) >= MAX_CLIENTS:
                sock.close()
                continue
            sock.setblocking(False)
            client = _Client(sock, self)
            self.clients.add(client)
            self.loop.add_reader(sock.fileno(), client.on_readable)

    def respond(self, head: bytes) -> bytes:
        """The whole answer to a request's head (request line and headers)."""
        request_line = head.split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return response(400, "Bad Request", b"not an HTTP/1.x request\n")
        method, target, _ = parts
        if target.split("?", 1)[0] != METRICS_PATH:
            return response(404, "Not Found", f"not found; pmsd serves {METRICS_PATH}\n".encode())
        if method not in ("GET", "HEAD"):
            return response(405, "Method Not Allowed", b"GET or HEAD only\n", "Allow: GET, HEAD\r\n")
        try:
            body = self.collect().encode()
        except Exception as error:  # a bug in the scrape must not take god down with it
            self.log(f"metrics: {type(error).__name__}: {error}")
            return response(500, "Internal Server Error", b"the scrape failed; see god's journal\n")
        answer = response(200, "OK", body, content_type=CONTENT_TYPE)
        return answer[: answer.index(b"\r\n\r\n") + 4] if method == "HEAD" else answer

    def close(self) -> None:
        for client in list(self.clients):
            client.close()
        if self.sock is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        self.sock = None
        if self.listen == METRICS_UNIX:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_path)


def response(code: int, reason: str, body: bytes, extra_headers: str = "",
             content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (f"HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n{extra_headers}\r\n")
    return head.encode("latin-1") + body


def _listen_tcp(listen: str) -> socket.socket:
    """A non-blocking listening TCP socket on "address:port" (pmsd.definition.config.parse_metrics_listen)."""
    host, _, port = listen.rpartition(":")
    family = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restarted god rebinds at once
        sock.bind((host.strip("[]"), int(port)))
        sock.listen(16)
    except OSError:
        sock.close()
        raise
    return sock
