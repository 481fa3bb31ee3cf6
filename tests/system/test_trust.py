"""Trust on a real booted systemd (issue 11): system mode keeps users apart, non-root `--system` is refused
clearly, users' apps and files stay theirs, and lingering decides whether apps outlive a session."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.system.conftest import Machine

pytestmark = pytest.mark.system


def write(machine: Machine, path: str, text: str, user: str | None = None) -> None:
    machine.run("sh", "-c", 'printf "%s" "$1" > "$2"', "sh", text, path, user=user)


def jlist(machine: Machine, user: str | None = None, system: bool = False) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(machine.pmsd("jlist", user=user, system=system).stdout)
    return data


def main_pid(machine: Machine, name: str, user: str | None = None, system: bool = False) -> int:
    for proc in jlist(machine, user=user, system=system):
        if proc["name"] == name:
            return int(proc["pid"])
    raise AssertionError(f"{name!r} is not in pmsd jlist")


def environ(machine: Machine, pid: int) -> dict[str, str]:
    raw = machine.run("cat", f"/proc/{pid}/environ").stdout
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def test_a_system_app_run_as_another_user_gets_that_users_environment(machine: Machine, token: str) -> None:
    """Item 3: not root's HOME/USER/LOGNAME, nor a variable of the root shell that started it."""
    machine.add_user("alice", linger=False)
    name = f"env-{token}"
    eco = f"/root/eco-{token}.json"
    write(machine, eco, json.dumps({"apps": [{"name": name, "script": f"{machine.apps}/sleeper.py",
                                              "user": "alice", "cwd": "/home/alice",
                                              "env": {"FROM_DEFINITION": "yes"}}]}))
    machine.pmsd("start", eco, system=True, env={"ROOT_DB_PASSWORD": "hunter2"})
    try:
        env = environ(machine, main_pid(machine, name, system=True))
        assert (env["HOME"], env["USER"], env["LOGNAME"]) == ("/home/alice", "alice", "alice")
        assert "ROOT_DB_PASSWORD" not in env
        assert env["FROM_DEFINITION"] == "yes"
    finally:
        machine.pmsd("delete", name, system=True, check=False)


@pytest.mark.parametrize("argv", [["ls"], ["start", "/opt/pmsd-tests/apps/sleeper.py"], ["stop", "all"],
                                  ["delete", "x"], ["logs", "--nostream"]], ids=lambda a: " ".join(a))
def test_system_mode_as_a_user_is_a_clear_permission_error(machine: Machine, argv: list[str]) -> None:
    """Item 6: exit 5 with a hint for every command, and no traceback."""
    machine.add_user("alice", linger=False)
    result = machine.pmsd(*argv, user="alice", system=True, check=False)
    assert result.returncode == 5, result.stderr
    assert result.stderr == ("[pmsd][ERROR] pmsd --system manages the system manager's apps, which needs root\n"
                             "  hint: run it as root (sudo pmsd --system ...), or drop --system to manage your "
                             "own apps\n")


def test_two_users_cannot_read_each_others_apps(machine: Machine, token: str) -> None:
    """Environment files, registry, god socket and journal lines of one user are closed to another."""
    for user in ("alice", "bob"):
        machine.add_user(user)
    name = f"secret-{token}"
    machine.pmsd("start", f"{machine.apps}/talker.py", "--name", name, user="alice",
                 env={"ALICE_TOKEN": "a1ice", "TAG": f"alice-{token}", "LINES": "3"})
    try:
        machine.pmsd("ping", user="alice")
        home = "/home/alice/.local/state/pmsd"
        for path in (f"{home}/registry.json", f"{home}/env/0.env"):
            assert machine.run("test", "-r", path, user="alice", check=False).returncode == 0, path
            denied = machine.run("cat", path, user="bob", check=False)
            assert denied.returncode != 0 and "Permission denied" in denied.stderr, path
        alice_socket = f"/run/user/{machine.uid('alice')}/pmsd/god.sock"
        probe = ("import socket,sys; s=socket.socket(socket.AF_UNIX); "
                 "sys.exit(0 if s.connect_ex(sys.argv[1]) == 0 else 3)")
        assert machine.run("python3", "-c", probe, alice_socket, user="alice", check=False).returncode == 0
        assert machine.run("python3", "-c", probe, alice_socket, user="bob", check=False).returncode == 3
        assert f"alice-{token} out 0" in machine.pmsd("logs", name, "--nostream", user="alice").stdout
        seen_by_bob = machine.run("journalctl", "--no-pager", "-o", "cat", f"_SYSTEMD_USER_UNIT=pmsd-{name}.service",
                                  user="bob", check=False)
        assert f"alice-{token}" not in seen_by_bob.stdout
        assert "a1ice" not in machine.run("ps", "eww", "-u", "alice", user="bob", check=False).stdout
    finally:
        machine.pmsd("delete", name, user="alice", check=False)
        machine.pmsd("kill", user="alice", check=False)


