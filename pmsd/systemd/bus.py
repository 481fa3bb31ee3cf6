"""A connection to a systemd manager (user or system) over D-Bus, through pystemd's low-level binding.

Everything above this module works with pmsd's own types; only here do unit properties travel as
(name, signature, value) triples and strings as bytes. pystemd.dbuslib is used directly because its
high-level objects introspect every unit (slow) and its signature table lacks properties pmsd needs.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pmsd.systemd import lean_import

lean_import.install()

from pystemd.dbusexc import (  # type: ignore[import-not-found, unused-ignore]  # noqa: E402
    DBusAccessDeniedError,
    DBusBaseError,
    DBusInvalidArgsError,
    DBusNoSuchUnitError,
)
from pystemd.dbuslib import DBus, DBusAddress, apply_signature  # noqa: E402

from pmsd.errors import ExitStatus, PmsdError  # noqa: E402
from pmsd.systemd.paths import private_socket, scope_flag  # noqa: E402
from pmsd.systemd.properties import (  # noqa: E402
    MANAGER,
    MANAGER_PATH,
    PROPERTIES,
    SERVICE,
    UNIT,
    UNIT_PATH_PREFIX,
    UnitProperty,
    decode,
    decode_properties,
    encode_properties,
    unit_of_path,
    unit_path,
)
from pmsd.systemd.signals import UnitChange, UnitChanged, UnitNew, UnitRemoved, UnitSignal, decode_change  # noqa: E402
from pmsd.systemd.states import RUNNING_STATES, ServiceState, UnitListing, active_state  # noqa: E402

DESTINATION = b"org.freedesktop.systemd1"
UNIT_EXISTS = "org.freedesktop.systemd1.UnitExists"  # BUS_ERROR_UNIT_EXISTS (src/core/dbus-manager.c)
_CLOSE = (-1, None)


_UNSET = 2**64 - 1  # systemd's "not set" for accounting properties (UINT64_MAX)


class Manager:
    """One open connection to a systemd manager."""

    def __init__(self, bus: Any, user: bool) -> None:
        self._bus = bus
        self.user = user
        self.scope_label = "user" if user else "system"
        self._version: int | None = None
        self._signal_callbacks: list[Any] = []

    # -------------------------------------------------------------------------------- connection
    @classmethod
    def connect(cls, user: bool) -> Manager:
        path = private_socket(user, os.environ)
        private = path if os.access(path, os.R_OK | os.W_OK) else None
        try:
            if private is not None:
                # The manager's own socket: no dbus-daemon hop, and it works before the bus is up.
                bus: Any = DBusAddress(f"unix:path={private}".encode(), True)
            else:
                bus = DBus(user_mode=user)
            bus.open()
        except DBusBaseError as error:
            raise _unreachable(user, path, error) from None
        manager = cls(bus, user)
        manager.version  # fail here, with the hint, if nothing answers  # noqa: B018
        return manager

    def close(self) -> None:
        self._bus.close()

    @property
    def version(self) -> int:
        """The running manager's major version (feature gates use this, never the OS name)."""
        if self._version is None:
            raw = self._get(MANAGER_PATH, MANAGER, "Version", "s", "")
            match = re.match(r"v?(\d+)", raw)
            self._version = int(match.group(1)) if match else 0
        return self._version

    # -------------------------------------------------------------------------------- jobs
    def start_transient(self, unit: str, properties: Sequence[UnitProperty],
                        aux: Sequence[tuple[str, Sequence[UnitProperty]]] = ()) -> str:
        """StartTransientUnit; `aux` units are created with it (a timer's service, as systemd-run does)."""
        args = apply_signature(b"ss", [unit.encode(), b"fail"]) + encode_properties(properties)
        args.append((ord("a"), b"(sa(sv))"))
        for name, props in aux:
            args += [(ord("r"), b"sa(sv)"), *apply_signature(b"s", [name.encode()]), *encode_properties(props),
                     _CLOSE]
        args.append(_CLOSE)
        return str(decode(self._call(MANAGER_PATH, MANAGER, b"StartTransientUnit", args, unit)))

    def stop(self, unit: str) -> None:
        self._call(MANAGER_PATH, MANAGER, b"StopUnit", apply_signature(b"ss", [unit.encode(), b"replace"]), unit)

    def start_unit(self, unit: str, mode: str = "replace") -> None:
        self._call(MANAGER_PATH, MANAGER, b"StartUnit", apply_signature(b"ss", [unit.encode(), mode.encode()]), unit)

    def try_restart_unit(self, unit: str) -> None:
        """TryRestartUnit in "fail" mode: a running unit is stopped and started again, one waiting in
        auto-restart is started at once (the documented way past RestartSec=; systemd's NRestarts does not
        count it). A unit stopped meanwhile stays stopped: for an inactive or deactivating unit the job is a
        no-op (job_type_collapse() in src/core/job.c), and "fail" refuses it beside a pending stop job, where
        RestartUnit's "replace" would have cancelled the stop (god's restart racing `pmsd delete`)."""
        self._call(MANAGER_PATH, MANAGER, b"TryRestartUnit", apply_signature(b"ss", [unit.encode(), b"fail"]),
                   unit)

    def kill_unit(self, unit: str, signal: int, whom: str = "main") -> None:
        """KillUnit: send `signal` to the unit's main process ("main"), or to every process of it ("all")."""
        self._call(MANAGER_PATH, MANAGER, b"KillUnit",
                   apply_signature(b"ssi", [unit.encode(), whom.encode(), signal]), unit)

    def reload(self) -> None:
        """daemon-reload: needed when a unit file pmsd wrote changed (a new file is found without it)."""
        self._call(MANAGER_PATH, MANAGER, b"Reload", [], "")

    def reset_failed(self, unit: str) -> None:
        with contextlib.suppress(UnitGone):
            self._call(MANAGER_PATH, MANAGER, b"ResetFailedUnit", apply_signature(b"s", [unit.encode()]), unit)

    # -------------------------------------------------------------------------------- queries
    def list_units(self, patterns: Iterable[str]) -> list[UnitListing]:
        args = apply_signature(b"asas", [[], [p.encode() for p in patterns]])
        body = self._call(MANAGER_PATH, MANAGER, b"ListUnitsByPatterns", args, "")
        # Rows are (name, description, load, active, sub, following, path, job id, job type, job path).
        return [UnitListing(decode(row[0]), decode(row[2]), active_state(decode(row[3])), decode(row[4]), row[6],
                            bool(row[7])) for row in body]

    def service_state(self, unit: str, path: bytes | None = None,
                      listing: UnitListing | None = None) -> ServiceState | None:
        """The unit's state, or None when systemd has no such unit loaded.

        Individual Get calls for the dozen properties pmsd shows: the two GetAll calls that would return
        them carry ~400 properties and cost ~6 ms per unit, which made `pmsd ls` of 100 apps slower than
        PM2. A ListUnitsByPatterns row (`listing`) already holds the load/active/sub states and the job.
        """
        object_path = path or (listing.path if listing is not None else unit_path(unit))
        try:
            if listing is None:
                load_state = self._get(object_path, UNIT, "LoadState", "s", unit)
                if load_state in ("not-found", "stub"):
                    return None
                # The job first (separate calls): "no job" then means the states read next are its outcome,
                # never the "activating" read before a job that ended in between (a failed start looked started).
                job = self._get(object_path, UNIT, "Job", "(uo)", unit)
                has_job = bool(job and job[0])
                active = active_state(self._get(object_path, UNIT, "ActiveState", "s", unit))
                sub_state = self._get(object_path, UNIT, "SubState", "s", unit)
            else:
                load_state, active, sub_state = listing.load_state, listing.active_state, listing.sub_state
                has_job = listing.has_job
            get = functools.partial(self._get, object_path, SERVICE, unit=unit)
            running = active in RUNNING_STATES
            exited = active != "active"
            memory = get("MemoryCurrent", "t") if running else _UNSET
            cpu = get("CPUUsageNSec", "t") if running else _UNSET
            invocation = self._get(object_path, UNIT, "InvocationID", "ay", unit)
            exec_start = int(get("ExecMainStartTimestamp", "t")) if running else 0
            # No ExecMainStartTimestamp (e.g. right after a manager restart): the unit's own activation time.
            active_enter = (int(self._get(object_path, UNIT, "ActiveEnterTimestamp", "t", unit))
                            if running and not exec_start else 0)
            return UnitChange(
                load_state=load_state,
                active_state=active,
                sub_state=sub_state,
                result=get("Result", "s") if exited else "success",
                main_pid=int(get("MainPID", "u")) if running else 0,
                n_restarts=int(get("NRestarts", "u")),
                exec_main_code=int(get("ExecMainCode", "i")) if exited else 0,
                exec_main_status=int(get("ExecMainStatus", "i")) if exited else 0,
                control_group=get("ControlGroup", "s") if running else "",
                invocation_id=bytes(invocation or b"").hex(),
                active_enter_usec=active_enter,
                exec_main_start_usec=exec_start,
                has_job=has_job,
            ).service_state(unit, memory_bytes=None if memory == _UNSET else int(memory),
                            cpu_nsec=None if cpu == _UNSET else int(cpu))
        except UnitGone:
            return None

    def loaded_path(self, unit: str) -> bytes | None:
        """The object path of a loaded unit, None when systemd has none loaded: GetUnit alone, which (unlike
        LoadUnit, or a property read on the unit's path) does not make systemd look for the unit's file."""
        try:
            return bytes(self._call(MANAGER_PATH, MANAGER, b"GetUnit", apply_signature(b"s", [unit.encode()]), unit))
        except UnitGone:
            return None

    def unit_summary(self, unit: str) -> tuple[str, str] | None:
        """(ActiveState, Description) of a loaded unit of any type, None when systemd has none loaded
        (GetUnit, unlike LoadUnit, does not load it)."""
        path = self.loaded_path(unit)
        try:
            return None if path is None else (str(self._get(path, UNIT, "ActiveState", "s", unit)),
                                              str(self._get(path, UNIT, "Description", "s", unit)))
        except UnitGone:
            return None

    def needs_reload(self, unit: str) -> bool:
        """NeedDaemonReload of a loaded unit: its file changed since systemd read it. False if not loaded."""
        path = self.loaded_path(unit)
        try:
            return path is not None and bool(self._get(path, UNIT, "NeedDaemonReload", "b", unit))
        except UnitGone:
            return False

    def service_property(self, unit: str, name: str, signature: str) -> Any:
        """One property of the service interface, e.g. ("StatusText", "s"): its last sd_notify STATUS=."""
        return self._get(unit_path(unit), SERVICE, name, signature, unit)

    def unit_snapshot(self, unit: str) -> UnitChange:
        """Everything a UnitChanged can tell about a loaded unit, read at once from the Unit and Service
        interfaces (god seeds its view of a unit with this once, then follows the signals)."""
        # One GetAll with no interface name: sd-bus answers with every interface's properties in one reply
        # (object_find_and_run() in src/libsystemd/sd-bus/bus-objects.c), all read in one iteration of the
        # manager's loop. Two calls (Unit, then Service) let a restart come between them: NRestarts from after
        # it, the states from before, and god counted that exit twice.
        body = self._call(unit_path(unit), PROPERTIES, b"GetAll", apply_signature(b"s", [b""]), unit)
        return decode_change(decode_properties(body))

    # -------------------------------------------------------------------------------- signals
    def subscribe(self, callback: Callable[[UnitSignal], None], prefix: str = "") -> None:
        """Call callback(signal) for every PropertiesChanged, UnitNew and UnitRemoved of a unit whose name
        starts with `prefix`, as UnitChanged, UnitNew and UnitRemoved (the Manager's other signals, JobRemoved
        and the like, are dropped). On the manager's private socket systemd sends every signal to every
        connection; Subscribe() is what makes it send them on the bus as well."""
        # Object paths escape each character of the name on its own: a name's prefix is its path's prefix,
        # so other units' signals are dropped before their bodies are decoded.
        path_prefix = unit_path(prefix) if prefix else UNIT_PATH_PREFIX + b"/"

        def on_message(message: Any, error: Any = None, userdata: Any = None) -> int:
            # The header fields first, the body only for a signal that may be wanted: decoding a body is most of
            # what god spends on a burst (~50 us a message; 15 messages a unit as 1,000 apps start), and a job's
            # signals or another unit's are dropped unread.
            path, member = message.get_path() or b"", message.get_member() or b""
            if not _may_be_wanted(path, member, path_prefix):
                return 0
            message.process_reply(False)
            signal = _unit_signal(path, member, message.body, path_prefix, prefix)
            if signal is not None:
                callback(signal)
            return 0

        # pystemd hands sd-bus a bare pointer to the callback without keeping a reference: keep one here, or
        # the first signal after the closure is collected crashes the process.
        self._signal_callbacks.append(on_message)
        # No sender filter: on a direct (peer-to-peer) connection messages carry no sender at all.
        self._bus.match_signal(None, None, PROPERTIES, b"PropertiesChanged", on_message)
        self._bus.match_signal(None, MANAGER_PATH, MANAGER, None, on_message)
        self._call(MANAGER_PATH, MANAGER, b"Subscribe", [], "")

    def fileno(self) -> int:
        return int(self._bus.get_fd())

    def dispatch(self, deadline: float) -> bool:
        """Process received messages (signal callbacks run here): True once none is left, False at `deadline`."""
        while not self._bus.process().is_empty():
            if time.monotonic() >= deadline:
                return False
        return True

    def wait_until(self, unit: str, done: Any, timeout: float, what: str) -> ServiceState | None:
        """Poll the unit until done(state) is true; PmsdError naming `what` and the last state otherwise."""
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            state = self.service_state(unit)
            if done(state):
                return state
            if time.monotonic() > deadline:
                seen = "gone" if state is None else f"{state.active_state}/{state.sub_state}"
                raise PmsdError(f"{unit}: timed out after {timeout:g} s waiting for {what} (last seen: {seen})",
                                f"inspect it with: systemctl {scope_flag(self.user)} status {unit}")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    # -------------------------------------------------------------------------------- plumbing
    def _get(self, path: bytes, interface: bytes, name: str, signature: str, unit: str) -> Any:
        try:
            return decode(self._bus.get_property(DESTINATION, path, interface, name.encode(), signature.encode()))
        except DBusBaseError as error:
            raise _translated(error, unit, self.scope_label) from None

    def _call(self, path: bytes, interface: bytes, method: bytes, args: list[Any], unit: str) -> Any:
        try:
            return self._bus.call_method(DESTINATION, path, interface, method, args).body
        except DBusBaseError as error:
            raise _translated(error, unit, self.scope_label) from None


