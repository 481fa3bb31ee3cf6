"""The restart policies PM2 has and systemd lacks, applied by god: exponential backoff, a memory ceiling, and
restarts on file changes. Each one ends in a Restarter: a TryRestartUnit job, PM2's count and event."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from pmsd.errors import PmsdError
from pmsd.god.loop import Loop, Timer
from pmsd.god.snapshot import control_group
from pmsd.god.tracker import AppTracker
from pmsd.linux.inotify import TreeWatcher, WatchError, effective_ignore
from pmsd.linux.procfs import unit_rss_bytes
from pmsd.model.events import Event
from pmsd.systemd.bus import Manager, memory_current
from pmsd.systemd.states import RUNNING_STATES, ActiveState

WATCH_QUIET_MS = 100  # a burst of writes (an editor saving, a build) restarts once


def log(text: str) -> None:
    # stdout goes to the journal (god's own unit); the prefix is what PM2's daemon log lines start with.
    print(f"[pmsd][god] {text}", flush=True)


def cancel(timers: dict[str, Timer], unit: str) -> None:
    timer = timers.pop(unit, None)
    if timer is not None:
        timer.cancel()


class Restarter:
    """A restart on a policy's behalf: the job to systemd, then PM2's restart count and event."""

    def __init__(self, manager: Manager, publish: Callable[[Event], None], counted: Callable[[], None]) -> None:
        self.manager = manager
        self.publish = publish
        self.counted = counted  # the counters changed and are to be saved

    def restart(self, tracker: AppTracker, reason: str, **details: Any) -> bool:
        if reason == "backoff" and not self._still_waiting(tracker.unit):
            return False
        try:
            self.manager.try_restart_unit(tracker.unit)
        except PmsdError as error:
            log(f"{tracker.unit}: {reason} restart failed: {error.message}")
            return False
        tracker.counters.restarts += 1
        self.counted()
        event = "restart" if reason == "backoff" else f"{reason} restart"
        self.publish(tracker.event(event, reason=reason, restart_time=tracker.restart_time, **details))
        log(f"App [{tracker.record.name}:{tracker.record.pm_id}] {reason} restart {details or ''}".rstrip())
        return True


    def _still_waiting(self, unit: str) -> bool:
        """Whether systemd (not god's view, which lags behind its signals when many apps crash-loop) still has
        the unit waiting in auto-restart: a unit that `pmsd stop` or `pmsd delete` stopped meanwhile must stay
        stopped, and a restart job would start it (issue 19's soak left apps running after `delete all`)."""
        try:
            return any(row.sub_state.startswith("auto-restart") for row in self.manager.list_units([unit]))
        except PmsdError:
            return False


class BackoffPolicy:
    """exp_backoff_restart_delay: the unit waits in auto-restart with systemd's own delay at the cap; god
    restarts it sooner, once the current step of PM2's curve has passed."""

    def __init__(self, loop: Loop, trackers: Mapping[str, AppTracker], restarter: Restarter) -> None:
        self.loop = loop
        self.trackers = trackers
        self.restarter = restarter
        self.timers: dict[str, Timer] = {}

    def schedule(self, tracker: AppTracker, due_usec: int) -> None:
        self.cancel(tracker.unit)
        exit_usec = tracker.exit_usec
        delay = max(0.0, due_usec / 1e6 - time.time())
        self.timers[tracker.unit] = self.loop.call_later(delay, lambda: self._due(tracker, exit_usec))

    def resume(self, tracker: AppTracker) -> None:
        """After god's restart: an app waiting in auto-restart gets the rest of its current delay."""
        if tracker.record.spec.exp_backoff_restart_delay and tracker.counters.backoff_ms and tracker.waiting_restart:
            self.schedule(tracker, tracker.exit_usec + tracker.counters.backoff_ms * 1000)

    def cancel(self, unit: str) -> None:
        cancel(self.timers, unit)

    def _due(self, tracker: AppTracker, exit_usec: int) -> None:
        self.timers.pop(tracker.unit, None)
        if self.trackers.get(tracker.unit) is not tracker:
            return
        # Still the same wait: the app was not stopped, and systemd's own timer has not fired meanwhile.
        if tracker.waiting_restart and tracker.exit_usec == exit_usec:
            self.restarter.restart(tracker, "backoff", delay_ms=tracker.counters.backoff_ms)


class MemoryPolicy:
    """max_memory_restart: the apps that set it are looked at every interval, while one does."""

    def __init__(self, loop: Loop, manager: Manager, trackers: Mapping[str, AppTracker], restarter: Restarter,
                 interval_s: float) -> None:
        self.loop = loop
        self.manager = manager
        self.trackers = trackers
        self.restarter = restarter
        self.interval_s = interval_s
        self.timer: Timer | None = None

    def arm(self) -> None:
        needed = any(t.record.spec.max_memory_restart for t in self.trackers.values())
        if needed and self.timer is None:
            self.timer = self.loop.call_later(self.interval_s, self._check)
        elif not needed and self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _check(self) -> None:
        self.timer = None
        for tracker in list(self.trackers.values()):
            limit = tracker.record.spec.max_memory_restart
            if not limit or tracker.active_state != ActiveState.ACTIVE:
                continue
            try:
                memory = memory_current(self.manager, tracker.unit)
            except PmsdError:
                continue
            if memory is None:  # systemd keeps no figure for this unit (no memory controller): its processes'
                memory = unit_rss_bytes(control_group(self.manager, tracker), tracker.known.main_pid or 0)
            if memory > limit:
                self.restarter.restart(tracker, "memory", memory_bytes=memory, limit_bytes=limit)
        self.arm()


class WatchPolicy:
    """watch: inotify on the app's paths; a running app restarts once a burst of changes is over."""

    def __init__(self, loop: Loop, trackers: Mapping[str, AppTracker], restarter: Restarter) -> None:
        self.loop = loop
        self.trackers = trackers
        self.restarter = restarter
        self.watchers: dict[str, TreeWatcher] = {}
        self.timers: dict[str, Timer] = {}
        self.changes: dict[str, set[str]] = {}

    def watch(self, tracker: AppTracker) -> None:
        spec = tracker.record.spec
        if not spec.watch:
            return
        try:
            # As in PM2, ignore_watch replaces the default ignores (dot-files, node_modules); its relative
            # patterns ("client/img") are relative to the app's cwd.
            watcher = TreeWatcher(spec.watch, effective_ignore(spec.ignore_watch or None), cwd=spec.cwd)
        except WatchError as error:
            log(f"App [{tracker.record.name}:{tracker.record.pm_id}] cannot be watched: {error}")
            return
        self.watchers[tracker.unit] = watcher
        self.loop.add_reader(watcher.fileno(), lambda: self._readable(tracker))

    def unwatch(self, unit: str) -> None:
        watcher = self.watchers.pop(unit, None)
        if watcher is not None:
            self.loop.remove_reader(watcher.fileno())
            watcher.close()
        cancel(self.timers, unit)
        self.changes.pop(unit, None)

    def close(self) -> None:
        for watcher in self.watchers.values():
            watcher.close()

    def _readable(self, tracker: AppTracker) -> None:
        watcher = self.watchers.get(tracker.unit)
        if watcher is None:
            return
        try:
            changes = watcher.read_changes()
        except WatchError as error:  # out of inotify watches while following new directories
            log(f"App [{tracker.record.name}:{tracker.record.pm_id}] watch: {error}")
            changes = error.changes
        # PM2 restarts a watched app only while it runs: a stopped app stays stopped.
        if not changes or tracker.active_state not in RUNNING_STATES:
            return
        self.changes.setdefault(tracker.unit, set()).update(changes)
        cancel(self.timers, tracker.unit)  # debounce: the delay starts again at each change
        delay = max(tracker.record.spec.watch_delay, WATCH_QUIET_MS) / 1000
        self.timers[tracker.unit] = self.loop.call_later(delay, lambda: self._due(tracker))

    def _due(self, tracker: AppTracker) -> None:
        self.timers.pop(tracker.unit, None)
        paths = sorted(self.changes.pop(tracker.unit, set()))
        if self.trackers.get(tracker.unit) is tracker and tracker.active_state in RUNNING_STATES:
            self.restarter.restart(tracker, "watch", paths=paths[:20])