def test_flush_never_truncates_through_a_users_symlink(machine: Machine, token: str) -> None:
    """Item 2: alice swaps her app's log file for a symlink to a root-only file; `pmsd --system flush` must not
    truncate that file."""
    machine.add_user("alice", linger=False)
    name = f"logs-{token}"
    machine.run("mkdir", "-p", "/home/alice/logs", user="alice")
    eco = f"/root/eco-{token}.json"
    write(machine, eco, json.dumps({"apps": [{"name": name, "script": f"{machine.apps}/sleeper.py",
                                              "user": "alice", "cwd": "/home/alice",
                                              "out_file": "/home/alice/logs/out.log"}]}))
    write(machine, "/root/secret", "root only\n")
    machine.run("chmod", "600", "/root/secret")
    machine.pmsd("start", eco, system=True)
    try:
        machine.pmsd("stop", name, system=True)
        machine.run("sh", "-c", "rm -f /home/alice/logs/out.log && ln -s /root/secret /home/alice/logs/out.log",
                    user="alice")
        machine.pmsd("flush", name, system=True)
        assert machine.run("cat", "/root/secret").stdout == "root only\n"
    finally:
        machine.pmsd("delete", name, system=True, check=False)
        machine.run("rm", "-f", "/root/secret")


def _session(machine: Machine, user: str, command: str) -> Any:
    """Run `command` in a real login session of `user` (PAM: pam_systemd registers it with logind); the session
    ends when the command does."""
    return machine.run("systemd-run", "--quiet", "--wait", "--pipe", "-p", f"User={user}", "-p", "PAMName=login",
                       "--", "/bin/sh", "-c", command, check=False, timeout=90)


def test_without_linger_apps_end_with_the_session_and_pmsd_warned(machine: Machine, token: str) -> None:
    """Item 7: a user without lingering is warned (once); when their last session ends, systemd stops their
    manager and the app with it. With lingering the app outlives the session."""
    machine.add_user("carol", linger=False)
    machine.run("loginctl", "disable-linger", "carol")
    name = f"carol-{token}"
    started = _session(machine, "carol", f"{machine.venv}/bin/pmsd start {machine.apps}/sleeper.py --name {name} "
                                         f"&& {machine.venv}/bin/pmsd jlist")
    assert started.returncode == 0, started.stderr
    assert "[pmsd][WARN] user carol has no lingering" in started.stderr
    assert "loginctl enable-linger carol" in started.stderr
    pid = next(proc["pid"] for proc in json.loads(started.stdout.strip().splitlines()[-1]) if proc["name"] == name)
    deadline = time.monotonic() + 40  # logind stops the manager UserStopDelaySec= (10 s) after the session
    while machine.run("kill", "-0", str(pid), check=False).returncode == 0:
        assert time.monotonic() < deadline, "carol's app outlived her session without lingering"
        time.sleep(0.5)

    machine.run("loginctl", "enable-linger", "carol")
    machine.wait_user_manager("carol")
    lingering = f"linger-{token}"
    again = _session(machine, "carol", f"{machine.venv}/bin/pmsd start {machine.apps}/sleeper.py "
                                       f"--name {lingering}")
    assert again.returncode == 0, again.stderr
    assert "no lingering" not in again.stderr
    # Once the session is gone logind calls the user "lingering" (not "active"): the point where, without
    # lingering, the manager would be stopped.
    deadline = time.monotonic() + 30
    while machine.run("loginctl", "show-user", "carol", "-P", "State").stdout.strip() != "lingering":
        assert time.monotonic() < deadline, "carol's session did not end"
        time.sleep(0.2)
    assert main_pid(machine, lingering, user="carol") > 0
    assert machine.run("systemctl", "--user", "is-active", f"pmsd-{lingering}.service", user="carol").stdout.strip() \
        == "active"
    machine.pmsd("kill", user="carol", check=False)
    machine.run("loginctl", "disable-linger", "carol")


