"""`pmsd start` run by god (pmsd.god.runner, pmsd.cli.delegate): the same result as the CLI's own run (the
caller's directory, environment, stdin and terminal, its output and exit status), Ctrl-C reaching the command,
and nothing left behind in god (no child, no descriptor)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from tests.e2e.conftest import GOD
from tests.e2e.helpers import APPS, Pmsd, unit_property, wait_for

pytestmark = pytest.mark.e2e


def _god_pid(cli: Pmsd) -> int:
    return int(unit_property(cli.env, GOD, "MainPID") or 0)


def _children(pid: int) -> list[str]:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
        return handle.read().split()


def _fds(pid: int) -> int:
    """god's open files, but the apps' cgroup files it keeps open on purpose (pmsd.linux.heldfiles)."""
    links = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return len([link for link in links if not link.startswith("/sys/fs/cgroup/")])


def _app_environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as handle:
        pairs = [item.decode().partition("=") for item in handle.read().split(b"\0") if item]
    return {key: value for key, _, value in pairs}


def test_start_runs_in_god_with_the_callers_directory_environment_and_output(god: Pmsd, token: str) -> None:
    name = f"run-{token}"  # a token may be all digits, which would be an id
    shutil.copy(os.path.join(APPS, "sleeper.py"), os.path.join(god.cwd, "rel.py"))
    god_pid = _god_pid(god)
    fds_before = _fds(god_pid)
    # -X importtime lists what this process imported: god ran the command if the API never was.
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "pmsd", "start", "rel.py", "--name", name],
                            capture_output=True, text=True, cwd=god.cwd, env={**god.env, "PMSD_TOKEN": token},
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "pmsd.api.lifecycle" not in result.stderr and "pmsd.cli.delegate" in result.stderr
    assert f"[pmsd] start {name} (id 0): started" in result.stdout and "online" in result.stdout
    app = god.wait_status(name, "online")
    assert app["pm2_env"]["pm_exec_path"] == os.path.join(god.cwd, "rel.py")
    environ = _app_environ(app["pid"])
    assert environ["PMSD_TOKEN"] == token and environ["PWD"] == god.cwd
    wait_for(lambda: _children(god_pid) == [] or None, 5, "god's child to be reaped")
    assert _fds(god_pid) == fds_before


@pytest.mark.parametrize("argv", [("start", "missing.py"), ("start", os.path.join(APPS, "sleeper.py"),
                                                             "--max-memory-restart", "lots")])
def test_a_refused_start_says_the_same_with_or_without_god(god: Pmsd, argv: tuple[str, ...]) -> None:
    by_god = god.run(*argv, check=False)
    alone = god.run(*argv, check=False, env={"PMSD_NO_GOD": "1"})
    assert by_god.returncode == alone.returncode != 0
    assert (by_god.stdout, by_god.stderr) == (alone.stdout, alone.stderr)
    assert god.jlist() == []


def test_an_ecosystem_on_stdin_reaches_the_command(god: Pmsd, token: str) -> None:
    apps = {"apps": [{"name": f"eco-{token}", "script": os.path.join(APPS, "sleeper.py"), "env": {"FROM_FILE": "1"}}]}
    result = subprocess.run([sys.executable, "-m", "pmsd", "start", "-"], input=json.dumps(apps),
                            capture_output=True, text=True, cwd=god.cwd, env=god.env, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert _app_environ(god.wait_status(f"eco-{token}", "online")["pid"])["FROM_FILE"] == "1"


def test_ctrl_c_reaches_the_command_god_runs(god: Pmsd, token: str) -> None:
    """A start waiting for a ready message that never comes; Ctrl-C (SIGINT to the CLI) ends it as it would
    end the CLI's own run: exit 130, and god is left with no child and no extra descriptor."""
    god_pid = _god_pid(god)
    fds_before = _fds(god_pid)
    cli = subprocess.Popen([sys.executable, "-m", "pmsd", "start", os.path.join(APPS, "sleeper.py"), "--name",
                            f"slow-{token}", "--wait-ready", "--listen-timeout", "60000"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, cwd=god.cwd, env=god.env)
    try:
        wait_for(lambda: _children(god_pid) or None, 10, "god's child running the start")
        cli.send_signal(signal.SIGINT)
        _, stderr = cli.communicate(timeout=15)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 130, stderr
    wait_for(lambda: _children(god_pid) == [] or None, 5, "god's child to be reaped")
    assert _fds(god_pid) == fds_before


def test_listing_and_log_tails_run_in_god_and_say_what_the_cli_says(god: Pmsd, token: str) -> None:
    name = f"talk-{token}"
    god.run("start", os.path.join(APPS, "talker.py"), "--name", name, env={"LINES": "5"})
    god.wait_status(name, "online")
    alone = {"PMSD_NO_GOD": "1"}
    wait_for(lambda: god.run("logs", name, "--lines", "3", "--nostream", "--raw").stdout.count("\n") >= 3 or None,
             10, "three lines logged")
    by_god = god.run("logs", name, "--lines", "3", "--nostream", "--raw", "--out")
    assert by_god.stdout == god.run("logs", name, "--lines", "3", "--nostream", "--raw", "--out", env=alone).stdout
    listed = subprocess.run([sys.executable, "-X", "importtime", "-m", "pmsd", "jlist"], capture_output=True,
                            text=True, cwd=god.cwd, env=god.env, timeout=60, check=True)
    assert "pmsd.render.jlist" not in listed.stderr  # god's child rendered it
    assert [app["name"] for app in json.loads(listed.stdout)] == [name]
    # A reader that leaves early: no traceback, as from the CLI's own run.
    head = subprocess.run(f"{sys.executable} -m pmsd jlist | head -c 1", shell=True, capture_output=True, text=True,
                          cwd=god.cwd, env=god.env, timeout=60, check=False)
    assert head.stdout == "[" and "Traceback" not in head.stderr


READY_LATE = """import os, socket, time
time.sleep(2)  # a start that takes a while: systemd waits for READY=1 (--wait-ready)
address = os.environ["NOTIFY_SOCKET"]
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
    notify.sendto(b"READY=1", "\\0" + address[1:] if address.startswith("@") else address)
time.sleep(100000)
"""


def _start_ready_late(god: Pmsd, name: str) -> subprocess.Popen[str]:
    """`pmsd start` of an app that says it is ready after 2 s (--wait-ready), still running when this returns."""
    script = os.path.join(god.cwd, "ready_late.py")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write(READY_LATE)
    return subprocess.Popen([sys.executable, "-m", "pmsd", "start", script, "--name", name, "--wait-ready"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=god.cwd, env=god.env)


def test_restarting_god_lets_a_command_it_runs_finish(god: Pmsd, token: str) -> None:
    """`pmsd update` (or a package upgrade) restarting god while it runs a `pmsd start`: systemd signals god
    alone (KillMode=mixed), god finishes the command, and the CLI gets the command's own outcome."""
    god_pid = _god_pid(god)
    name = f"late-{token}"
    cli = _start_ready_late(god, name)
    try:
        wait_for(lambda: _children(god_pid) or None, 10, "god's child running the start")
        restart = subprocess.run(["systemctl", "--user", "restart", GOD], env=god.env, capture_output=True,
                                 text=True, timeout=60, check=False)
        stdout, stderr = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert restart.returncode == 0, restart.stderr
    assert cli.returncode == 0, stderr
    assert f"[pmsd] start {name} (id 0): started" in stdout
    assert _god_pid(god) not in (0, god_pid)
    god.wait_status(name, "online")


def test_kill_9_of_the_cli_while_god_runs_its_start(god: Pmsd, token: str) -> None:
    """The CLI killed (kill -9: a lost SSH session) while god's child runs its start: the child finishes or
    dies on the closed pipe, god goes on with no child and no extra descriptor, and the app is either listed
    and online or not there at all, never a unit pmsd does not list (issue 19)."""
    god_pid = _god_pid(god)
    fds_before = _fds(god_pid)
    name = f"orphan-{token}"
    cli = _start_ready_late(god, name)
    try:
        wait_for(lambda: _children(god_pid) or None, 10, "god's child running the start")
        cli.kill()  # the CLI this test started
        cli.wait()
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    wait_for(lambda: _children(god_pid) == [] or None, 20, "god's child to end")
    assert _fds(god_pid) == fds_before and _god_pid(god) == god_pid
    listed = [app for app in god.jlist() if app["name"] == name]
    unit = unit_property(god.env, f"pmsd-{name}.service", "ActiveState")
    assert (listed and listed[0]["pm2_env"]["status"] == "online") or unit in ("inactive", ""), (listed, unit)
