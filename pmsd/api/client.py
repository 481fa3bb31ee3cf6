"""pmsd's programmatic API, in the spirit of PM2's (`pm2.connect()`, `pm2.list()`, `pm2.launchBus()`):

    import pmsd
    with pmsd.connect() as god:
        print(god.ping()["pid"])
        for process in god.list():          # the `pmsd jlist` shape
            print(process["name"], process["pm2_env"]["status"])
        god.start("worker.py", name="worker")
        for event in god.events():          # blocks; one pmsd.model.events.Event per process event
            print(event.event, event.app)

Requests go to god over its Unix socket; start/stop/restart/delete act on systemd directly, exactly as the CLI
does (they work while god is down).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import json
import socket
from collections.abc import Iterator
from typing import Any

from pmsd.api import lifecycle
from pmsd.api.god import start_and_wait
from pmsd.context import Context
from pmsd.errors import ExitStatus, PmsdError
from pmsd.model.events import Event
from pmsd.model.protocol import ListResult, PingResult, encode, error_status
from pmsd.state.paths import socket_path


class GodClient:
    def __init__(self, ctx: Context, timeout: float = 30.0) -> None:
        self.ctx = ctx
        self.timeout = timeout
        self.path = socket_path(ctx.user, ctx.environ)
        self._sock = self._connect()
        self._reader = self._sock.makefile("rb")
        self._next_id = 0

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError as error:
            sock.close()
            if error.errno in (errno.EACCES, errno.EPERM):
                raise PmsdError(f"permission denied connecting to pmsd's god at {self.path}",
                                "god only serves its owner: run pmsd as the user who owns it",
                                ExitStatus.PERMISSION) from None
            raise PmsdError(f"pmsd's god is not running ({self.path}: {error.strerror})",
                            "`pmsd ping` starts it") from None
        return sock

    def request(self, method: str, **params: Any) -> Any:
        self._next_id += 1
        self._sock.sendall(encode({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = self._read()
            if "event" in message:
                continue
            if "error" in message:
                error = message["error"]
                raise PmsdError(f"god: {error.get('message')}", error.get("hint") or None, error_status(error))
            return message.get("result")

    def _read(self) -> dict[str, Any]:
        line = self._reader.readline()
        if not line:
            raise PmsdError("pmsd's god closed the connection", "it may have been stopped; `pmsd ping` starts it")
        value = json.loads(line)
        if not isinstance(value, dict):
            raise PmsdError(f"god sent something that is not a message: {line[:80]!r}")
        return value

    def ping(self) -> PingResult:
        result: PingResult = self.request("ping")
        return result

    def list(self) -> ListResult:
        result: ListResult = self.request("list")
        return result

    def events(self) -> Iterator[Event]:
        """Process events as they happen, from the moment this returns (the subscription is made here, not
        on the first next()); iterating blocks between events, with no timeout."""
        self.request("subscribe")
        self._sock.settimeout(None)
        return self._event_stream()

    def _event_stream(self) -> Iterator[Event]:
        while True:
            message = self._read()
            if "event" in message:
                yield Event.from_json(message["event"])

    # PM2's programmatic API also starts and stops apps; these go straight to systemd, like the CLI.
    def start(self, target: str, **options: Any) -> builtins.list[Any]:
        return lifecycle.start(self.ctx, target, lifecycle.StartOptions(overrides=dict(options)))

    def stop(self, target: str) -> builtins.list[Any]:
        return lifecycle.stop(self.ctx, target)

    def restart(self, target: str) -> builtins.list[Any]:
        return lifecycle.restart(self.ctx, target)

    def delete(self, target: str) -> builtins.list[Any]:
        return lifecycle.delete(self.ctx, target)

    def close(self) -> None:
        # shutdown() first: it wakes a thread blocked reading events, which holds the reader's lock.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._reader.close()
        self._sock.close()
        self.ctx.close()

    def __enter__(self) -> GodClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def connect(user: bool = True, start: bool = True, timeout: float = 30.0) -> GodClient:
    """Connect to god (starting it through systemd first unless start=False), like PM2's `pm2.connect()`."""
    ctx = Context(user=user)
    if start:
        start_and_wait(ctx)
    return GodClient(ctx, timeout)
