"""god's main loop: follow systemd's signals for pmsd's units, keep PM2's accounting, apply the policies
systemd lacks (exponential backoff, memory and watch restarts: pmsd.god.policies), publish events, answer the
local API (pmsd.god.handlers). This module wires those together and follows the registry.

Nothing here supervises a process: if god dies, systemd keeps every app running and restarting, and brings
god back (Restart=always); the new god rebuilds its view from systemd, the registry and its counters file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from pmsd.context import Context
from pmsd.errors import PmsdError
from pmsd.god.handlers import ApiHandlers
from pmsd.god.logwriter import LogWriter, target_of
from pmsd.god.loop import Loop, Timer
from pmsd.god.metrics_http import MetricsListener
from pmsd.god.notify import KeepAlive, notifier
from pmsd.god.policies import BackoffPolicy, MemoryPolicy, Restarter, WatchPolicy, log
from pmsd.god.runner import CommandRunner
from pmsd.god.server import ApiServer
from pmsd.god.snapshot import loaded_units
from pmsd.god.throttle import ThrottledWrite
from pmsd.god.tracker import AppTracker, Outcome
from pmsd.linux.heldfiles import raise_open_files_limit
from pmsd.linux.inotify import TreeWatcher, WatchError
from pmsd.model.counters import AppCounters, counters_for
from pmsd.model.events import Event
from pmsd.model.protocol import EventMessage
from pmsd.model.record import AppRecord
from pmsd.state.config import read_config
from pmsd.state.counters import load_counters, save_counters
from pmsd.state.paths import metrics_socket_path, socket_path
from pmsd.systemd.bus import Manager
from pmsd.systemd.names import CRON_PREFIX, SERVICE_SUFFIX, UNIT_PREFIX, app_name_of_cron_unit
from pmsd.systemd.signals import UnitChange, UnitChanged, UnitNew, UnitRemoved, UnitSignal
from pmsd.systemd.states import ActiveState

# The longest god handles systemd's signals before it serves its timers and clients: while the manager starts
# 100 apps, signals came about as fast as god handled them, and draining them all first starved the loop's
# timers (the watchdog's: systemd aborted god after WatchdogSec=, issue 19's soak) and its clients.
BUSY_S = 0.05
PENDING_TTL_S = 10.0  # signals of a unit no registry entry claims (yet) are kept this long
REGISTRY_RECHECK_S = 0.05  # while such signals wait, the registry is looked at this often
WARM_AFTER_S = 0.5  # once ready, god imports what the commands it runs need (pmsd.god.runner)
# Counters are written at most this often (the first change at once): a write holds every app's counters, so
# one a batch while 1,000 apps stop one by one made `delete all` quadratic (~4 s of god's CPU). A batch of
# signals already takes up to BUSY_S, so a kill -9 loses at most about as much as before.
COUNTERS_EVERY_S = 0.05
SETTLE_S = 0.02  # a unit that went down is called stopped/errored only if no new state follows this soon
# The units whose signals god reads (apps and cron units): other units' signals are dropped in the adapter.
FOLLOWED_PREFIX = os.path.commonprefix([UNIT_PREFIX, CRON_PREFIX])  # noqa: RUF071  (names, not paths)


class God:
    def __init__(self, ctx: Context, notify: Callable[[str], None] | None = None,
                 memory_interval_s: float = 1.0) -> None:
        self.ctx = ctx
        self.loop = Loop()
        self.notify = notify or (lambda _text: None)
        self.manager = ctx.manager
        self.trackers: dict[str, AppTracker] = {}  # by unit name
        self.counters: dict[int, AppCounters] = load_counters(ctx.state_dir)
        self.counters_file = ThrottledWrite(self.loop, self._save_counters, COUNTERS_EVERY_S)
        self.signals: list[UnitSignal] = []
        self.pending: dict[str, list[tuple[float, UnitChange]]] = {}
        self.registry_stamp: tuple[int, int] | None = None
        self.registry_timer: Timer | None = None
        self.registry_watcher: TreeWatcher | None = None
        self.settle_timers: dict[str, Timer] = {}
        self.server: ApiServer | None = None
        self.keep_alive: KeepAlive | None = None
        restarter = Restarter(self.manager, self.publish, self._counters_changed)
        self.backoff = BackoffPolicy(self.loop, self.trackers, restarter)
        self.memory = MemoryPolicy(self.loop, self.manager, self.trackers, restarter, memory_interval_s)
        self.watch = WatchPolicy(self.loop, self.trackers, restarter)
        self.logs = LogWriter(self.loop, log)
        self.runner = CommandRunner(self.loop, log, ctx.user)
        self.handlers = ApiHandlers(ctx, self.trackers, self.counters, lambda: self._sync_registry(seed=False),
                                    self.logs.reopen, self._before_wait, self.runner)
        self.metrics = MetricsListener(self.loop, self.handlers.metrics, log,
                                       metrics_socket_path(ctx.user, ctx.environ))

    # ------------------------------------------------------------------------------------ start / stop
    def start(self) -> None:
        self.manager.subscribe(self._on_signal, FOLLOWED_PREFIX)
        self._watch_registry()
        self._sync_registry(seed=True)
        self.server = ApiServer(socket_path(self.ctx.user, self.ctx.environ), self.loop, self.handlers)
        self.loop.add_reader(self.manager.fileno(), _next_turn)  # read by _before_wait, BUSY_S at a time
        watchdog_usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        if watchdog_usec and os.environ.get("WATCHDOG_PID", str(os.getpid())) == str(os.getpid()):
            self.keep_alive = KeepAlive(self.loop, self.notify, watchdog_usec / 2e6)
        self.counters_file.write_now()
        self.notify(f"READY=1\nSTATUS=following {len(self.trackers)} apps\nMAINPID={os.getpid()}")
        log(f"ready: {len(self.trackers)} apps, state {self.ctx.state_dir}, socket {self.server.path}")
        if self.ctx.user:
            self.loop.call_later(WARM_AFTER_S, self.runner.warm)

    def run(self) -> None:
        self.start()
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        try:
            self.loop.run(self._before_wait)
        finally:
            self.notify("STOPPING=1")
            self.counters_file.write_now()
            if self.server is not None:
                self.server.close()
            self.metrics.close()
            if self.registry_watcher is not None:
                self.registry_watcher.close()
            self.watch.close()
            self.logs.close()
            log("stopped")

    def stop(self) -> None:
        # Once the commands god runs for CLIs have finished: systemd sends SIGTERM to god alone (KillMode=mixed),
        # so a `pmsd start` under way is not cut in half by `pmsd update`.
        self.runner.drain(self.loop.stop)

    # ------------------------------------------------------------------------------------ signals
    def _on_signal(self, unit_signal: UnitSignal) -> None:
        # Called from inside sd-bus dispatch: only queue; handled once dispatch returns.
        self.signals.append(unit_signal)

    def _before_wait(self) -> None:
        """Runs before every sleep: handle what arrived, then write counters once for the whole batch."""
        if self.keep_alive is not None:
            self.keep_alive.beat()
        if not _handle_for_a_while(self.manager, self.signals, self._handle_signal):
            self.loop.call_later(0, _next_turn)  # the rest in the next turn, which must not sleep
        self.counters_file.write_if_due()

    def _handle_signal(self, unit_signal: UnitSignal) -> None:
        unit = unit_signal.unit
        if isinstance(unit_signal, UnitChanged):
            if unit.startswith(CRON_PREFIX):
                self._cron_signal(unit, unit_signal.change)
            elif unit.startswith(UNIT_PREFIX) and unit.endswith(SERVICE_SUFFIX):
                self._unit_signal(unit, unit_signal.change)
        elif isinstance(unit_signal, UnitRemoved):
            tracker = self.trackers.get(unit)
            if tracker is not None:
                tracker.forget_unit()
                self.backoff.cancel(unit)
            if unit.startswith(UNIT_PREFIX):
                self._schedule_registry_check()
        elif isinstance(unit_signal, UnitNew) and unit.startswith(UNIT_PREFIX) and unit not in self.trackers:
            self._schedule_registry_check()

    def _unit_signal(self, unit: str, change: UnitChange) -> None:
        tracker = self.trackers.get(unit)
        if tracker is None:
            # A unit the registry does not list (yet): `pmsd start` writes the registry only after the unit
            # runs. Keep its signals, in order, until the registry says whose it is.
            self.pending.setdefault(unit, []).append((time.monotonic(), change))
            self._schedule_registry_check()
            return
        self._apply(tracker, tracker.update(change))

    def _apply(self, tracker: AppTracker, outcome: Outcome) -> None:
        if outcome.counters_changed:
            self.counters_file.changed()
        if outcome.backoff_due_usec:
            self.backoff.schedule(tracker, outcome.backoff_due_usec)
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
            message: EventMessage = {"event": event.to_json()}
            self.server.broadcast(message)

    def _cron_signal(self, unit: str, change: UnitChange) -> None:
        if change.active_state != ActiveState.ACTIVATING:
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
            log(f"cannot watch {self.ctx.state_dir} ({error}); registry changes are noticed on unit events")
            return

        def readable() -> None:
            if any(os.path.basename(path) == "registry.json" for path in watcher.read_changes()):
                self._schedule_registry_check()

        self.loop.add_reader(watcher.fileno(), readable)
        self.registry_watcher = watcher

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
            log(f"cannot read the registry, keeping the last one: {error.message}")
            return
        self.registry_stamp = stamp
        records = {record.unit: record for record in data.apps}
        config = _global_settings(self.ctx.state_dir)
        self.metrics.configure(config)
        self.logs.sync(target for record in data.apps
                       if (target := target_of(record, self.ctx.user, self.ctx.environ, config)) is not None)
        for unit in list(self.trackers):
            if unit not in records or records[unit].pm_id != self.trackers[unit].record.pm_id:
                self._forget(unit, deleted=True)
        loaded = loaded_units(self.manager, [unit for unit in records if unit not in self.trackers])
        for unit, record in records.items():
            tracker = self.trackers.get(unit)
            if tracker is None:
                self._follow(unit, record, unit in loaded)
            else:
                old = tracker.record
                tracker.record = record
                if (old.spec.watch, old.spec.ignore_watch) != (record.spec.watch, record.spec.ignore_watch):
                    self.watch.unwatch(unit)
                    self.watch.watch(tracker)
        self.memory.arm()

    def _follow(self, unit: str, record: AppRecord, loaded: bool) -> None:
        """Start following an app the registry lists: from the signals kept for it, else from systemd."""
        tracker = self._track(unit, record)
        pending = self.pending.pop(unit, [])
        if pending:
            for _, change in pending:
                self._apply(tracker, tracker.update(change))
        elif loaded:
            with contextlib.suppress(PmsdError):
                self._apply(tracker, tracker.seed(self.manager.unit_snapshot(unit)))
                self.backoff.resume(tracker)

    def _track(self, unit: str, record: AppRecord) -> AppTracker:
        counters = counters_for(self.counters, record.pm_id, record.created_at)
        if counters is None:
            # Not written now: an app missing from the file reads back as this very entry (all zeros), and a
            # write of every app's counters at each new app made a start of 1,000 apps quadratic.
            counters = self.counters[record.pm_id] = AppCounters(created_at=record.created_at)
        tracker = self.trackers[unit] = AppTracker(record, unit, counters)
        self.watch.watch(tracker)
        return tracker

    def _forget(self, unit: str, deleted: bool) -> None:
        tracker = self.trackers.pop(unit)
        self.backoff.cancel(unit)
        self.watch.unwatch(unit)
        if deleted:
            # Left in the file until the next write: an entry whose created_at no record has is never read
            # (counters_for), and writing every app's counters at each deletion made `delete all` of 1,000 apps
            # cost god ~4 s of CPU.
            self.counters.pop(tracker.record.pm_id, None)
            self.publish(tracker.event("delete"))

    def _counters_changed(self) -> None:
        self.counters_file.changed()

    def _save_counters(self) -> None:
        try:
            save_counters(self.ctx.state_dir, self.counters)
        except OSError as error:
            log(f"cannot save counters: {error}")


def _handle_for_a_while(manager: Manager, signals: list[UnitSignal], handle: Callable[[UnitSignal], None]) -> bool:
    """Read systemd's messages and handle the signals they bring, in order, for at most BUSY_S: True when all
    were, False when some wait for the next turn. `signals` is the list sd-bus's callbacks append to (handling
    makes calls, and they can bring more); the signals not handled yet stay at its head."""
    deadline = time.monotonic() + BUSY_S
    while True:
        drained = manager.dispatch(deadline)
        if not signals or time.monotonic() >= deadline:
            return drained and not signals
        batch = signals[:]
        del signals[:]
        for index, unit_signal in enumerate(batch):
            if time.monotonic() >= deadline:
                signals[:0] = batch[index:]
                break
            handle(unit_signal)


def _next_turn() -> None:
    """A timer that does nothing: due at once, it makes the loop's next wait return without sleeping."""


def _global_settings(state_dir: str) -> dict[str, Any]:
    """`pmsd set`'s settings (pmsd.state.config); the defaults when they cannot be read."""
    try:
        return read_config(state_dir)
    except PmsdError as error:
        log(f"{error.message}; using the default settings")
        return {}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in args):
        print("usage: pmsd-god [--user | --system]\n\nRun pmsd's god daemon in the foreground. systemd runs it "
              "as pmsd-god.service (Type=notify); `pmsd ping` starts it on demand.")
        return 0
    user = "--system" not in args
    ctx = Context(user=user)
    raise_open_files_limit()  # room for the cgroup files god keeps open (pmsd.linux.heldfiles)
    try:
        God(ctx, notifier(), float(os.environ.get("PMSD_MEMORY_INTERVAL_MS", "1000")) / 1000).run()
    except PmsdError as error:
        print(f"[pmsd][god] {error.message}", file=sys.stderr)
        return int(error.status)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
