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
from collections.abc import Iterator
from typing import Any

from pmsd.api import lifecycle
from pmsd.api.god import start_and_wait
from pmsd.api.godlink import GodConnection
from pmsd.context import Context
from pmsd.model.events import Event
from pmsd.model.protocol import ListResult, PingResult
from pmsd.state.paths import socket_path


class GodClient(GodConnection):
    def __init__(self, ctx: Context, timeout: float = 30.0) -> None:
        self.ctx = ctx
        super().__init__(socket_path(ctx.user, ctx.environ), timeout)

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
        super().close()
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
