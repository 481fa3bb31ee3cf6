"""Whether a god that a command started is coming up, or why not (pmsd.api.god.start_failure)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pmsd.api.god import god_command, start_failure
from pmsd.systemd.states import ActiveState
from tests.unit.helpers import make_state

ASKED = 1_700_000_000_000_000


def test_not_loaded() -> None:
    assert start_failure(None, ASKED) == "systemd has no unit pmsd-god.service"


def test_active_or_starting_is_no_failure() -> None:
    assert start_failure(make_state(), ASKED) is None
    assert start_failure(make_state(active_state=ActiveState.ACTIVATING, sub_state="start"), ASKED) is None


def test_gave_up() -> None:
    state = make_state(active_state=ActiveState.FAILED, sub_state="failed", result="exit-code", exec_main_code=1,
                       exec_main_status=1, exec_main_start_usec=0)
    assert start_failure(state, ASKED) == "exited with status 1 (exit-code)"


def test_our_run_crashed_and_waits_for_its_restart() -> None:
    state = make_state(active_state=ActiveState.ACTIVATING, sub_state="auto-restart", result="exit-code",
                       exec_main_code=1, exec_main_status=1, exec_main_start_usec=ASKED + 50_000)
    assert start_failure(state, ASKED) == "exited with status 1 (exit-code)"


def test_an_earlier_run_killed_before_we_asked_is_no_failure() -> None:
    """god killed (kill -9) and waiting for systemd's restart when a command starts it: it is coming back."""
    state = make_state(active_state=ActiveState.ACTIVATING, sub_state="auto-restart", result="signal",
                       exec_main_code=2, exec_main_status=9, exec_main_start_usec=ASKED - 60_000_000)
    assert start_failure(state, ASKED) is None


def test_god_runs_this_interpreter_as_invoked_not_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A venv's python is a symlink to the base interpreter; resolving it would leave the venv."""
    link = tmp_path / "venv" / "bin" / "python"
    link.parent.mkdir(parents=True)
    link.symlink_to(sys.executable)
    monkeypatch.setattr(sys, "executable", str(link))
    assert god_command() == f"{link} -m pmsd.god"
