"""One app's unit as god follows it: systemd's UnitChanged signals merged into one view of the unit, turned
into PM2 events and counters. Pure: no D-Bus here, so every transition is tested with recorded property sets.

systemd's signals carry whole property groups (the Unit interface's states and timestamps, the Service
interface's main pid, restart count and main-process fields), in the order the changes happened, so each
signal is one step: god never re-reads a unit to find out what changed, and a crash followed by an immediate
restart still shows up as an exit (exec_main_exit_usec moves) and a restart (n_restarts grows).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any

from pmsd.definition.settings import EXP_BACKOFF_CAP_MS, EXP_BACKOFF_RESET_MS
from pmsd.model.counters import AppCounters
from pmsd.model.events import Event, now_ms
from pmsd.model.record import AppRecord
from pmsd.model.status import Status, pm2_status
from pmsd.systemd.signals import UnitChange
from pmsd.systemd.states import AUTO_RESTART, CLD_EXITED, DOWN_STATES, RUNNING_STATES, ActiveState, ServiceState


def next_backoff_ms(previous_ms: int, first_ms: int, last_uptime_ms: int) -> int:
    """PM2's exponential backoff: the first delay, then x1.5 (rounded down) per crash, at most 15 s; a run
    that lasted 30 s starts the curve again."""
    if previous_ms <= 0 or last_uptime_ms >= EXP_BACKOFF_RESET_MS:
        return first_ms
    return min(EXP_BACKOFF_CAP_MS, int(previous_ms * 1.5))


@dataclass
class Outcome:
    """What one signal meant: events to publish, and a backoff restart to schedule (µs since the epoch)."""

    events: list[Event] = field(default_factory=list)
    backoff_due_usec: int = 0
    counters_changed: bool = False


class AppTracker:
    def __init__(self, record: AppRecord, unit: str, counters: AppCounters) -> None:
        self.record = record
        self.unit = unit
        self.counters = counters
        self.known = UnitChange()  # the unit as systemd last told it, every signal merged
        self._state_of: tuple[UnitChange, ServiceState | None] | None = None  # state() of a `known`
        # A unit that went down, pending a verdict: (when, via deactivating). systemd 252 passes a crashing
        # service through "failed" on its way to "auto-restart" (service_enter_dead() in
        # src/core/service.c), so "stop" or "errored" is only decided once the next state is known.
        self.went_down: tuple[int | None, bool] | None = None

    # ------------------------------------------------------------------------------------ views
    @property
    def active_state(self) -> ActiveState:
        return self.known.active_state or ActiveState.INACTIVE

    @property
    def sub_state(self) -> str:
        return "dead" if self.known.sub_state is None else self.known.sub_state

    @property
    def waiting_restart(self) -> bool:
        """Waiting in auto-restart for systemd's restart timer (or god's backoff restart)."""
        return (self.active_state, self.sub_state) == (ActiveState.ACTIVATING, AUTO_RESTART)

    @property
    def exit_usec(self) -> int:
        return self.known.exec_main_exit_usec or 0

    @property
    def start_usec(self) -> int:
        return self.known.exec_main_start_usec or 0

    @property
    def n_restarts(self) -> int:
        return self.known.n_restarts or 0

    def state(self) -> ServiceState | None:
        """The unit's state as god knows it, None before anything is known. Kept until `known` changes: god
        asks it of every app at each `pmsd ls`, and most have not changed since the last."""
        known = self.known
        if self._state_of is None or self._state_of[0] is not known:
            self._state_of = (known, None if known.is_empty() else known.service_state(self.unit))
        return self._state_of[1]

    def status(self) -> Status:
        spec = self.record.spec
        return pm2_status(self.state(), spec.autorestart, spec.stop_exit_codes)

    @property
    def restart_time(self) -> int:
        return max(0, self.record.restart_offset + self.n_restarts + self.counters.restarts)

    def event(self, name: str, at_ms: int | None = None, **details: Any) -> Event:
        return Event(name, self.record.name, self.record.pm_id, at_ms or now_ms(), details)

    # ------------------------------------------------------------------------------------ updates
    def forget_unit(self) -> None:
        """The unit was collected (stopped, or about to be created again): the next one starts afresh."""
        self.known = UnitChange()

    def learn(self, told: UnitChange) -> None:
        """What god asked systemd itself about the unit, as a signal would have told it (no event follows)."""
        self.known = self.known.merge(told)

    def seed(self, snapshot: UnitChange) -> Outcome:
        """The unit's full state when god starts (again): account the exits that happened while god was down,
        without replaying them as events.

        Every automatic restart follows one exit, so n_restarts tells how many exits god missed. The newest
        one has exact timestamps; for the earlier ones systemd keeps none (nor does journald hold the
        manager's messages everywhere), so they count as unstable when the runs between god's last look and
        now averaged less than min_uptime, which is exact for the crash loops the figure exists for.
        """
        previous = self.known
        self.known = previous.merge(snapshot)
        outcome = Outcome()
        counters, spec = self.counters, self.record.spec
        restarts = self.n_restarts
        # n_restarts below what god saw: the unit was created again since (it starts from 0).
        same_unit = restarts >= counters.seen_restarts
        gained = restarts - counters.seen_restarts if same_unit else restarts
        awaiting = counters.awaiting_restart if same_unit else 0  # that restart's exit was counted already
        newest_is_new = self.exit_usec > counters.last_exit_usec
        waiting = self._awaits_restart()
        exits = max(0, gained - awaiting) + (1 if newest_is_new and waiting else 0)
        unknown = exits - (1 if newest_is_new else 0)
        # The span those runs fit in: up to the newest exit, or to the start of the run going on now.
        span_end = self.exit_usec if newest_is_new else self.start_usec
        if unknown > 0 and spec.autorestart and counters.last_exit_usec and span_end > counters.last_exit_usec:
            cycle_ms = (span_end - counters.last_exit_usec) / 1000 / (unknown + (1 if newest_is_new else 0))
            if cycle_ms < spec.min_uptime + max(spec.restart_delay, spec.exp_backoff_restart_delay):
                counters.unstable += unknown
        if newest_is_new:
            self._account_exit(previous, outcome, emit=False)
        elif not self._newest_run_ended():
            # Every exit before the run going on is accounted now, though god never saw their times: the next
            # seed's span starts here, not at an exit long before the runs counted here.
            counters.last_exit_usec = max(counters.last_exit_usec, self.start_usec)
        counters.seen_restarts, counters.awaiting_restart = restarts, int(waiting)
        outcome.counters_changed = True
        return outcome

    def _newest_run_ended(self) -> bool:
        """The latest run has exited and no new one has started (judged by timestamps, not by substates:
        systemd passes through several on the way from an exit to a restart)."""
        return self.exit_usec > 0 and self.start_usec <= self.exit_usec

    def _awaits_restart(self) -> bool:
        """From the unit's state alone: its newest run ended and n_restarts does not count a restart after it.

        The timestamps cannot tell: when RestartSec= has passed, service_enter_restart() (src/core/service.c)
        queues the restart job and counts it (n_restarts++) while the unit stays in auto-restart with the same
        ExecMain timestamps; the job forks the next run in a later iteration (the run queue). The pending job
        tells. (unit_snapshot() reads both interfaces in one GetAll: read in two calls, a restart queued between
        them still read as waiting, one exit counted twice; tests/unit/test_god_seed_model.py.)"""
        queued = self.sub_state == AUTO_RESTART and bool(self.known.has_job)
        return self._newest_run_ended() and not queued

    def _remember_restarts(self, new_exit: bool) -> bool:
        """Note n_restarts, and whether the newest exit counted still awaits its restart (seed() takes such an
        exit as counted and not restarted yet); True if that changed.

        Not judged by the timestamps, which say "ended" until the next run starts: n_restarts counts the restart
        a signal earlier (see _awaits_restart), and a kill -9 between the two left a restart counted as awaited,
        one exit missed at the next seed (issue 19). seen_restarts + awaiting_restart is the exits god counted
        (each restart follows one), so the newest exit awaits its restart while they outnumber n_restarts."""
        counters = self.counters
        awaiting = 0
        if self._newest_run_ended():
            counted = counters.seen_restarts + counters.awaiting_restart + int(new_exit)
            awaiting = min(1, max(0, counted - self.n_restarts))
        seen = (self.n_restarts, awaiting)
        if seen == (counters.seen_restarts, counters.awaiting_restart):
            return False
        counters.seen_restarts, counters.awaiting_restart = seen
        return True

    def update(self, changed: UnitChange) -> Outcome:
        if self._stale(changed):
            return Outcome()
        previous = self.known
        self.known = previous.merge(changed)
        outcome = Outcome()
        new_exit = changed.exec_main_exit_usec is not None and self.exit_usec > self.counters.last_exit_usec
        if self._remember_restarts(new_exit):
            outcome.counters_changed = True
        if new_exit:
            self._account_exit(previous, outcome, emit=True)
        if changed.n_restarts is not None and changed.n_restarts > (previous.n_restarts or 0):
            outcome.events.append(self.event("restart", reason="crash", restart_time=self.restart_time))
        if changed.exec_main_start_usec is not None and self._started_since(previous):
            outcome.events.append(self.event("start", changed.exec_main_start_usec // 1000,
                                             pid=self.known.exec_main_pid or 0))
        if changed.active_state is not None or changed.sub_state is not None:
            self._state_events(previous, outcome)
        return outcome

    def _stale(self, changed: UnitChange) -> bool:
        """A signal older than what god already knows: queued before god read the unit's full state (at
        start), it must not wind the view back. n_restarts never decreases within one unit, nor does
        state_change_usec."""
        known = self.known
        for new, old in ((changed.n_restarts, known.n_restarts),
                         (changed.state_change_usec, known.state_change_usec),
                         (changed.exec_main_start_usec, known.exec_main_start_usec)):
            if new is not None and old is not None and new < old:
                return True
        # Nor does a run's exit timestamp go back (to 0): only the next run's exec_status_start() clears it
        # (src/core/execute.c). Without this, a signal of the run going on, queued before a snapshot taken after
        # it exited, made that exit look restarted already.
        same_run = changed.exec_main_start_usec in (None, known.exec_main_start_usec)
        if same_run and changed.exec_main_exit_usec is not None:
            return changed.exec_main_exit_usec < (known.exec_main_exit_usec or 0)
        return False

    def _started_since(self, previous: UnitChange) -> bool:
        return self.start_usec > 0 and self.start_usec != (previous.exec_main_start_usec or 0)

    def _state_events(self, previous: UnitChange, outcome: Outcome) -> None:
        old = (previous.active_state, previous.sub_state)
        new = (self.active_state, self.sub_state)
        if old == new:
            return
        at = (self.known.state_change_usec or 0) // 1000 or None
        if new[0] == ActiveState.ACTIVE and old[0] != ActiveState.ACTIVE:
            outcome.events.append(self.event("online", at, pid=self.known.main_pid or 0))
        elif self.waiting_restart:
            spec = self.record.spec
            delay = self.counters.backoff_ms if spec.exp_backoff_restart_delay else spec.restart_delay
            outcome.events.append(self.event("waiting restart", at, delay_ms=delay))
        elif new[0] in DOWN_STATES and old[0] in RUNNING_STATES:
            self.went_down = (at, old[0] == ActiveState.DEACTIVATING)
        if new[0] not in DOWN_STATES:
            self.went_down = None

    def settle(self) -> list[Event]:
        """The verdict on a unit that went down, once no other state followed at once."""
        if self.went_down is None or self.active_state not in DOWN_STATES:
            self.went_down = None
            return []
        at, deactivated = self.went_down
        self.went_down = None
        if self.status() == Status.ERRORED:
            return [self.event("errored", at, restart_time=self.restart_time,
                               unstable_restarts=self.counters.unstable)]
        if deactivated:
            return [self.event("stop", at)]
        return [self.event("stop", at, reason="exited and not restarted (autorestart off, or a stop exit code)")]

    def _account_exit(self, previous: UnitChange, outcome: Outcome, emit: bool) -> None:
        spec = self.record.spec
        exit_usec = self.exit_usec
        started = self.start_usec
        uptime_ms = max(0, (exit_usec - started) // 1000) if started else 0
        # A stop god or the user asked for passes through "deactivating" before the process is gone.
        manually = ActiveState.DEACTIVATING in (previous.active_state, self.active_state)
        self.counters.last_exit_usec = exit_usec
        outcome.counters_changed = True
        if not manually and spec.autorestart and uptime_ms < spec.min_uptime:
            self.counters.unstable += 1
        if not manually and spec.exp_backoff_restart_delay and spec.autorestart:
            self.counters.backoff_ms = next_backoff_ms(self.counters.backoff_ms, spec.exp_backoff_restart_delay,
                                                       uptime_ms)
            if self.counters.backoff_ms < EXP_BACKOFF_CAP_MS:
                outcome.backoff_due_usec = exit_usec + self.counters.backoff_ms * 1000
        if emit:
            code = self.known.exec_main_code or 0
            status = self.known.exec_main_status or 0
            details: dict[str, Any] = {"uptime_ms": uptime_ms, "manually": manually,
                                       "pid": self.known.exec_main_pid or 0}
            if code == CLD_EXITED:
                details["code"] = status
                details["signal"] = None
            else:
                details["code"] = None
                details["signal"] = _signal_name(status)
            outcome.events.append(self.event("exit", exit_usec // 1000, **details))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
