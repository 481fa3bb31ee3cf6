"""systemd's signals about units as pmsd's own types: what changed in a unit, and units appearing and going.

A PropertiesChanged signal (or a GetAll reply) carries some of a unit's properties; `decode_change` turns the
ones pmsd follows into a `UnitChange`, where None means "not in this signal". Merging changes in the order
they came (newer fields win) gives the unit's current state, and `UnitChange.service_state` is the one place a
`ServiceState` is built from such a snapshot. No D-Bus here: bus.py hands these out, the rest of pmsd reads
them without knowing a property's name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pmsd.systemd.states import ActiveState, ServiceState, active_state

_T = TypeVar("_T")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _job_pending(value: Any) -> bool:
    # Job is (uo): the id of the unit's pending job, 0 when it has none, and the job's object path.
    return bool(value[0])


@dataclass(frozen=True)
class UnitChange:
    """Properties of one unit as one signal (or a merge of several) tells them; None = not told.

    Times are µs since the epoch (0: never happened); invocation_id is hex.
    """

    load_state: str | None = None
    active_state: ActiveState | None = None
    sub_state: str | None = None
    result: str | None = None
    main_pid: int | None = None
    exec_main_pid: int | None = None  # the main process's pid, kept after it exited (main_pid goes to 0)
    n_restarts: int | None = None  # automatic restarts of this unit (restarts asked for are not counted)
    exec_main_code: int | None = None  # CLD_EXITED, CLD_KILLED, CLD_DUMPED; 0 while it has not exited
    exec_main_status: int | None = None  # exit status, or signal number when killed
    exec_main_start_usec: int | None = None
    exec_main_exit_usec: int | None = None
    active_enter_usec: int | None = None
    state_change_usec: int | None = None
    control_group: str | None = None
    invocation_id: str | None = None
    has_job: bool | None = None

    def told(self) -> dict[str, Any]:
        """The fields this change carries."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                if getattr(self, field.name) is not None}

    def is_empty(self) -> bool:
        values = list(vars(self).values())
        return values.count(None) == len(values)  # counted in C: god asks it of every app per `ls`

    def merge(self, newer: UnitChange) -> UnitChange:
        """This state with `newer`'s fields on top (what a later signal says wins)."""
        return dataclasses.replace(self, **newer.told())

    def service_state(self, unit: str, memory_bytes: int | None = None, cpu_nsec: int | None = None) -> ServiceState:
        """The unit's ServiceState from what is known: fields never told read as a unit that has not run."""
        return ServiceState(
            name=unit,
            load_state=_or(self.load_state, "loaded"),
            active_state=_or(self.active_state, ActiveState.INACTIVE),
            sub_state=_or(self.sub_state, "dead"),
            result=_or(self.result, "success"),
            main_pid=_or(self.main_pid, 0),
            n_restarts=_or(self.n_restarts, 0),
            exec_main_code=_or(self.exec_main_code, 0),
            exec_main_status=_or(self.exec_main_status, 0),
            memory_bytes=memory_bytes,
            cpu_nsec=cpu_nsec,
            control_group=_or(self.control_group, ""),
            invocation_id=_or(self.invocation_id, ""),
            active_enter_usec=_or(self.active_enter_usec, 0),
            exec_main_start_usec=_or(self.exec_main_start_usec, 0),
            has_job=_or(self.has_job, False),
        )


def _or(value: _T | None, default: _T) -> _T:
    return default if value is None else value


# systemd's property (Unit and Service interfaces) -> UnitChange field, and how its value reads.
_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "LoadState": ("load_state", _text),
    "ActiveState": ("active_state", lambda value: active_state(_text(value))),
    "SubState": ("sub_state", _text),
    "Result": ("result", _text),
    "MainPID": ("main_pid", int),
    "ExecMainPID": ("exec_main_pid", int),
    "NRestarts": ("n_restarts", int),
    "ExecMainCode": ("exec_main_code", int),
    "ExecMainStatus": ("exec_main_status", int),
    "ExecMainStartTimestamp": ("exec_main_start_usec", int),
    "ExecMainExitTimestamp": ("exec_main_exit_usec", int),
    "ActiveEnterTimestamp": ("active_enter_usec", int),
    "StateChangeTimestamp": ("state_change_usec", int),
    "ControlGroup": ("control_group", _text),
    "InvocationID": ("invocation_id", lambda value: bytes(value or b"").hex()),
    "Job": ("has_job", _job_pending),
}


def decode_change(properties: Mapping[Any, Any]) -> UnitChange:
    """A PropertiesChanged (or GetAll) property dict, keyed by name (str or bytes), as a UnitChange; the
    properties pmsd does not follow are left out."""
    told: dict[str, Any] = {}
    for key, value in properties.items():
        known = _FIELDS.get(_text(key))
        if known is not None:
            name, read = known
            told[name] = read(value)
    return UnitChange(**told)


@dataclass(frozen=True)
class UnitChanged:
    """Some of the unit's properties changed (one PropertiesChanged signal)."""

    unit: str
    change: UnitChange


@dataclass(frozen=True)
class UnitNew:
    """systemd loaded the unit (it was created, or something referenced it)."""

    unit: str


@dataclass(frozen=True)
class UnitRemoved:
    """systemd unloaded the unit (it was garbage-collected: stopped, or about to be created again)."""

    unit: str


UnitSignal = UnitChanged | UnitNew | UnitRemoved
