from __future__ import annotations

import os

import pytest

from pmsd.model.status import Status, exit_detail, pm2_status, process_info
from tests.unit.helpers import make_record, make_state

CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3
STARTED_S = 1_700_000_000  # make_state's ExecMainStartTimestamp, in seconds


def test_no_unit_is_stopped() -> None:
    assert pm2_status(None) is Status.STOPPED


@pytest.mark.parametrize(("active", "sub", "result", "expected"), [
    ("active", "running", "success", Status.ONLINE),
    ("reloading", "reload", "success", Status.ONLINE),
    ("activating", "auto-restart", "exit-code", Status.WAITING_RESTART),
    ("activating", "start", "success", Status.LAUNCHING),
    ("activating", "start-pre", "success", Status.LAUNCHING),
    ("deactivating", "stop-sigterm", "success", Status.STOPPING),
    ("deactivating", "final-sigkill", "success", Status.STOPPING),
    ("inactive", "dead", "success", Status.STOPPED),
    ("failed", "failed", "start-limit-hit", Status.ERRORED),
])
def test_state_mapping(active: str, sub: str, result: str, expected: Status) -> None:
    assert pm2_status(make_state(active_state=active, sub_state=sub, result=result)) is expected


def test_failed_without_autorestart_is_stopped() -> None:
    state = make_state(active_state="failed", sub_state="failed", result="exit-code", exec_main_code=CLD_EXITED,
                       exec_main_status=1)
    assert pm2_status(state, autorestart=False) is Status.STOPPED


def test_failed_on_a_stop_exit_code_is_stopped() -> None:
    state = make_state(active_state="failed", sub_state="failed", result="exit-code", exec_main_code=CLD_EXITED,
                       exec_main_status=3)
    assert pm2_status(state, autorestart=True, stop_exit_codes=(0, 3)) is Status.STOPPED


def test_failed_with_autorestart_means_the_start_limit_refused_a_restart() -> None:
    # systemd keeps the crash's Result= ("exit-code") when the refused start was an automatic restart.
    state = make_state(active_state="failed", sub_state="failed", result="exit-code", exec_main_code=CLD_EXITED,
                       exec_main_status=1)
    assert pm2_status(state, autorestart=True, stop_exit_codes=(0, 3)) is Status.ERRORED


def test_killed_by_a_signal_matching_a_stop_code_number_is_still_errored() -> None:
    state = make_state(active_state="failed", sub_state="failed", result="signal", exec_main_code=CLD_KILLED,
                       exec_main_status=3)
    assert pm2_status(state, autorestart=True, stop_exit_codes=(3,)) is Status.ERRORED


def test_start_limit_hit_is_errored_even_without_autorestart() -> None:
    state = make_state(active_state="failed", sub_state="failed", result="start-limit-hit")
    assert pm2_status(state, autorestart=False) is Status.ERRORED


def test_status_values_are_pm2s_words() -> None:
    assert [str(s) for s in Status] == ["launching", "online", "stopping", "stopped", "errored", "waiting restart"]


# ------------------------------------------------------------------------------------------ process_info


def test_running_process() -> None:
    state = make_state(main_pid=4242, memory_bytes=1234, cpu_nsec=5 * 10**9, n_restarts=2)
    info = process_info(make_record(pm_id=3, restart_offset=4), state, now=STARTED_S + 10)
    assert info.status is Status.ONLINE
    assert (info.pm_id, info.name, info.unit) == (3, "main", "pmsd-main.service")
    assert info.pid == 4242
    assert info.restart_time == 6
    assert info.uptime_since_ms == STARTED_S * 1000
    assert info.memory_bytes == 1234
    assert info.cpu_percent == 50.0
    assert info.exit_code is None
    assert info.invocation_id == "0123456789abcdef0123456789abcdef"


def test_no_unit() -> None:
    info = process_info(make_record(restart_offset=5), None, now=STARTED_S)
    assert info.status is Status.STOPPED
    assert (info.pid, info.memory_bytes, info.cpu_percent, info.uptime_since_ms) == (0, 0, 0.0, 0)
    assert info.restart_time == 5
    assert info.exit_code is None
    assert (info.invocation_id, info.control_group) == ("", "")


@pytest.mark.parametrize(("offset", "n_restarts", "expected"), [(0, 0, 0), (0, 3, 3), (2, 3, 5), (-3, 3, 0),
                                                                (-5, 3, 0)])
def test_restart_time_is_offset_plus_nrestarts(offset: int, n_restarts: int, expected: int) -> None:
    info = process_info(make_record(restart_offset=offset), make_state(n_restarts=n_restarts), now=STARTED_S)
    assert info.restart_time == expected