# MemoryPeak (the cgroup's memory.peak) is on the bus from systemd 255 (NEWS for v255); older managers lack it.
MEMORY_PEAK_SINCE = 255


def memory_peak(manager: Manager, unit: str) -> int | None:
    """The highest memory the unit's cgroup has used since it started, where the manager reports it (systemd
    >= 255, and a cgroup whose memory controller keeps memory.peak); None otherwise."""
    if manager.version < MEMORY_PEAK_SINCE:
        return None
    try:
        value = int(manager.service_property(unit, "MemoryPeak", "t"))
    except PmsdError:
        return None
    return None if value == _UNSET else value


def control_group(manager: Manager) -> str:
    """The manager's own cgroup, its Manager property ControlGroup (org.freedesktop.systemd1(5)): a user manager's
    user@UID.service, "" for the system manager at the root. A function beside the class: Manager is at its size
    limit."""
    return str(manager._get(MANAGER_PATH, MANAGER, "ControlGroup", "s", "") or "")


def memory_current(manager: Manager, unit: str) -> int | None:
    value = manager.service_property(unit, "MemoryCurrent", "t")
    return None if value == _UNSET else int(value)


def _may_be_wanted(path: bytes, member: bytes, path_prefix: bytes) -> bool:
    """Whether a signal can become a UnitSignal, from its header alone (see _unit_signal)."""
    if member == b"PropertiesChanged":
        return path.startswith(path_prefix)
    return member in (b"UnitNew", b"UnitRemoved")