def _start_as_alice(machine: Machine, token: str, **definition: object) -> tuple[str, Any]:
    machine.add_user("alice", linger=False)
    name = f"files-{token}"
    eco = f"/root/eco-{token}.json"
    write(machine, eco, json.dumps({"apps": [{"name": name, "script": f"{machine.apps}/talker.py", "user": "alice",
                                              "cwd": "/home/alice", "env": {"LINES": "2", "TAG": token},
                                              **definition}]}))
    return name, machine.pmsd("start", eco, system=True, check=False)


def test_log_files_of_another_users_app_are_opened_as_that_user(machine: Machine, token: str) -> None:
    """Item 2: the file is created by alice, and a symlink she swaps in later is not followed as root at the
    next start: her app cannot write into a root-only file."""
    machine.run("mkdir", "-p", "/home/alice/logs", user="alice")
    log = "/home/alice/logs/talker.log"
    name, started = _start_as_alice(machine, token, out_file=log)
    try:
        assert started.returncode == 0, started.stderr
        assert machine.run("stat", "-c", "%U", log).stdout.strip() == "alice"
        deadline = time.monotonic() + 10
        while f"{token} out 1" not in machine.run("cat", log).stdout:
            assert time.monotonic() < deadline, "the app's lines did not reach its file"
            time.sleep(0.1)
        write(machine, "/root/secret", "root only\n")
        machine.run("chmod", "600", "/root/secret")
        machine.pmsd("stop", name, system=True)
        machine.run("sh", "-c", f"rm -f {log} && ln -s /root/secret {log}", user="alice")
        restarted = machine.pmsd("restart", name, system=True, check=False)
        assert restarted.returncode == 5, restarted.stderr
        assert f"user alice cannot write its log file {log}: Permission denied" in restarted.stderr
        assert machine.run("cat", "/root/secret").stdout == "root only\n"
    finally:
        machine.pmsd("delete", name, system=True, check=False)
        machine.run("rm", "-f", "/root/secret")


def test_an_absolute_log_path_the_user_cannot_write_is_refused(machine: Machine, token: str) -> None:
    name, started = _start_as_alice(machine, token, out_file=f"/etc/pmsd-{token}.log")
    assert started.returncode == 5, started.stderr
    assert machine.run("test", "-e", f"/etc/pmsd-{token}.log", check=False).returncode == 1
    assert name not in [proc["name"] for proc in jlist(machine, system=True)]


def test_cluster_instances_of_another_user_cannot_log_to_files(machine: Machine, token: str) -> None:
    name, started = _start_as_alice(machine, token, instances=2, out_file="/home/alice/out.log")
    assert started.returncode == 2, started.stderr
    assert f"app {name!r}: cluster instances that run as alice cannot log to /home/alice/out.log" in started.stderr


@pytest.mark.parametrize("key", ["user", "out_file", "cwd"])
def test_a_newline_cannot_add_a_directive(machine: Machine, token: str, key: str) -> None:
    """Item 1: the injection that ran `id` as root from a cluster app's definition is refused before anything
    is created."""
    injected = {"user": "alice", "out_file": "/home/alice/out.log", "cwd": "/home/alice"}
    injected[key] += '\nExecStartPre=+/bin/sh -c "id > /tmp/owned"'
    machine.add_user("alice", linger=False)
    eco = f"/root/eco-{token}.json"
    write(machine, eco, json.dumps({"apps": [{"name": f"inj-{token}", "script": f"{machine.apps}/listen_fds.py",
                                              "instances": 1, "port": 18160, **injected}]}))
    result = machine.pmsd("start", eco, system=True, check=False)
    assert result.returncode == 2, result.stderr
    assert f"key {key!r}" in result.stderr and "control character" in result.stderr, result.stderr
    assert machine.run("test", "-e", "/tmp/owned", check=False).returncode == 1
    assert machine.run("ls", "/run/systemd/system").stdout.find(f"inj-{token}") < 0
