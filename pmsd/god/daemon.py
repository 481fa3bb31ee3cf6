"""god's main loop: follow systemd's signals for pmsd's units, keep PM2's accounting, apply the policies
systemd lacks (exponential backoff, memory and watch restarts), publish events, answer the local API.

Nothing here supervises a process: if god dies, systemd keeps every app running and restarting, and brings
god back (Restart=always); the new god rebuilds its view from systemd, the registry and its counters file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from typing import Any

from pmsd import __version__
from pmsd.api.query import list_processes
from pmsd.context import Context
from pmsd.errors import PmsdError
from pmsd.god.loop import Loop, Timer
from pmsd.god.notify import notifier
from pmsd.god.server import ApiServer, Connection
from pmsd.god.tracker import RUNNING_STATES, AppTracker, Outcome
from pmsd.linux.inotify import TreeWatcher, WatchError, effective_ignore
from pmsd.model.counters import AppCounters, counters_for
from pmsd.model.events import Event, now_ms
from pmsd.model.protocol import error_reply
from pmsd.model.record import AppRecord
from pmsd.render.jlist import jlist_entries
from pmsd.state.counters import load_counters, save_counters
from pmsd.state.paths import socket_path
from pmsd.systemd.names import CRON_PREFIX, UNIT_PREFIX, app_name_of_cron_unit
from pmsd.systemd.properties import decode_properties, unit_of_path

PENDING_TTL_S = 10.0  # signals of a unit no registry entry claims (yet) are kept this long
REGISTRY_RECHECK_S = 0.05  # while such signals wait, the registry is looked at this often
SETTLE_S = 0.02  # a unit that went down is called stopped/errored only if no new state follows this soon
WATCH_QUIET_MS = 100  # a burst of writes (an editor saving, a build) restarts once


def _text(value: Any) -> str:
    """A string argument of a Manager signal (UnitNew/UnitRemoved carry the unit name first)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _log(text: str) -> None:
    # stdout goes to the journal (god's own unit); the prefix is what PM2's daemon log lines start with.
    print(f"[pmsd][god] {text}", flush=True)


