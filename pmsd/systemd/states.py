"""Unit states as systemd reports them, and the sets pmsd reasons with. No D-Bus here: pmsd's model and
renderers import this without loading pystemd.

systemd's ActiveState values are listed in systemd.unit(5) ("ActiveState"); `maintenance` (systemd 249+) and
`refreshing` (253+) are transitional states that only some unit types enter.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple


class ActiveState(enum.StrEnum):
    ACTIVE = "active"
    RELOADING = "reloading"
    INACTIVE = "inactive"
    FAILED = "failed"
    ACTIVATING = "activating"
    DEACTIVATING = "deactivating"
    MAINTENANCE = "maintenance"
    REFRESHING = "refreshing"


# A unit in one of these has (or is about to have, or still has) processes: stopping it takes a job.
RUNNING_STATES: frozenset[str] = frozenset({
    ActiveState.ACTIVE, ActiveState.ACTIVATING, ActiveState.DEACTIVATING, ActiveState.RELOADING,
})
# Up, or on its way up: what `start` and `reload` treat as already launched.
UP_STATES: frozenset[str] = frozenset({ActiveState.ACTIVE, ActiveState.ACTIVATING, ActiveState.RELOADING})
# Nothing left running: a unit here has ended, for good or until its next start.
DOWN_STATES: frozenset[str] = frozenset({ActiveState.INACTIVE, ActiveState.FAILED})

AUTO_RESTART = "auto-restart"  # the SubState of a service waiting for RestartSec= (systemd 252: "activating")

# ExecMainCode values: siginfo's si_code of the main process's end (waitid(2)).
CLD_EXITED = 1
CLD_KILLED = 2
CLD_DUMPED = 3


_ACTIVE_STATES = {state.value: state for state in ActiveState}


def active_state(text: str) -> ActiveState:
    """systemd's ActiveState text as the enum; an unknown future state reads as inactive. A dict lookup, not
    ActiveState(text): god converts one per unit of every listing (1,000 at a time)."""
    return _ACTIVE_STATES.get(text, ActiveState.INACTIVE)


class UnitListing(NamedTuple):
    """One row of ListUnitsByPatterns. A named tuple: god makes one per unit of every listing, and a frozen
    dataclass takes ~5x as long to build (~3 ms of each `pmsd ls` at 1,000 apps)."""

    name: str
    load_state: str
    active_state: ActiveState
    sub_state: str
    path: bytes
    has_job: bool = False


@dataclass(frozen=True)
class ServiceState:
    """What pmsd reads about one service unit; times are µs since the epoch, 0 when unset."""

    name: str
    load_state: str
    active_state: ActiveState
    sub_state: str
    result: str
    main_pid: int
    n_restarts: int
    exec_main_code: int  # CLD_EXITED (1), CLD_KILLED (2), CLD_DUMPED (3); 0 when it has not exited
    exec_main_status: int  # exit status, or signal number when killed
    memory_bytes: int | None
    cpu_nsec: int | None
    control_group: str
    invocation_id: str
    active_enter_usec: int
    exec_main_start_usec: int
    has_job: bool

    @property
    def running(self) -> bool:
        return self.active_state in RUNNING_STATES

    @property
    def waiting_restart(self) -> bool:
        return self.active_state == ActiveState.ACTIVATING and self.sub_state == AUTO_RESTART
