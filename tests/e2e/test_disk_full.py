"""Issue 19 end to end: `pmsd start` with pmsd's state directory (PMSD_STATE_DIR) on a small tmpfs that is full.

The start fails with a message naming the file and the directory to free, and no unit of the app is left: not
when the environment file cannot be written (nothing started), and not when it can but the registry cannot
(the app started, and is stopped again: pmsd never runs an app it does not list). Once space is freed the
same start works and `pmsd delete` cleans up. Needs root (mount); skipped otherwise.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.helpers import APPS, Pmsd, markers, pid_alive, systemctl, wait_for
from tests.unit.test_disk_full import SmallDisk, small_tmpfs

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

SLEEPER = os.path.join(APPS, "sleeper.py")


@dataclass
class FullState:
    cli: Pmsd  # its PMSD_STATE_DIR is the disk
    disk: SmallDisk
    name: str


@pytest.fixture
def full_state(pmsd: Pmsd, token: str, marker_dir: str) -> Iterator[FullState]:
    with small_tmpfs() as disk:
        cli = Pmsd(env={**pmsd.env, "PMSD_STATE_DIR": str(disk.root), "MARKER_DIR": marker_dir}, cwd=pmsd.cwd)
        name = f"full-{token}"
        try:
            yield FullState(cli, disk, name)
        finally:
            disk.free()  # room for delete's registry write
            cli.run("delete", "all", check=False)
            # An app this test failed to clean up must not outlive it (nor keep the tmpfs busy).
            systemctl(cli.env, "stop", f"pmsd-{name}.service")
            systemctl(cli.env, "reset-failed", f"pmsd-{name}.service")


def _units(cli: Pmsd, name: str) -> dict[str, str]:
    """The app's units systemd has loaded, with their ActiveState."""
    listing = systemctl(cli.env, "list-units", "--all", "--plain", "--no-legend", f"pmsd-{name}*").stdout
    return {line.split()[0]: line.split()[2] for line in listing.splitlines() if line.strip()}


def _refused_for_want_of_space(state: FullState, file: str) -> None:
    result = state.cli.run("start", SLEEPER, "--name", state.name, check=False)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert f"[pmsd][ERROR] cannot write {state.disk.root}/{file}: no space left on device" in result.stderr
    assert f"hint: free space in {state.disk.root}" in result.stderr, result.stderr
    wait_for(lambda: not _units(state.cli, state.name), 10, f"no unit of {state.name} left",
             describe=lambda: repr(_units(state.cli, state.name)))
    assert state.cli.jlist() == []  # reading needs no space
    assert not [path for path in state.disk.root.rglob("*.tmp")]
    assert not list(state.disk.root.glob("env/*.env"))  # the app's environment file is gone with it


def _gone(pid: int) -> bool:
    return not pid_alive(pid)


def _start_then_delete(state: FullState) -> None:
    state.disk.free()
    state.cli.run("start", SLEEPER, "--name", state.name)
    state.cli.wait_status(state.name, "online")
    state.cli.run("delete", state.name)
    assert state.cli.jlist() == []
    wait_for(lambda: not _units(state.cli, state.name), 10, f"{state.name}'s unit gone after delete",
             describe=lambda: repr(_units(state.cli, state.name)))
    assert not list(state.disk.root.glob("env/*.env"))


def test_start_on_a_full_state_directory_starts_nothing(full_state: FullState, marker_dir: str) -> None:
    full_state.disk.fill()  # no page left: the app's environment file, written first, fails
    _refused_for_want_of_space(full_state, "env/0.env")
    assert markers(marker_dir) == []  # the app never ran
    _start_then_delete(full_state)


def test_an_app_started_for_a_registry_that_cannot_be_written_is_stopped(
        full_state: FullState, marker_dir: str) -> None:
    # Two inodes left: the environment file and the pending record (pmsd.state.pending, written before the
    # unit is asked for) fit (the lock file and env/ exist already), the registry's temporary file does not,
    # and the app has started by the time the registry is written.
    (full_state.disk.root / "registry.lock").touch()
    (full_state.disk.root / "env").mkdir(mode=0o700)
    full_state.disk.fill(free_pages=8, free_inodes=2)
    _refused_for_want_of_space(full_state, "registry.json")
    # It ran (its start was awaited), though maybe not long enough to leave its marker: any it left is dead.
    for pid in [int(record["pid"]) for record in markers(marker_dir)]:
        wait_for(functools.partial(_gone, pid), 10, f"the app (pid {pid}) stopped again")
    _start_then_delete(full_state)