def _unit_signal(path: bytes, member: bytes, body: Any, path_prefix: bytes, prefix: str) -> UnitSignal | None:
    """A signal as pmsd's type, or None when it is not about a unit whose name starts with `prefix`."""
    if member == b"PropertiesChanged":
        # body: (interface, {property: value}, [invalidated properties])
        if not path.startswith(path_prefix):
            return None
        return UnitChanged(unit_of_path(path), decode_change(decode_properties(body[1])))
    if member in (b"UnitNew", b"UnitRemoved"):
        # body: (unit name, unit object path)
        unit = str(decode(body[0]))
        if not unit.startswith(prefix):
            return None
        return UnitNew(unit) if member == b"UnitNew" else UnitRemoved(unit)
    return None


class UnitGone(PmsdError):
    """systemd has no such unit (loaded)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=ExitStatus.NOT_FOUND)


class UnitExists(PmsdError):
    """StartTransientUnit: a unit of that name is loaded (or has a unit file)."""


def _translated(error: Any, unit: str, scope_label: str) -> PmsdError:
    """A pystemd error as pmsd's, saying what systemd said and, where it helps, what to do."""
    message = decode(getattr(error, "err_message", b"")) or str(error)
    if isinstance(error, DBusNoSuchUnitError):
        return UnitGone(message)
    said = f"systemd {scope_label} manager: {message}" + (f" ({unit})" if unit else "")
    if decode(getattr(error, "err_name", b"") or b"") == UNIT_EXISTS or getattr(error, "errno", 0) == -errno.EEXIST:
        return UnitExists(said)  # a kind of its own for the callers that make room; to people, as any other
    if isinstance(error, DBusAccessDeniedError) or getattr(error, "errno", 0) in (-1, -13):
        return PmsdError(f"systemd refused: {message}",
                         "manage system units as root, or use the user manager (--user)",
                         ExitStatus.PERMISSION)
    if isinstance(error, DBusInvalidArgsError):
        return PmsdError(f"systemd rejected {unit or 'the request'}: {message}", status=ExitStatus.USAGE)
    return PmsdError(said)


def _unreachable(user: bool, path: str, error: Any) -> PmsdError:
    # pystemd's own text ("Could not open a bus to DBus") says neither where it looked nor why.
    why = os.strerror(-error.errno) if isinstance(getattr(error, "errno", None), int) and error.errno < 0 \
        else str(error)
    scope = "user" if user else "system"
    return PmsdError(f"cannot reach the systemd {scope} manager: neither its socket {path} nor the {scope} bus "
                     f"answers ({why})", _no_manager_hint(user), ExitStatus.NO_SYSTEMD)


def _no_manager_hint(user: bool) -> str:
    if user:
        return ("pmsd runs your apps under your systemd user manager, which systemd starts when you log in, or "
                "at boot with lingering (`loginctl enable-linger $USER`). In a shell without a login session "
                "(su, sudo, cron), set XDG_RUNTIME_DIR=/run/user/$(id -u). On a host whose PID 1 is not systemd "
                "(most containers) there is no user manager: see pmsd's README, Requirements.")
    return ("pmsd --system needs systemd running as PID 1 (`ps -p 1 -o comm=` tells which init runs); without it, "
            "use your user manager (drop --system)")
