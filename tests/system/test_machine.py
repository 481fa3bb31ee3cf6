"""The system-instance harness works: systemd 252 is PID 1 and running, pmsd (from its venv) runs apps in system
mode and in a lingering user's manager, god starts in both modes, and a reboot keeps the machine's state."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.system.conftest import Machine

pytestmark = pytest.mark.system


def jlist(machine: Machine, user: str | None = None, system: bool = False) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(machine.pmsd("jlist", user=user, system=system).stdout)
    return data


def entry(machine: Machine, name: str, user: str | None = None, system: bool = False) -> dict[str, Any]:
    for proc in jlist(machine, user=user, system=system):
        if proc["name"] == name:
            return proc
    raise AssertionError(f"{name!r} is not in pmsd jlist")


def test_systemd_252_is_pid1_and_running(machine: Machine) -> None:
    assert machine.run("cat", "/proc/1/comm").stdout.strip() == "systemd"
    assert machine.run("systemctl", "--version").stdout.startswith("systemd 252 ")
    assert machine.run("systemctl", "is-system-running", check=False).stdout.strip() == "running"
    # Confined: the container's processes sit in its own cgroup in every hierarchy (host side), and inside the
    # cgroup namespace that cgroup is the root.
    status = machine.status()
    with open(f"/proc/{status['leader']}/cgroup") as handle:
        paths = [line.rstrip("\n").split(":", 2)[2] for line in handle]
    assert all(path.startswith(status["cgroup"] + "/") or path == status["cgroup"] for path in paths), paths


def test_system_mode_start_and_ls(machine: Machine, token: str) -> None:
    name = f"sys-{token}"
    sleeper = f"{machine.apps}/sleeper.py"
    machine.pmsd("start", sleeper, "--name", name, system=True)
    try:
        app = entry(machine, name, system=True)
        assert app["pm2_env"]["status"] == "online"
        assert app["pid"] > 0
        assert app["monit"]["memory"] > 0
        # systemd's own figures, which pmsd reads: the harness binds the container's cgroups writable.
        shown = machine.run("systemctl", "show", "-P", "MemoryCurrent", "-P", "TasksCurrent",
                            f"pmsd-{name}.service").stdout.split()
        assert all(value.isdigit() and int(value) > 0 for value in shown), shown
        row = next(line for line in machine.pmsd("ls", system=True).stdout.splitlines() if f" {name} " in line)
        assert "online" in row
        assert "root" in row
    finally:
        machine.pmsd("delete", name, system=True, check=False)


def test_the_system_god_writes_log_files_under_var_log(machine: Machine, token: str) -> None:
    """Regression: god's system unit had ProtectSystem=strict, so it could not write an app's -o file in
    /var/log ("Read-only file system"), and the lines were lost."""
    name, log = f"vl-{token}", f"/var/log/pmsd-test-{token}/out.log"
    machine.pmsd("start", f"{machine.apps}/talker.py", "--name", name, "-o", log, "--time", system=True,
                 env={"LINES": "2", "TAG": token})
    try:
        deadline = time.monotonic() + 10
        while machine.run("cat", log, check=False).stdout.count(f"{token} out") < 2:
            assert time.monotonic() < deadline, machine.run("journalctl", "-u", "pmsd-god", "-n", "5").stdout
            time.sleep(0.1)
    finally:
        machine.pmsd("delete", name, system=True, check=False)
        machine.run("rm", "-rf", f"/var/log/pmsd-test-{token}")


def test_user_with_linger_runs_apps_in_their_manager(machine: Machine, token: str) -> None:
    uid = machine.add_user("alice")
    assert machine.run("loginctl", "show-user", "alice", "-P", "Linger").stdout.strip() == "yes"
    assert machine.run("systemctl", "is-active", f"user@{uid}.service").stdout.strip() == "active"
    name = f"alice-{token}"
    machine.pmsd("start", f"{machine.apps}/sleeper.py", "--name", name, user="alice")
    try:
        app = entry(machine, name, user="alice")
        assert app["pm2_env"]["status"] == "online"
        unit = f"pmsd-{name}.service"
        assert machine.run("systemctl", "--user", "is-active", unit, user="alice").stdout.strip() == "active"
        assert machine.run("systemctl", "is-active", unit, check=False).stdout.strip() != "active"
        assert machine.run("ps", "-o", "user=", "-p", str(app["pid"])).stdout.strip() == "alice"
    finally:
        machine.pmsd("delete", name, user="alice", check=False)


@pytest.mark.parametrize("system", [True, False], ids=["system", "user"])
def test_god_runs_from_the_venv(machine: Machine, system: bool) -> None:
    user = None if system else "alice"
    if user:
        machine.add_user(user)
    assert "pong" in machine.pmsd("ping", user=user, system=system).stdout
    scope = () if system else ("--user",)
    assert machine.run("systemctl", *scope, "is-active", "pmsd-god.service", user=user).stdout.strip() == "active"
    exec_start = machine.run("systemctl", *scope, "show", "-P", "ExecStart", "pmsd-god.service", user=user).stdout
    assert f"path={machine.venv}/bin/python" in exec_start, exec_start


def test_reboot_keeps_state(machine: Machine, token: str) -> None:
    uid = machine.add_user("alice")
    name = f"boot-{token}"
    machine.pmsd("start", f"{machine.apps}/sleeper.py", "--name", name, system=True)
    machine.run("sh", "-c", "echo kept >/var/lib/pmsd-test-marker && echo gone >/run/pmsd-test-marker")
    boots = int(machine.status()["boots"])
    try:
        machine.reboot()
        assert int(machine.status()["boots"]) == boots + 1
        assert machine.run("systemctl", "is-system-running", check=False).stdout.strip() == "running"
        assert machine.run("cat", "/var/lib/pmsd-test-marker").stdout == "kept\n"  # the disk is kept
        assert machine.run("test", "-e", "/run/pmsd-test-marker", check=False).returncode == 1  # a new boot
        # Lingering starts alice's manager at boot; pmsd's registry (/var/lib/pmsd) still knows the app.
        machine.wait_user_manager("alice")
        assert machine.run("systemctl", "is-active", f"user@{uid}.service").stdout.strip() == "active"
        assert name in [proc["name"] for proc in jlist(machine, system=True)]
    finally:
        machine.pmsd("delete", name, system=True, check=False)
        machine.run("rm", "-f", "/var/lib/pmsd-test-marker")