def test_waiting_restart_shows_no_process() -> None:
    state = make_state(active_state="activating", sub_state="auto-restart", main_pid=0, memory_bytes=None,
                       exec_main_code=CLD_EXITED, exec_main_status=1)
    info = process_info(make_record(), state, now=STARTED_S + 5)
    assert info.status is Status.WAITING_RESTART
    assert (info.pid, info.memory_bytes, info.cpu_percent, info.uptime_since_ms) == (0, 0, 0.0, 0)
    assert info.exit_code == 1


@pytest.mark.parametrize(("code", "status", "expected"), [
    (CLD_EXITED, 0, 0), (CLD_EXITED, 3, 3), (CLD_EXITED, 255, 255),
    (CLD_KILLED, 9, 137), (CLD_KILLED, 15, 143), (CLD_DUMPED, 11, 139),
])
def test_exit_code_like_a_shell(code: int, status: int, expected: int) -> None:
    state = make_state(active_state="inactive", sub_state="dead", main_pid=0, exec_main_code=code,
                       exec_main_status=status)
    assert process_info(make_record(), state, now=STARTED_S).exit_code == expected


def test_unknown_memory_is_zero() -> None:
    info = process_info(make_record(), make_state(memory_bytes=None), now=STARTED_S + 1)
    assert info.memory_bytes == 0


def test_uptime_falls_back_to_active_enter_timestamp() -> None:
    state = make_state(exec_main_start_usec=0, active_enter_usec=(STARTED_S + 1) * 10**6)
    assert process_info(make_record(), state, now=STARTED_S + 2).uptime_since_ms == (STARTED_S + 1) * 1000


def test_cpu_is_zero_before_any_time_elapsed() -> None:
    assert process_info(make_record(), make_state(cpu_nsec=10**9), now=STARTED_S).cpu_percent == 0.0


def test_errored_app_from_record_settings() -> None:
    state = make_state(active_state="failed", sub_state="failed", result="exit-code", main_pid=0,
                       exec_main_code=CLD_EXITED, exec_main_status=1)
    assert process_info(make_record(autorestart=True), state, now=STARTED_S).status is Status.ERRORED
    assert process_info(make_record(autorestart=False), state, now=STARTED_S).status is Status.STOPPED
    assert process_info(make_record(stop_exit_codes=(1,)), state, now=STARTED_S).status is Status.STOPPED


def test_memory_without_a_systemd_figure_is_read_from_the_processes() -> None:
    """Where systemd has no MemoryCurrent (no memory controller for the unit, e.g. cgroup v1 user units), the
    figure is the processes' resident memory, not 0 (issue 11 item 8)."""
    info = process_info(make_record(), make_state(memory_bytes=None, main_pid=os.getpid(), control_group=""))
    assert info.memory_bytes > 1024 * 1024  # this Python process


def test_memory_from_systemd_is_used_as_it_is() -> None:
    assert process_info(make_record(), make_state(memory_bytes=12345)).memory_bytes == 12345


@pytest.mark.parametrize(("result", "code", "status", "expected"), [
    ("exit-code", 1, 1, "exited with status 1 (exit-code)"),
    # Restart= has begun the next start: Result is "success" again, ExecMain* still tell the last run's end.
    ("success", 1, 1, "exited with status 1 (exit-code)"),
    ("success", 2, 9, "killed by signal 9 (signal)"),
    ("success", 3, 6, "killed by signal 6 (core-dump)"),
    ("success", 2, 15, "killed by signal 15 (success)"),  # a clean signal: systemd calls it success too
    ("success", 1, 0, "exited with status 0 (success)"),
])
def test_exit_detail_names_the_result_of_the_run_that_ended(result: str, code: int, status: int,
                                                             expected: str) -> None:
    state = make_state(active_state="activating", sub_state="auto-restart", result=result, exec_main_code=code,
                       exec_main_status=status)
    assert exit_detail(state) == expected


def test_a_process_usage_is_read_from_one_file() -> None:
    """(resident bytes, CPU seconds) from /proc/PID/stat alone agree with statm's resident figure and the CPU
    time, and a process that is gone is (0, 0.0)."""
    import os

    from pmsd.linux.procfs import rss_bytes, usage

    before = os.times()
    rss, cpu = usage(os.getpid())
    after = os.times()
    assert abs(rss - rss_bytes(os.getpid())) < rss // 10
    # /proc counts in clock ticks, os.times() more finely: a tick either way.
    assert before.user + before.system - 0.01 <= cpu <= after.user + after.system + 0.01
    assert usage(2**22 + 1) == (0, 0.0)  # above the largest pid_max