class God:
    def __init__(self, ctx: Context, notify: Any = None, memory_interval_s: float = 1.0) -> None:
        self.ctx = ctx
        self.loop = Loop()
        self.notify = notify or (lambda _text: None)
        self.memory_interval_s = memory_interval_s
        self.started_at = now_ms()
        self.manager = ctx.manager
        self.trackers: dict[str, AppTracker] = {}  # by unit name
        self.counters: dict[int, AppCounters] = load_counters(ctx.state_dir)
        self.counters_dirty = False
        self.signals: list[tuple[bytes, bytes, Any]] = []
        self.pending: dict[str, list[tuple[float, bytes, Any]]] = {}
        self.registry_stamp: tuple[int, int] | None = None
        self.registry_timer: Timer | None = None
        self.backoff_timers: dict[str, Timer] = {}
        self.settle_timers: dict[str, Timer] = {}
        self.memory_timer: Timer | None = None
        self.watchers: dict[str, Any] = {}
        self.watch_timers: dict[str, Timer] = {}
        self.watch_changes: dict[str, set[str]] = {}
        self.server: ApiServer | None = None

    # ------------------------------------------------------------------------------------ start / stop
    def start(self) -> None:
        self.manager.subscribe(self._on_signal)
        self._watch_registry()
        self._sync_registry(seed=True)
        self.server = ApiServer(socket_path(self.ctx.user, self.ctx.environ), self.loop, self._handle_request)
        self.loop.add_reader(self.manager.fileno(), self.manager.dispatch)
        watchdog_usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        if watchdog_usec and os.environ.get("WATCHDOG_PID", str(os.getpid())) == str(os.getpid()):
            self._watchdog(watchdog_usec / 2e6)
        self._save_counters()
        self.notify(f"READY=1\nSTATUS=following {len(self.trackers)} apps\nMAINPID={os.getpid()}")
        _log(f"ready: {len(self.trackers)} apps, state {self.ctx.state_dir}, socket {self.server.path}")

    def run(self) -> None:
        self.start()
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        try:
            self.loop.run(self._before_wait)
        finally:
            self.notify("STOPPING=1")
            self._save_counters()
            if self.server is not None:
                self.server.close()
            for watcher in self.watchers.values():
                watcher.close()
            _log("stopped")

    def stop(self) -> None:
        self.loop.running = False

    def _watchdog(self, every_s: float) -> None:
        self.notify("WATCHDOG=1")
        self.loop.call_later(every_s, lambda: self._watchdog(every_s))

    # ------------------------------------------------------------------------------------ signals
    def _on_signal(self, path: bytes, member: bytes, body: Any) -> None:
        # Called from inside sd-bus dispatch: only queue; handled once dispatch returns.
        self.signals.append((path, member, body))

    def _before_wait(self) -> None:
        """Runs before every sleep: handle what arrived, then write counters once for the whole batch."""
        self.manager.dispatch()
        while self.signals:
            batch, self.signals = self.signals, []
            for path, member, body in batch:
                self._handle_signal(path, member, body)
            self.manager.dispatch()  # calls made while handling may have queued more signals
        if self.counters_dirty:
            self._save_counters()

    def _handle_signal(self, path: bytes, member: bytes, body: Any) -> None:
        if member == b"PropertiesChanged":
            if not path.startswith(b"/org/freedesktop/systemd1/unit/pmsd"):
                return
            unit = unit_of_path(path)
            if unit.startswith(CRON_PREFIX):
                self._cron_signal(unit, body)
            elif unit.startswith(UNIT_PREFIX) and unit.endswith(".service"):
                self._unit_signal(unit, body)
        elif member == b"UnitRemoved":
            unit = _text(body[0])
            tracker = self.trackers.get(unit)
            if tracker is not None:
                tracker.forget_unit()
                self._cancel(self.backoff_timers, unit)
            if unit.startswith(UNIT_PREFIX):
                self._schedule_registry_check()
        elif member == b"UnitNew":
            unit = _text(body[0])
            if unit.startswith(UNIT_PREFIX) and unit not in self.trackers:
                self._schedule_registry_check()

    def _unit_signal(self, unit: str, body: Any) -> None:
        changed = decode_properties(body[1])
        tracker = self.trackers.get(unit)
        if tracker is None:
            # A unit the registry does not list (yet): `pmsd start` writes the registry only after the unit
            # runs. Keep its signals, in order, until the registry says whose it is.
            self.pending.setdefault(unit, []).append((time.monotonic(), body[0], changed))
            self._schedule_registry_check()
            return
        self._apply(tracker, tracker.update(changed))

    def _apply(self, tracker: AppTracker, outcome: Outcome) -> None:
        if outcome.counters_changed:
            self.counters_dirty = True
        if outcome.backoff_due_usec:
            self._schedule_backoff(tracker, outcome.backoff_due_usec)
        for event in outcome.events:
            self.publish(event)
        if tracker.went_down is not None and tracker.unit not in self.settle_timers:
            self.settle_timers[tracker.unit] = self.loop.call_later(SETTLE_S, lambda: self._settle(tracker))

    def _settle(self, tracker: AppTracker) -> None:
        self.settle_timers.pop(tracker.unit, None)
        for event in tracker.settle():
            self.publish(event)

    def publish(self, event: Event) -> None:
        if self.server is not None:
            self.server.broadcast({"event": event.to_json()})

    def _cron_signal(self, unit: str, body: Any) -> None:
        changed = decode_properties(body[1])
        if changed.get("ActiveState") != "activating":
            return
        name = app_name_of_cron_unit(unit)
        tracker = next((t for t in self.trackers.values() if t.record.name == name), None) if name else None
        if tracker is not None:
            pattern = tracker.record.spec.cron_restart or ""
            self.publish(tracker.event("cron restart", pattern=pattern))

    # ------------------------------------------------------------------------------------ registry
    def _watch_registry(self) -> None:
        """inotify on the state directory: a registry rewrite (atomic rename) is noticed when it happens, e.g.
        `pmsd delete` removing apps after their units are gone."""
        os.makedirs(self.ctx.state_dir, mode=0o700, exist_ok=True)
        try:
            watcher = TreeWatcher([self.ctx.state_dir], ["env", "*.tmp", "registry.lock", "god-counters.json"])
        except WatchError as error:
            _log(f"cannot watch {self.ctx.state_dir} ({error}); registry changes are noticed on unit events")
            return

        def readable() -> None:
            if any(os.path.basename(path) == "registry.json" for path in watcher.read_changes()):
                self._schedule_registry_check()

        self.loop.add_reader(watcher.fileno(), readable)
        self.watchers["registry"] = watcher

    def _schedule_registry_check(self) -> None:
        if self.registry_timer is None:
            self.registry_timer = self.loop.call_later(0, self._registry_check)

    def _registry_check(self) -> None:
        self.registry_timer = None
        self._sync_registry(seed=False)
        cutoff = time.monotonic() - PENDING_TTL_S
        for unit in list(self.pending):
            self.pending[unit] = [item for item in self.pending[unit] if item[0] > cutoff]
            if not self.pending[unit]:
                del self.pending[unit]
        if self.pending:
            self.registry_timer = self.loop.call_later(REGISTRY_RECHECK_S, self._registry_check)

    def _sync_registry(self, seed: bool) -> None:
        try:
            info = os.stat(self.ctx.registry.path)
            stamp: tuple[int, int] | None = (info.st_mtime_ns, info.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp == self.registry_stamp and not seed:
            return
        try:
            data = self.ctx.registry.read()
        except PmsdError as error:
            _log(f"cannot read the registry, keeping the last one: {error.message}")
            return
        self.registry_stamp = stamp
        records = {record.unit: record for record in data.apps}
        loaded = {listing.name for listing in self.manager.list_units([f"{UNIT_PREFIX}*.service"])}
        for unit in list(self.trackers):
            if unit not in records or records[unit].pm_id != self.trackers[unit].record.pm_id:
                self._forget(unit, deleted=True)
        for unit, record in records.items():
            tracker = self.trackers.get(unit)
            if tracker is None:
                tracker = self._track(unit, record)
                pending = self.pending.pop(unit, [])
                if pending:
                    for _, _interface, changed in pending:
                        self._apply(tracker, tracker.update(changed))
                elif unit in loaded:
                    with contextlib.suppress(PmsdError):
                        self._apply(tracker, tracker.seed(self.manager.all_properties(unit)))
                        self._resume_backoff(tracker)
            else:
                old = tracker.record
                tracker.record = record
                if (old.spec.watch, old.spec.ignore_watch) != (record.spec.watch, record.spec.ignore_watch):
                    self._unwatch(unit)
                    self._watch(tracker)
        self._arm_memory_policy()

    def _track(self, unit: str, record: AppRecord) -> AppTracker:
        counters = counters_for(self.counters, record.pm_id, record.created_at)
        if counters is None:
            counters = self.counters[record.pm_id] = AppCounters(created_at=record.created_at)
            self.counters_dirty = True
        tracker = self.trackers[unit] = AppTracker(record, unit, counters)
        self._watch(tracker)
        return tracker

    def _forget(self, unit: str, deleted: bool) -> None:
        tracker = self.trackers.pop(unit)
        self._cancel(self.backoff_timers, unit)
        self._unwatch(unit)
        if deleted:
            self.counters.pop(tracker.record.pm_id, None)
            self.counters_dirty = True
            self.publish(tracker.event("delete"))

    def _save_counters(self) -> None:
        self.counters_dirty = False
        try:
            save_counters(self.ctx.state_dir, self.counters)
        except OSError as error:
            _log(f"cannot save counters: {error}")

    # ------------------------------------------------------------------------------------ restarts
    def _restart(self, tracker: AppTracker, reason: str, **details: Any) -> bool:
        try:
            self.manager.restart_unit(tracker.unit)
        except PmsdError as error:
            _log(f"{tracker.unit}: {reason} restart failed: {error.message}")
            return False
        tracker.counters.restarts += 1
        self.counters_dirty = True
        event = "restart" if reason == "backoff" else f"{reason} restart"
        self.publish(tracker.event(event, reason=reason, restart_time=tracker.restart_time, **details))
        _log(f"App [{tracker.record.name}:{tracker.record.pm_id}] {reason} restart {details or ''}".rstrip())
        return True

    def _schedule_backoff(self, tracker: AppTracker, due_usec: int) -> None:
        self._cancel(self.backoff_timers, tracker.unit)
        exit_usec = tracker.exit_usec
        delay = max(0.0, due_usec / 1e6 - time.time())
        self.backoff_timers[tracker.unit] = self.loop.call_later(
            delay, lambda: self._backoff_due(tracker, exit_usec))

    def _resume_backoff(self, tracker: AppTracker) -> None:
        """After god's restart: an app waiting in auto-restart gets the rest of its current delay."""
        spec = tracker.record.spec
        if (spec.exp_backoff_restart_delay and tracker.counters.backoff_ms
                and (tracker.active_state, tracker.sub_state) == ("activating", "auto-restart")):
            self._schedule_backoff(tracker, tracker.exit_usec + tracker.counters.backoff_ms * 1000)

    def _backoff_due(self, tracker: AppTracker, exit_usec: int) -> None:
        self.backoff_timers.pop(tracker.unit, None)
        if self.trackers.get(tracker.unit) is not tracker:
            return
        # Still the same wait: the app was not stopped, and systemd's own timer has not fired meanwhile.
        if (tracker.active_state, tracker.sub_state) == ("activating", "auto-restart") \
                and tracker.exit_usec == exit_usec:
            self._restart(tracker, "backoff", delay_ms=tracker.counters.backoff_ms)

    def _arm_memory_policy(self) -> None:
        needed = any(t.record.spec.max_memory_restart for t in self.trackers.values())
        if needed and self.memory_timer is None:
            self.memory_timer = self.loop.call_later(self.memory_interval_s, self._check_memory)
        elif not needed and self.memory_timer is not None:
            self.memory_timer.cancel()
            self.memory_timer = None

    def _check_memory(self) -> None:
        self.memory_timer = None
        for tracker in list(self.trackers.values()):
            limit = tracker.record.spec.max_memory_restart
            if not limit or tracker.active_state != "active":
                continue
            try:
                memory = self.manager.memory_current(tracker.unit)
            except PmsdError:
                continue
            if memory is not None and memory > limit:
                self._restart(tracker, "memory", memory_bytes=memory, limit_bytes=limit)
        self._arm_memory_policy()

    # ------------------------------------------------------------------------------------ watch
    def _watch(self, tracker: AppTracker) -> None:
        spec = tracker.record.spec
        if not spec.watch:
            return
        try:
            # As in PM2, ignore_watch replaces the default ignores (dot-files, node_modules); its relative
            # patterns ("client/img") are relative to the app's cwd.
            watcher = TreeWatcher(spec.watch, effective_ignore(spec.ignore_watch or None), cwd=spec.cwd)
        except WatchError as error:
            _log(f"App [{tracker.record.name}:{tracker.record.pm_id}] cannot be watched: {error}")
            return
        self.watchers[tracker.unit] = watcher
        self.loop.add_reader(watcher.fileno(), lambda: self._watch_readable(tracker))

    def _unwatch(self, unit: str) -> None:
        watcher = self.watchers.pop(unit, None)
        if watcher is not None:
            self.loop.remove_reader(watcher.fileno())
            watcher.close()
        self._cancel(self.watch_timers, unit)
        self.watch_changes.pop(unit, None)

    def _watch_readable(self, tracker: AppTracker) -> None:
        watcher = self.watchers.get(tracker.unit)
        if watcher is None:
            return
        try:
            changes = watcher.read_changes()
        except WatchError as error:  # out of inotify watches while following new directories
            _log(f"App [{tracker.record.name}:{tracker.record.pm_id}] watch: {error}")
            changes = error.changes
        # PM2 restarts a watched app only while it runs: a stopped app stays stopped.
        if not changes or tracker.active_state not in RUNNING_STATES:
            return
        self.watch_changes.setdefault(tracker.unit, set()).update(changes)
        self._cancel(self.watch_timers, tracker.unit)  # debounce: the delay starts again at each change
        delay = max(tracker.record.spec.watch_delay, WATCH_QUIET_MS) / 1000
        self.watch_timers[tracker.unit] = self.loop.call_later(delay, lambda: self._watch_due(tracker))

    def _watch_due(self, tracker: AppTracker) -> None:
        self.watch_timers.pop(tracker.unit, None)
        paths = sorted(self.watch_changes.pop(tracker.unit, set()))
        if self.trackers.get(tracker.unit) is tracker and tracker.active_state in RUNNING_STATES:
            self._restart(tracker, "watch", paths=paths[:20])

    @staticmethod
    def _cancel(timers: dict[str, Timer], unit: str) -> None:
        timer = timers.pop(unit, None)
        if timer is not None:
            timer.cancel()

    # ------------------------------------------------------------------------------------ API
    def _handle_request(self, connection: Connection, request: dict[str, Any]) -> dict[str, Any] | None:
        request_id = request.get("id")
        method = request.get("method")
        if method == "ping":
            return {"id": request_id, "result": {
                "pong": True, "pid": os.getpid(), "version": __version__, "started_at": self.started_at,
                "apps": len(self.trackers), "state_dir": self.ctx.state_dir, "systemd": self.manager.version}}
        if method == "list":
            self._sync_registry(seed=False)
            try:
                infos = list_processes(self.ctx, counters=self.counters)
            except PmsdError as error:
                return error_reply(request_id, error.message, error.hint or "")
            return {"id": request_id, "result": jlist_entries(infos)}
        if method == "subscribe":
            connection.subscribed = True
            return {"id": request_id, "result": {"subscribed": True}}
        return error_reply(request_id, f"unknown method {method!r}", "methods: ping, list, subscribe")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in args):
        print("usage: pmsd-god [--user | --system]\n\nRun pmsd's god daemon in the foreground. systemd runs it "
              "as pmsd-god.service (Type=notify); `pmsd ping` starts it on demand.")
        return 0
    user = "--system" not in args
    ctx = Context(user=user)
    try:
        God(ctx, notifier(), float(os.environ.get("PMSD_MEMORY_INTERVAL_MS", "1000")) / 1000).run()
    except PmsdError as error:
        print(f"[pmsd][god] {error.message}", file=sys.stderr)
        return int(error.status)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
