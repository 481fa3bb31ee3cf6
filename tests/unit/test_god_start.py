"""Whether a god that a command started is coming up, or why not (pmsd.api.god.start_failure)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pmsd.api.god import ensure_god, god_command, remove_shadowing_runtime_unit, start_failure
from pmsd.context import Context
from pmsd.definition.god_unit import god_unit_text
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
    assert god_command() == f"{link} -P -m pmsd.god"


def _runtime_unit(tmp_path: Path, text: str) -> tuple[Context, Path]:
    ctx = Context(user=True, environ={"XDG_RUNTIME_DIR": str(tmp_path)}, state_dir=str(tmp_path / "state"))
    path = tmp_path / "systemd" / "user" / "pmsd-god.service"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return ctx, path


def test_a_runtime_god_unit_pmsd_wrote_goes_once_a_packaged_one_exists(tmp_path: Path) -> None:
    """Regression: a god unit left in /run by a pip-installed pmsd shadowed the distro package's unit (the
    runtime directory comes first), so god kept running the venv's code after the package was installed."""
    ctx, path = _runtime_unit(tmp_path, god_unit_text(True, "/opt/venv/bin/python -m pmsd.god"))
    assert remove_shadowing_runtime_unit(ctx) is True
    assert not path.exists()
    assert remove_shadowing_runtime_unit(ctx) is False  # nothing left to remove: no reload


def test_a_runtime_god_unit_someone_else_wrote_stays(tmp_path: Path) -> None:
    ctx, path = _runtime_unit(tmp_path, "[Unit]\nDescription=the admin's own god\n")
    assert remove_shadowing_runtime_unit(ctx) is False
    assert path.exists()


def test_god_cron_and_startup_commands_do_not_import_from_their_working_directory() -> None:
    """Regression: god runs in the user's home; a checkout there named `pmsd` shadowed the installed package
    (`python -m` puts the working directory first on sys.path; -P does not)."""
    from pmsd.definition.startup_unit import startup_unit_text

    assert " -P -m pmsd.god" in god_command()
    assert " -P -m pmsd " in startup_unit_text(True, "/usr/bin/python3", "/home/dev/.local/state/pmsd", False)


def test_a_command_god_runs_does_not_check_that_god_runs(tmp_path: Path) -> None:
    """god forked the command (pmsd.god.runner): asking systemd about god (a unit file read, a D-Bus call)
    would only delay the start it runs."""

    class NoManager(Context):
        @property
        def manager(self) -> object:  # type: ignore[override]
            raise AssertionError("a command god runs asked systemd about god")

    ensure_god(NoManager(user=True, environ={}, state_dir=str(tmp_path), run_by_god=True))
