"""PM2's lifecycle (start, crash and restart, stop, restart, delete) against the real user manager."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from tests.e2e.helpers import APPS, Pmsd, markers, markers_count, pid_alive, systemctl, unit_property, wait_for

pytestmark = pytest.mark.e2e
SLEEPER = os.path.join(APPS, "sleeper.py")
EXITS = os.path.join(APPS, "exits.py")


def test_start_runs_the_app_as_a_transient_unit(pmsd: Pmsd, token: str, marker_dir: str) -> None:
    name = f"api-{token}"
    result = pmsd.run("start", SLEEPER, "--name", name, "--", "--port", "3000",
                      env={"MARKER_DIR": marker_dir, "PORT": "3000", "SECRET_TOKEN": "s3cr3t"})
    assert "online" in result.stdout
    started = wait_for(lambda: markers(marker_dir), 10, "the app to write its start marker")[0]
    proc = pmsd.app(name)
    assert proc["pid"] == started["pid"]
    assert started["argv"] == ["--port", "3000"]
    assert started["env"]["PORT"] == "3000"  # the caller's environment at start, as PM2 does
    assert started["env"]["pm_id"] == str(proc["pm_id"])
    assert started["env"]["name"] == name
    unit = f"pmsd-{name}.service"
    assert proc["pm2_env"]["unit_name"] == unit
    assert unit_property(pmsd.env, unit, "ActiveState") == "active"
    assert unit_property(pmsd.env, unit, "Restart") == "always"
    assert unit_property(pmsd.env, unit, "RestartUSec") == "0"
    assert unit_property(pmsd.env, unit, "KillSignal") == str(int(signal.SIGINT))
    # The app is the unit's main process: no wrapper between systemd and the app.
    assert unit_property(pmsd.env, unit, "MainPID") == str(started["pid"])
    # Secrets stay out of unit properties, which every local user can read over D-Bus.
    shown = systemctl(pmsd.env, "show", unit).stdout
    assert "s3cr3t" not in shown
    env_file = unit_property(pmsd.env, unit, "EnvironmentFiles").split(" ")[0]
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600


def test_kill_9_is_restarted_and_counted(pmsd: Pmsd, token: str, marker_dir: str) -> None:
    name = f"crashy-{token}"
    pmsd.run("start", SLEEPER, "--name", name, env={"MARKER_DIR": marker_dir})
    first = wait_for(lambda: markers(marker_dir), 10, "first start")[0]["pid"]
    os.kill(first, signal.SIGKILL)
    second = wait_for(lambda: [m for m in markers(marker_dir) if m["pid"] != first], 10, "the restart")[0]
    proc = pmsd.wait_status(name, "online")
    assert proc["pid"] == second["pid"]
    assert proc["pm2_env"]["restart_time"] == 1
    assert proc["pm2_env"]["exit_code"] is None or isinstance(proc["pm2_env"]["exit_code"], int)


def test_stop_keeps_the_app_listed_and_start_brings_it_back(pmsd: Pmsd, token: str) -> None:
    name = f"stoppable-{token}"
    pmsd.run("start", SLEEPER, "--name", name)
    pid = pmsd.app(name)["pid"]
    result = pmsd.run("stop", name)
    assert "stopped" in result.stdout
    proc = pmsd.app(name)
    assert proc["pm2_env"]["status"] == "stopped"
    assert proc["pid"] == 0
    assert not pid_alive(pid)
    assert unit_property(pmsd.env, f"pmsd-{name}.service", "LoadState") == "not-found"
    pmsd.run("start", name)  # PM2: starting a known name starts it again
    assert pmsd.status(name) == "online"


def test_restart_counts_and_replaces_the_process(pmsd: Pmsd, token: str) -> None:
    name = f"restartable-{token}"
    pmsd.run("start", SLEEPER, "--name", name)
    before = pmsd.app(name)
    pmsd.run("restart", name)
    after = pmsd.app(name)
    assert after["pm2_env"]["status"] == "online"
    assert after["pid"] != before["pid"]
    assert after["pm2_env"]["restart_time"] == before["pm2_env"]["restart_time"] + 1
    assert after["pm_id"] == before["pm_id"]  # ids are stable across restarts
    pmsd.run("reset", name)
    assert pmsd.app(name)["pm2_env"]["restart_time"] == 0


def test_delete_removes_unit_registry_entry_and_environment(pmsd: Pmsd, token: str) -> None:
    name = f"doomed-{token}"
    pmsd.run("start", SLEEPER, "--name", name)
    unit = f"pmsd-{name}.service"
    env_file = unit_property(pmsd.env, unit, "EnvironmentFiles").split(" ")[0]
    pmsd.run("delete", name)
    assert all(p["name"] != name for p in pmsd.jlist())
    assert unit_property(pmsd.env, unit, "LoadState") == "not-found"
    assert not os.path.exists(env_file)
    assert pmsd.run("describe", name, check=False).returncode == 3


def test_errored_after_max_restarts(pmsd: Pmsd, token: str) -> None:
    name = f"loop-{token}"
    pmsd.run("start", EXITS, "--name", name, "--max-restarts", "3", check=False)
    proc = pmsd.wait_status(name, "errored", 15)
    assert proc["pid"] == 0
    assert proc["pm2_env"]["exit_code"] == 1
    # Left down: the restart counter does not move any more.
    count = proc["pm2_env"]["restart_time"]
    assert 2 <= count <= 4
    time.sleep(0.5)  # a settle period to observe absence of restarts, not a wait for a condition
    assert pmsd.app(name)["pm2_env"]["restart_time"] == count
    pmsd.run("restart", name, check=False)  # an errored app can be started again
    pmsd.wait_status(name, "errored", 15)


def test_stop_exit_codes_and_no_autorestart_end_as_stopped(pmsd: Pmsd, token: str) -> None:
    coded = f"coded-{token}"
    pmsd.run("start", EXITS, "--name", coded, "--stop-exit-codes", "3", "--", "3", check=False)
    proc = pmsd.wait_status(coded, "stopped")
    assert proc["pm2_env"]["restart_time"] == 0
    once = f"once-{token}"
    pmsd.run("start", EXITS, "--name", once, "--no-autorestart", "--", "0", check=False)
    pmsd.wait_status(once, "stopped")
    assert pmsd.app(once)["pm2_env"]["restart_time"] == 0


def test_restart_delay_and_kill_timeout(pmsd: Pmsd, token: str) -> None:
    name = f"stubborn-{token}"
    pmsd.run("start", os.path.join(APPS, "stubborn.py"), "--name", name, "--kill-timeout", "700",
             "--restart-delay", "250")
    unit = f"pmsd-{name}.service"
    assert unit_property(pmsd.env, unit, "RestartUSec") == "250ms"
    assert unit_property(pmsd.env, unit, "TimeoutStopUSec") == "700ms"
    began = time.monotonic()
    pmsd.run("stop", name)
    took = time.monotonic() - began
    # SIGINT is ignored, so systemd waits kill_timeout, then SIGKILLs.
    assert 0.6 < took < 5, took


def test_env_kept_on_restart_and_refreshed_with_update_env(pmsd: Pmsd, token: str, marker_dir: str) -> None:
    name = f"envy-{token}"
    pmsd.run("start", SLEEPER, "--name", name, env={"MARKER_DIR": marker_dir, "GREETING": "hello"})
    wait_for(lambda: len(markers(marker_dir)) == 1, 10, "first start")
    pmsd.run("restart", name, env={"GREETING": "changed"})
    latest = wait_for(lambda: markers_count(marker_dir, 2), 10, "restart")[-1]
    assert latest["env"]["GREETING"] == "hello"
    pmsd.run("restart", name, "--update-env", env={"MARKER_DIR": marker_dir, "GREETING": "changed"})
    latest = wait_for(lambda: markers_count(marker_dir, 3), 10, "second restart")[-1]
    assert latest["env"]["GREETING"] == "changed"
    assert "GREETING: changed" in pmsd.run("env", name).stdout


def test_starting_a_running_script_again_needs_force(pmsd: Pmsd, token: str) -> None:
    name = f"twice-{token}"
    pmsd.run("start", SLEEPER, "--name", name)
    again = pmsd.run("start", SLEEPER, "--name", name, check=False)
    assert again.returncode == 2
    assert "already launched" in again.stderr
    pmsd.run("start", SLEEPER, "--name", name, "-f")
    names = sorted(p["name"] for p in pmsd.jlist())
    assert names == [name, f"{name}-1"]


def test_names_that_need_escaping(pmsd: Pmsd, token: str) -> None:
    names = [f"my app {token}", f"café/日本-{token}", f"dots.in.name.{token}"]
    for name in names:
        pmsd.run("start", SLEEPER, "--name", name)
    listed = {p["name"]: p for p in pmsd.jlist()}
    for name in names:
        assert listed[name]["pm2_env"]["status"] == "online"
        unit = listed[name]["pm2_env"]["unit_name"]
        assert unit_property(pmsd.env, unit, "MainPID") == str(listed[name]["pid"])
    assert "my app" in pmsd.run("ls").stdout
    pmsd.run("stop", names[1])
    assert pmsd.status(names[1]) == "stopped"


def test_two_concurrent_starts(pmsd: Pmsd, token: str) -> None:
    def launch(name: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "pmsd", "start", SLEEPER, "--name", name],
                                env=pmsd.env, cwd=pmsd.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    first, second = launch(f"left-{token}"), launch(f"right-{token}")
    for proc in (first, second):
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    listed = pmsd.jlist()
    assert sorted(p["pm_id"] for p in listed) == [0, 1]
    assert all(p["pm2_env"]["status"] == "online" for p in listed)


def test_namespace_targets_and_listing_commands(pmsd: Pmsd, token: str) -> None:
    a, b = f"ns-a-{token}", f"ns-b-{token}"
    pmsd.run("start", SLEEPER, "--name", a, "--namespace", f"grp{token}")
    pmsd.run("start", SLEEPER, "--name", b, "--namespace", f"grp{token}")
    pmsd.run("stop", f"grp{token}")
    assert {pmsd.status(a), pmsd.status(b)} == {"stopped"}
    pmsd.run("start", f"grp{token}")
    assert {pmsd.status(a), pmsd.status(b)} == {"online"}
    pretty = pmsd.run("prettylist").stdout
    assert "status: 'online'" in pretty
    for alias in ("ls", "list", "status", "l", "ps"):
        table = pmsd.run(alias).stdout
        assert a in table and "namespace" in table and "↺" in table
    assert pmsd.run("id", a).stdout.strip() == f"[ {pmsd.app(a)['pm_id']} ]"
    assert pmsd.run("pid", a).stdout.strip() == str(pmsd.app(a)["pid"])
    described = pmsd.run("describe", a).stdout
    assert f"pmsd-{a}.service" in described and "online" in described
