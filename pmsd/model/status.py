"""PM2's view of an app, derived from systemd's state of its unit plus the registry record."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

from pmsd.linux.procfs import FileReader, cgroup_cpu_usage_nsec, cgroup_memory_current, read_file, unit_pids, usage
from pmsd.model.counters import AppCounters
from pmsd.model.record import AppRecord
from pmsd.systemd.states import AUTO_RESTART, CLD_DUMPED, CLD_EXITED, CLD_KILLED, ActiveState, ServiceState


class Status(enum.StrEnum):
    LAUNCHING = "launching"
    ONLINE = "online"
    STOPPING = "stopping"
    STOPPED = "stopped"
    ERRORED = "errored"
    WAITING_RESTART = "waiting restart"


@dataclass(frozen=True)
class ProcessInfo:
    record: AppRecord
    unit: str
    status: Status
    pid: int
    restart_time: int
    unstable_restarts: int
    uptime_since_ms: int  # when the current run started (PM2's pm_uptime), 0 when not running
    memory_bytes: int
    cpu_percent: float
    exit_code: int | None
    invocation_id: str
    control_group: str
    # CPU time of the current run, in seconds (systemd's CPUUsageNSec, else the processes' utime+stime);
    # None when not running or not readable
    cpu_seconds: float | None = None

    @property
    def pm_id(self) -> int:
        return self.record.pm_id

    @property
    def name(self) -> str:
        return self.record.name

    @classmethod
    def of(cls, record: AppRecord, unit: str, status: Status, pid: int, restart_time: int, unstable_restarts: int,
           uptime_since_ms: int, memory_bytes: int, cpu_percent: float, exit_code: int | None, invocation_id: str,
           control_group: str, cpu_seconds: float | None) -> ProcessInfo:
        """ProcessInfo(...) with every field given, built without the frozen dataclass's __init__ (an
        object.__setattr__ a field, ~4x the cost): `pmsd ls` of 1,000 apps builds 2,000, in god and in the CLI."""
        info = object.__new__(cls)
        info.__dict__.update(record=record, unit=unit, status=status, pid=pid, restart_time=restart_time,
                             unstable_restarts=unstable_restarts, uptime_since_ms=uptime_since_ms,
                             memory_bytes=memory_bytes, cpu_percent=cpu_percent, exit_code=exit_code,
                             invocation_id=invocation_id, control_group=control_group, cpu_seconds=cpu_seconds)
        return info

    def for_record(self, record: AppRecord) -> ProcessInfo:
        """This state, of `record` (another read of the same app's record)."""
        info = object.__new__(ProcessInfo)
        info.__dict__.update(self.__dict__, record=record)
        return info


def pm2_status(state: ServiceState | None, autorestart: bool = True, stop_exit_codes: tuple[int, ...] = ()) -> Status:
    """systemd's (ActiveState, SubState, Result) in PM2's words."""
    if state is None:
        return Status.STOPPED
    if state.active_state in (ActiveState.ACTIVE, ActiveState.RELOADING):
        return Status.ONLINE
    if state.active_state == ActiveState.ACTIVATING:
        # In systemd 252 a service waiting for RestartSec= is "activating/auto-restart".
        return Status.WAITING_RESTART if state.sub_state == AUTO_RESTART else Status.LAUNCHING
    if state.active_state == ActiveState.DEACTIVATING:
        return Status.STOPPING
    if state.active_state == ActiveState.FAILED and _crash_loop_ended(state, autorestart, stop_exit_codes):
        return Status.ERRORED
    # inactive, or failed for a reason that is not a crash loop (autorestart off, a stop exit code):
    # PM2 calls both "stopped".
    return Status.STOPPED


def _crash_loop_ended(state: ServiceState, autorestart: bool, stop_exit_codes: tuple[int, ...]) -> bool:
    """Did the start rate limit derived from max_restarts/min_uptime stop the restarts (PM2's errored)?

    With Restart=always a unit only ends up failed when a restart was refused, or when it exited with one
    of RestartPreventExitStatus=. Result= does not say which: when the refused start happens during an
    automatic restart, service_start() keeps the crash's result ("exit-code") rather than
    "start-limit-hit", because only a successful result is overwritten (src/core/service.c).
    """
    if state.result == "start-limit-hit":
        return True
    if not autorestart:
        return False
    stopped_on_purpose = state.exec_main_code == CLD_EXITED and state.exec_main_status in stop_exit_codes
    return not stopped_on_purpose


def process_info(record: AppRecord, state: ServiceState | None, now: float | None = None,
                 counters: AppCounters | None = None, read: FileReader = read_file) -> ProcessInfo:
    """`counters` are god's (pmsd.state.counters): the restarts god made and the unstable ones. `read` reads the
    unit's cgroup files (god's keeps them open: pmsd.linux.heldfiles)."""
    status = pm2_status(state, record.spec.autorestart, record.spec.stop_exit_codes)
    running = state is not None and status in (Status.ONLINE, Status.LAUNCHING, Status.STOPPING)
    pid = state.main_pid if state is not None and running else 0
    started_usec = (state.exec_main_start_usec or state.active_enter_usec) if state is not None else 0
    memory, cpu = 0, 0.0
    used: float | None = None  # CPU seconds of the current run, None when unknown
    if state is not None and running:
        # Where systemd lacks a figure, the file it would read (cgroup v2, or a hybrid host's v1 memory and v2
        # cpu.stat); failing that, the unit's processes, listed once (pmsd.linux.procfs)
        memory_bytes = state.memory_bytes if state.memory_bytes is not None else cgroup_memory_current(
            state.control_group, read)
        cpu_nsec = state.cpu_nsec if state.cpu_nsec is not None else cgroup_cpu_usage_nsec(state.control_group, read)
        pids = unit_pids(state.control_group, state.main_pid) if None in (memory_bytes, cpu_nsec) else []
        usages = [usage(pid) for pid in pids]
        memory = memory_bytes if memory_bytes is not None else sum(rss for rss, _ in usages)
        if cpu_nsec is not None or pids:
            used = cpu_nsec / 1e9 if cpu_nsec is not None else sum(cpu for _, cpu in usages)
        if started_usec and used is not None:
            elapsed = (now if now is not None else time.time()) - started_usec / 1e6
            cpu = round(100.0 * used / elapsed, 1) if elapsed > 0 else 0.0
    exit_code = None
    if state is not None and state.exec_main_code:
        # CLD_EXITED carries a status; a signal death is reported like a shell would: 128 + signal.
        exit_code = state.exec_main_status if state.exec_main_code == CLD_EXITED else 128 + state.exec_main_status
    return ProcessInfo.of(
        record=record,
        unit=record.unit,
        status=status,
        pid=pid,
        restart_time=max(0, record.restart_offset + (state.n_restarts if state is not None else 0)
                         + (counters.restarts if counters is not None else 0)),
        unstable_restarts=max(0, (counters.unstable if counters is not None else 0) - record.unstable_offset),
        uptime_since_ms=started_usec // 1000 if running else 0,
        memory_bytes=memory,
        cpu_percent=cpu,
        exit_code=exit_code,
        invocation_id=state.invocation_id if state is not None else "",
        control_group=state.control_group if state is not None else "",
        cpu_seconds=used,
    )


# Signals after which systemd calls a service's end clean (service.c, "clean" exit statuses and signals).
_CLEAN_SIGNALS = frozenset({1, 2, 13, 15})  # SIGHUP, SIGINT, SIGPIPE, SIGTERM


# systemd's own exit statuses for a child that failed before or at execve() (EXIT_CHDIR 200 ... EXIT_EXEC 203
# ... 243; systemd.exec(5), "Process Exit Codes"): the app's code never ran.
_SETUP_FAILURE_STATUSES = range(200, 244)
# Results that only the start itself can produce (systemd.service(5), Result=; service_result_to_string()).
_START_RESULTS = frozenset({"resources", "timeout", "start-limit-hit", "protocol", "exec-condition"})


def failed_to_start(state: ServiceState | None, waits_for_ready: bool) -> bool:
    """Whether a unit whose start job has ended failed to *start*, rather than started and then exited.

    pmsd reads the unit after its start job has ended, so an app that ran and exited at once (status 3 with
    stop_exit_codes 3, or a crash in its first millisecond) is already `failed` by then: PM2 reports such an
    app started (then stopped or errored), and so does pmsd. A Type=exec start ends once execve() succeeded,
    so only systemd's own setup statuses (203: the program or its interpreter cannot be executed) and
    start-only results mean the start failed. A Type=notify (wait_ready) start ends at READY=1: any exit
    before then is a failed start.

    No state at all (None) means the unit is gone: an app that exited cleanly at once (autorestart off) is
    inactive, and systemd garbage-collects an inactive transient unit as soon as its job ends, before pmsd
    reads it (seen on systemd 257); a failed unit stays until its failure is reset (systemd.unit(5),
    CollectMode=). So it started, unless it was to say READY=1 first."""
    if state is None:
        return waits_for_ready
    if state.active_state != ActiveState.FAILED:
        return False
    if waits_for_ready or state.result in _START_RESULTS:
        return True
    return state.exec_main_code == CLD_EXITED and state.exec_main_status in _SETUP_FAILURE_STATUSES


def exit_detail(state: ServiceState) -> str:
    """How the unit's main process ended, for error messages."""
    if state.exec_main_code == CLD_EXITED:
        return f"exited with status {state.exec_main_status} ({_result_of_run(state)})"
    if state.exec_main_code in (CLD_KILLED, CLD_DUMPED):
        return f"killed by signal {state.exec_main_status} ({_result_of_run(state)})"
    return f"systemd reports {state.result}"


def _result_of_run(state: ServiceState) -> str:
    """The Result of the run ExecMain* describe. Once a Restart= has begun the next start, systemd resets
    Result to "success" while ExecMainCode/Status still tell how the last run ended: name that run's result
    as systemd did (service_result_to_string(): exit-code, signal, core-dump)."""
    if state.result != "success":
        return state.result
    if state.exec_main_code == CLD_EXITED and state.exec_main_status != 0:
        return "exit-code"
    if state.exec_main_code == CLD_DUMPED:
        return "core-dump"
    if state.exec_main_code == CLD_KILLED and state.exec_main_status not in _CLEAN_SIGNALS:
        return "signal"
    return state.result


# What god sends for each app for `pmsd ls` (its "status" method): the runtime part of a ProcessInfo, its values
# in this order (a list: at 1,000 apps, half the bytes of a mapping and ~6 ms less to build, encode and decode);
# the client pairs it with its own registry record.
RUNTIME_FIELDS = ("status", "unit", "pid", "restart_time", "unstable_restarts", "uptime_since_ms", "memory_bytes",
                  "cpu_percent", "exit_code", "invocation_id", "control_group", "cpu_seconds")


def runtime_row(info: ProcessInfo) -> list[object]:
    return [str(info.status), info.unit, info.pid, info.restart_time, info.unstable_restarts, info.uptime_since_ms,
            info.memory_bytes, info.cpu_percent, info.exit_code, info.invocation_id, info.control_group,
            info.cpu_seconds]


def info_from_row(record: AppRecord, row: object) -> ProcessInfo:
    """The ProcessInfo a runtime_row describes, for `record`; ValueError, KeyError or TypeError if it is not one."""
    if not isinstance(row, list) or len(row) != len(RUNTIME_FIELDS):
        raise ValueError(f"not a runtime row of {len(RUNTIME_FIELDS)} values: {row!r:.80}")
    (status, unit, pid, restart_time, unstable_restarts, uptime_since_ms, memory_bytes, cpu_percent, exit_code,
     invocation_id, control_group, cpu_seconds) = row
    return ProcessInfo.of(record=record, status=_STATUSES[status], unit=str(unit), pid=int(pid),
                          restart_time=int(restart_time), unstable_restarts=int(unstable_restarts),
                          uptime_since_ms=int(uptime_since_ms), memory_bytes=int(memory_bytes),
                          cpu_percent=float(cpu_percent), exit_code=None if exit_code is None else int(exit_code),
                          invocation_id=str(invocation_id), control_group=str(control_group),
                          cpu_seconds=None if cpu_seconds is None else float(cpu_seconds))


_STATUSES = {str(status): status for status in Status}  # a KeyError for no status, as Status() a ValueError
