"""god's answers to its local API (the wire format is in pmsd.model.protocol): ping, list, status, subscribe,
reloadLogs, run."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pmsd import __version__
from pmsd.api import query
from pmsd.api.metrics import scrape_of
from pmsd.cli.delegate import LISTING_COMMANDS
from pmsd.context import Context
from pmsd.errors import ExitStatus, PmsdError
from pmsd.god.runner import CommandRunner
from pmsd.god.server import Connection
from pmsd.god.snapshot import current_units, live_processes
from pmsd.god.tracker import AppTracker
from pmsd.linux.heldfiles import HeldFiles
from pmsd.model.counters import AppCounters
from pmsd.model.events import now_ms
from pmsd.model.protocol import (
    METHODS,
    ErrorReply,
    ListReply,
    PingReply,
    Reply,
    RequestId,
    RunReply,
    StatusReply,
    SubscribeReply,
    error_reply,
)
from pmsd.model.status import RUNTIME_FIELDS, ProcessInfo, runtime_row
from pmsd.render import jlisttext
from pmsd.render.jlist import jlist_entries
from pmsd.render.metrics import render_metrics


class ApiHandlers:
    """Answers one request from what god follows: its trackers, its live counters, the registry."""

    def __init__(self, ctx: Context, trackers: Mapping[str, AppTracker], counters: dict[int, AppCounters],
                 refresh_registry: Callable[[], None], reopen_logs: Callable[[], None] = lambda: None,
                 handle_waiting_signals: Callable[[], None] = lambda: None,
                 runner: CommandRunner | None = None) -> None:
        self.ctx = ctx
        self.runner = runner
        self.trackers = trackers
        self.counters = counters
        self.refresh_registry = refresh_registry
        self.reopen_logs = reopen_logs
        self.handle_waiting_signals = handle_waiting_signals
        self.started_at = now_ms()
        self.held_files = HeldFiles()  # the apps' cgroup files, open from one listing to the next

    def __call__(self, connection: Connection, request: dict[str, Any]) -> Reply | None:
        request_id: RequestId = request.get("id")
        method = request.get("method")
        if method == "ping":
            return self.ping(request_id)
        if method == "list":
            return self.list(request_id)
        if method == "status":
            return self.status(request_id)
        if method == "subscribe":
            return self.subscribe(request_id, connection)
        if method == "reloadLogs":
            self.refresh_registry()
            self.reopen_logs()
            return {"id": request_id, "result": {"reopened": True}}
        if method == "run":
            return self.run(request_id, connection, request.get("params"))
        return error_reply(request_id, f"unknown method {method!r}", f"methods: {', '.join(METHODS)}",
                           ExitStatus.USAGE)

    def ping(self, request_id: RequestId) -> PingReply:
        return {"id": request_id, "result": {
            "pong": True, "pid": os.getpid(), "version": __version__, "started_at": self.started_at,
            "apps": len(self.trackers), "state_dir": self.ctx.state_dir, "systemd": self.ctx.manager.version}}

    def list(self, request_id: RequestId) -> ListReply | ErrorReply:
        infos = self._live(request_id)
        if isinstance(infos, dict):  # the error reply
            return infos
        return {"id": request_id, "result": jlist_entries(infos, self.ctx.user)}

    def status(self, request_id: RequestId) -> StatusReply | ErrorReply:
        """Every app's runtime state by pm_id (pmsd.model.status.runtime_row), and whose registry it is."""
        infos = self._live(request_id)
        if isinstance(infos, dict):  # the error reply
            return infos
        return {"id": request_id, "result": {"state_dir": self.ctx.state_dir, "fields": RUNTIME_FIELDS,
                                             "rows": {str(info.pm_id): runtime_row(info) for info in infos}}}

    def live(self) -> Sequence[ProcessInfo]:
        """Every app as systemd has it now (pmsd.god.snapshot); PmsdError when systemd cannot say.

        The signals come first, the registry after: a new app's signals wait in god's queue until the registry
        names it, and then tell its first events; read the other way round, god would take the app's state
        from systemd as it is now, and drop those signals as older than what it knows (no "online" event:
        regression seen in CI, `pmsd start` asks for the table at once)."""
        listing = current_units(self.ctx.manager, self.handle_waiting_signals)
        self.refresh_registry()
        return live_processes(self.ctx.manager, self.trackers, self.counters, listing, self.held_files)

    def _live(self, request_id: RequestId) -> Sequence[ProcessInfo] | ErrorReply:
        """live(), or the error reply saying why not."""
        try:
            return self.live()
        except PmsdError as error:
            return error_reply(request_id, error.message, error.hint or "", error.status)

    def metrics(self) -> str:
        """The Prometheus scrape (pmsd.render.metrics) god's metrics listener serves, read when it is asked."""
        try:
            scrape = scrape_of(self.live(), god_up=True)
        except PmsdError as error:
            scrape = scrape_of([], True, error)
        return render_metrics(scrape)

    def run(self, request_id: RequestId, connection: Connection, params: object) -> RunReply | ErrorReply:
        """A CLI command run by a fork of god as its caller (pmsd.god.runner); declined with the reason when it
        could turn out otherwise than the CLI's own run."""
        fds = connection.take_fds()
        if self.runner is None:
            refusal: str | None = "god does not run commands"
        elif not isinstance(params, dict):
            refusal = "params must be an object"
        else:
            refusal = self.runner.refusal(params, fds, connection.sock)
            if refusal is None:
                self._prepare_listing(params["argv"])

                def finished(status: int) -> None:
                    connection.send({"id": request_id, "result": {"exit": status}})

                try:
                    return {"id": request_id, "result": {"pid": self.runner.run(params, fds, finished)}}
                finally:
                    query.take_back()
        for fd in fds:
            os.close(fd)
        return error_reply(request_id, f"not run by god: {refusal}", status=ExitStatus.USAGE)

    def _prepare_listing(self, argv: Sequence[str]) -> None:
        """For a listing command about to be forked: every app's state, which the command takes from memory
        (pmsd.api.query.hand_over), and for `jlist` the apps' templates (pmsd.render.jlisttext), kept."""
        if argv[0] not in LISTING_COMMANDS:
            return
        try:
            infos = list(self.live())
        except PmsdError:
            return  # the command asks, and says what is wrong
        query.hand_over(self.ctx.state_dir, infos)
        if argv[0] == "jlist":
            jlisttext.warm([info.record for info in infos], self.ctx.user)

    def subscribe(self, request_id: RequestId, connection: Connection) -> SubscribeReply:
        connection.subscribed = True
        return {"id": request_id, "result": {"subscribed": True}}
