"""Issue 14 on a real booted system: `pmsd save` + `pmsd startup`, then `systemctl reboot` of the system
instance; the apps of system mode and of a lingering user come back online with the same ids, cron timer
and a cluster app's socket included, and the stopped app stays stopped."""

from __future__ import annotations

import time

import pytest

from tests.system.conftest import Machine
from tests.system.test_machine import jlist

pytestmark = pytest.mark.system


def _statuses(machine: Machine, user: str | None = None, system: bool = False) -> list[tuple[int, str, str]]:
    return sorted((p["pm_id"], p["name"], p["pm2_env"]["status"]) for p in jlist(machine, user=user, system=system))


def _wait(machine: Machine, expected: list[tuple[int, str, str]], user: str | None = None,
          system: bool = False, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    seen: list[tuple[int, str, str]] = []
    while time.monotonic() < deadline:
        seen = _statuses(machine, user=user, system=system)
        if seen == expected:
            return
        time.sleep(0.5)  # each look is a command inside the machine; the deadline bounds the wait
    raise AssertionError(f"after the reboot: {seen}, expected {expected}")


def test_saved_apps_come_back_after_a_reboot(machine: Machine, token: str) -> None:
    machine.add_user("alice")
    sleeper = f"{machine.apps}/sleeper.py"
    names = {"run": f"r-{token}", "cron": f"c-{token}", "off": f"o-{token}", "alice": f"a-{token}",
             "cluster": f"k-{token}"}
    try:
        machine.pmsd("start", sleeper, "--name", names["run"], system=True)
        # A cluster app: its template and socket live in /run/systemd/system, which a reboot empties.
        machine.pmsd("start", f"{machine.apps}/listen_fds.py", "--name", names["cluster"], "-i", "2", "--port",
                     "127.0.0.1:18081", system=True)
        machine.pmsd("start", sleeper, "--name", names["cron"], "--cron-restart", "0 3 * * *", system=True)
        machine.pmsd("start", sleeper, "--name", names["off"], system=True)
        machine.pmsd("stop", names["off"], system=True)
        machine.pmsd("start", sleeper, "--name", names["alice"], user="alice")
        system_before = _statuses(machine, system=True)
        alice_before = _statuses(machine, user="alice")
        for user, system in ((None, True), ("alice", False)):
            machine.pmsd("save", user=user, system=system)
            machine.pmsd("startup", user=user, system=system)
        machine.reboot()
        _wait(machine, system_before, system=True)
        machine.wait_user_manager("alice")
        _wait(machine, alice_before, user="alice")
        timer = f"pmsd.cron-{names['cron']}.timer"
        assert machine.run("systemctl", "is-active", timer).stdout.strip() == "active"
        served = machine.run("python3", "-c", "import urllib.request; print(urllib.request.urlopen("
                             "'http://127.0.0.1:18081/', timeout=10).status)").stdout.strip()
        assert served == "200"
        assert "nothing to do" in machine.pmsd("resurrect", system=True).stdout
    finally:
        for user, system in ((None, True), ("alice", False)):
            machine.pmsd("unstartup", user=user, system=system, check=False)
            machine.pmsd("delete", "all", user=user, system=system, check=False)
