"""god against the real user manager: events, counters across `kill -9`, backoff, memory, cron and watch
restarts, and the socket's owner-only access."""

from __future__ import annotations

import functools
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import GOD
from tests.e2e.helpers import APPS, Events, Pmsd, systemctl, unit_property, wait_for

pytestmark = pytest.mark.e2e
# The client run as `nobody` needs an interpreter nobody may execute (not one under /root, as pyenv's is).
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def events(god: Pmsd) -> Iterator[Events]:
    stream = Events(god)
    yield stream
    stream.close()


def _is_event(kind: str, app: str, event: dict[str, Any]) -> bool:
    return bool(event["event"] == kind and event["app"] == app)


def _god_pid(env: dict[str, str]) -> int:
    return int(unit_property(env, GOD, "MainPID") or 0)


def _env_of(cli: Pmsd, name: str) -> dict[str, Any]:
    env: dict[str, Any] = cli.app(name)["pm2_env"]
    return env


def test_events_command_prints_json_lines(god: Pmsd) -> None:
    watcher = subprocess.Popen([sys.executable, "-m", "pmsd", "events", "--json"], cwd=god.cwd, env=god.env,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout is not None
        # Start apps until the stream (which subscribes a moment after it starts) reports one.
        deadline = time.monotonic() + 20
        line = ""
        count = 0
        while not line and time.monotonic() < deadline:
            count += 1
            god.run("start", os.path.join(APPS, "sleeper.py"), "--name", f"cli{count}")
            ready, _, _ = select.select([watcher.stdout], [], [], 2)
            line = watcher.stdout.readline() if ready else ""
        event = json.loads(line)
        assert {"event", "app", "pm_id", "at"} <= set(event)
    finally:
        watcher.terminate()  # our own child
        watcher.wait(timeout=10)


def test_ping_then_kill_deletes_every_app_and_stops_god(god: Pmsd) -> None:
    ping = god.run("ping").stdout
    assert "{ msg: 'pong' }" in ping and f"god pid {_god_pid(god.env)}" in ping
    god.run("start", os.path.join(APPS, "sleeper.py"), "--name", "k1")
    god.run("start", os.path.join(APPS, "sleeper.py"), "--name", "k2")
    out = god.run("kill").stdout
    assert "god stopped" in out
    assert god.jlist() == []
    assert unit_property(god.env, "pmsd-k1.service", "LoadState") in ("not-found", "")
    assert unit_property(god.env, GOD, "ActiveState") == "inactive"


def test_god_forgets_deleted_apps_when_the_registry_changes(god: Pmsd, events: Events) -> None:
    """Regression: god re-read the registry when the units went away, before `delete` rewrote it, and then
    kept following the deleted apps."""
    for name in ("d1", "d2", "d3"):
        god.run("start", os.path.join(APPS, "sleeper.py"), "--name", name)
    god.run("delete", "all")
    for name in ("d1", "d2", "d3"):
        events.wait(functools.partial(_is_event, "delete", name), 5, f"delete of {name}")
    assert "0 apps" in god.run("ping").stdout


def test_events_arrive_within_100_ms_of_the_systemd_change(god: Pmsd, events: Events) -> None:
    god.run("start", os.path.join(APPS, "sleeper.py"), "--name", "ev", "--restart-delay", "200")
    _, online = events.wait(lambda e: e["event"] == "online" and e["app"] == "ev", 10, "online")
    pid = online["pid"]
    assert pid > 0 and pid == god.app("ev")["pid"]
    os.kill(pid, signal.SIGKILL)  # the app this test started
    arrived, exited = events.wait(lambda e: e["event"] == "exit" and e["app"] == "ev", 10, "exit")
    assert exited["signal"] == "SIGKILL" and exited["code"] is None and exited["pid"] == pid
    # `at` is systemd's own ExecMainExitTimestamp: the delay is systemd -> god -> socket -> this reader.
    latencies = {"exit": arrived * 1000 - exited["at"]}
    arrived, waiting = events.wait(lambda e: e["event"] == "waiting restart", 10, "waiting restart")
    latencies["waiting restart"] = arrived * 1000 - waiting["at"]
    arrived, back = events.wait(lambda e: e["event"] == "start" and e["pid"] != pid, 10, "start")
    latencies["start"] = arrived * 1000 - back["at"]
    events.wait(lambda e: e["event"] == "restart" and e["restart_time"] == 1, 10, "restart")
    assert all(0 <= ms <= 100 for ms in latencies.values()), latencies


def test_kill_9_god_while_an_app_crash_loops(god: Pmsd) -> None:
    god.run("start", os.path.join(APPS, "exits.py"), "--name", "loop", "--restart-delay", "300",
            "--max-restarts", "1000")
    wait_for(lambda: _env_of(god, "loop")["restart_time"] >= 3, 20, "3 restarts")
    before = wait_for(lambda: _god_pid(god.env), 10, "god's main pid")
    os.kill(before, signal.SIGKILL)  # god: this test started it (`pmsd ping`)
    restarts_at_kill = _env_of(god, "loop")["restart_time"]
    # systemd brings god back; the app never stopped restarting meanwhile.
    wait_for(lambda: _god_pid(god.env) not in (0, before), 10, "god to come back with a new pid")
    god.run("ping")
    # Then god is away for longer (stopped): systemd alone keeps the crash loop going.
    systemctl(god.env, "stop", GOD)
    mid = _env_of(god, "loop")["restart_time"]
    wait_for(lambda: _env_of(god, "loop")["restart_time"] >= mid + 3, 20, "restarts while god is down")
    god.run("ping")
    wait_for(lambda: _env_of(god, "loop")["restart_time"] >= restarts_at_kill + 6, 20, "more restarts")
    god.run("stop", "loop")
    final = _env_of(god, "loop")
    # Every run of exits.py is shorter than min_uptime: every exit is an unstable restart, each counted once
    # (the runs god missed while down included), and the last exit before the stop was not restarted.
    assert final["status"] == "stopped"
    # Regression (issue 19): about 1 run in 6 counted the exits around god's kill and stop short, or over, by
    # one or two; tests/unit/test_god_seed_model.py has the causes, each with its own case.
    assert final["restart_time"] <= final["unstable_restarts"] <= final["restart_time"] + 1, final
    # The figures are the same whether god answers or not.
    listed = god.jlist()
    systemctl(god.env, "stop", GOD)
    assert [p["pm2_env"]["unstable_restarts"] for p in god.jlist()] == \
        [p["pm2_env"]["unstable_restarts"] for p in listed]


def test_exponential_backoff_gaps_grow_as_pm2s(god: Pmsd, events: Events) -> None:
    god.run("start", os.path.join(APPS, "exits.py"), "--name", "bo", "--exp-backoff-restart-delay", "100",
            "--max-restarts", "1000")
    exits: list[int] = []
    starts: list[int] = []

    def nth_exit(event: dict[str, Any]) -> bool:
        return bool(event["event"] == "exit" and event["at"] > (starts[-1] if starts else 0))

    def next_start(event: dict[str, Any]) -> bool:
        return bool(event["event"] == "start" and event["at"] > exits[-1])

    for index in range(5):
        exits.append(events.wait(nth_exit, 20, f"exit {index + 1}")[1]["at"])
        if index < 4:
            starts.append(events.wait(next_start, 20, f"start {index + 2}")[1]["at"])
    gaps = [start - exit_at for exit_at, start in zip(exits, starts, strict=False)]
    # PM2's curve: 100, 150, 225, 337 ms (x1.5, rounded down); a restart takes a few ms on top.
    for gap, expected in zip(gaps, (100, 150, 225, 337), strict=True):
        assert expected <= gap <= expected + 80, gaps
    waiting = [e for _, e in events.seen if e["event"] == "waiting restart"]
    assert [w["delay_ms"] for w in waiting[:4]] == [100, 150, 225, 337]
    # systemd's own timer is the 15 s cap, so a crash loop stays bounded while god is away.
    assert unit_property(god.env, "pmsd-bo.service", "RestartUSec") == "15s"


def test_memory_restart_when_the_whole_unit_exceeds_the_limit(god: Pmsd, events: Events) -> None:
    god.run("start", os.path.join(APPS, "hog.py"), "--name", "hog", "--max-memory-restart", "60M",
            "--", "10", "0.05", "200")
    _, event = events.wait(lambda e: e["event"] == "memory restart" and e["app"] == "hog", 30, "memory restart")
    assert event["memory_bytes"] > event["limit_bytes"] == 60 * 1024 * 1024
    wait_for(lambda: _env_of(god, "hog")["restart_time"] >= 1, 10, "the restart to count")
    assert "whole unit" in god.run("describe", "hog").stdout


def test_cron_restart_fires_and_starts_a_stopped_app(god: Pmsd, events: Events) -> None:
    god.run("start", os.path.join(APPS, "sleeper.py"), "--name", "cr", "--cron-restart", "*/3 * * * * *")
    assert unit_property(god.env, "pmsd.cron-cr.timer", "ActiveState") == "active"
    first = god.app("cr")["pid"]
    events.wait(lambda e: e["event"] == "cron restart" and e["app"] == "cr", 15, "cron restart")
    wait_for(lambda: god.app("cr")["pid"] not in (0, first), 15, "a new pid after the cron restart")
    god.run("stop", "cr")
    assert god.status("cr") == "stopped"
    god.wait_status("cr", "online", timeout=15)  # the cron started it again, as PM2's does
    god.run("delete", "cr")
    assert unit_property(god.env, "pmsd.cron-cr.timer", "LoadState") in ("not-found", "")


def test_invalid_cron_pattern_is_refused_and_nothing_is_created(god: Pmsd) -> None:
    result = god.run("start", os.path.join(APPS, "sleeper.py"), "--name", "badcron", "--cron-restart",
                     "61 * * * *", check=False)
    assert result.returncode == 2
    assert "minute" in result.stderr and "61" in result.stderr
    assert god.jlist() == []


def test_watch_restarts_on_an_edit_and_ignores_ignored_paths(god: Pmsd, events: Events) -> None:
    work = tempfile.mkdtemp(dir=god.cwd)
    shutil.copy(os.path.join(APPS, "sleeper.py"), os.path.join(work, "app.py"))
    os.mkdir(os.path.join(work, "cache"))
    god.run("start", os.path.join(work, "app.py"), "--name", "wa", "--watch", "--ignore-watch", "cache",
            "--cwd", work)
    events.wait(lambda e: e["event"] == "online" and e["app"] == "wa", 10, "online")
    with open(os.path.join(work, "cache", "junk.txt"), "w") as handle:
        handle.write("ignored")
    with open(os.path.join(work, "app.py"), "a") as handle:
        handle.write("\n# edited\n")
    _, event = events.wait(lambda e: e["event"] == "watch restart", 10, "watch restart")
    assert any(path.endswith("app.py") for path in event["paths"])
    assert not any("cache" in path for path in event["paths"])
    wait_for(lambda: _env_of(god, "wa")["restart_time"] == 1, 10, "the restart to count")
    # `pmsd stop` ends watching, as in PM2.
    god.run("stop", "wa")
    assert _env_of(god, "wa")["watch"] is False


def test_the_socket_refuses_other_users(god: Pmsd) -> None:
    path = os.path.join(god.env["XDG_RUNTIME_DIR"], "pmsd", "god.sock")
    assert os.stat(path).st_mode & 0o777 == 0o600
    client = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
              "try:\n s.connect(sys.argv[1]); print(s.recv(4096).decode())\n"
              "except OSError as e: print('refused', e.errno)\n")
    result = subprocess.run(["runuser", "-u", "nobody", "--", SYSTEM_PYTHON, "-c", client, path],
                            capture_output=True, text=True, timeout=30)
    assert result.stdout.startswith("refused 13"), result  # EACCES: the file mode keeps others out


def test_peer_credentials_are_checked_even_on_an_open_socket(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Defence in depth: even a socket others can reach answers only its owner."""
    from pmsd.god.loop import Loop
    from pmsd.god.server import ApiServer

    directory = tempfile.mkdtemp(prefix="pmsd-sock-")
    os.chmod(directory, 0o755)
    path = os.path.join(directory, "god.sock")
    loop = Loop()
    server = ApiServer(path, loop, lambda _c, r: {"id": r.get("id"), "result": "ok"})
    os.chmod(path, 0o666)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            for key, _ in loop.selector.select(0.05):
                key.data()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n"
                  "s.sendall(b'{\"id\":1,\"method\":\"ping\"}\\n')\nprint(s.recv(4096).decode())\n")
        # The refusal comes at accept time, before any request: the other user only listens.
        listener = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n"
                    "print(s.recv(4096).decode())\n")
        other = subprocess.run(["runuser", "-u", "nobody", "--", SYSTEM_PYTHON, "-c", listener, path],
                               capture_output=True, text=True, timeout=30)
        assert "may not use" in other.stdout, other
        owner = subprocess.run([sys.executable, "-c", client, path], capture_output=True, text=True, timeout=30)
        assert '"result":"ok"' in owner.stdout, owner
    finally:
        stop.set()
        thread.join(5)
        server.close()
        shutil.rmtree(directory)


def test_python_api_connect(god: Pmsd) -> None:
    god.run("start", os.path.join(APPS, "sleeper.py"), "--name", "api1")
    script = ("import pmsd\nwith pmsd.connect() as g:\n print(g.ping()['pid'])\n"
              " print([p['name'] for p in g.list()])\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=god.env,
                            timeout=30, check=True)
    pid_line, names = result.stdout.splitlines()
    assert int(pid_line) == _god_pid(god.env)
    assert names == "['api1']"


def test_god_follows_each_cluster_instance_on_its_own(god: Pmsd, events: Events) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    god.run("start", os.path.join(APPS, "listen_fds.py"), "--name", "cl", "-i", "2", "--port", f"127.0.0.1:{port}",
            "--interpreter", sys.executable)
    procs = sorted((p for p in god.jlist() if p["name"] == "cl"), key=lambda p: p["pm_id"])
    victim = procs[1]
    _, online = events.wait(lambda e: e["event"] == "online" and e["pm_id"] == victim["pm_id"], 10, "online")
    os.kill(online["pid"], signal.SIGKILL)  # an instance this test started
    _, exited = events.wait(lambda e: e["event"] == "exit" and e["app"] == "cl", 10, "exit")
    assert exited["pm_id"] == victim["pm_id"] and exited["signal"] == "SIGKILL"
    events.wait(lambda e: e["event"] == "restart" and e["pm_id"] == victim["pm_id"], 10, "restart")
    counts = {p["pm_id"]: p["pm2_env"]["restart_time"] for p in god.jlist() if p["name"] == "cl"}
    assert counts == {procs[0]["pm_id"]: 0, victim["pm_id"]: 1}


def test_god_keeps_following_apps_across_a_daemon_reload(god: Pmsd, events: Events) -> None:
    """pmsd itself reloads the manager when a cluster app's template changes; god must not lose track."""
    god.run("start", os.path.join(APPS, "sleeper.py"), "--name", "rl")
    _, online = events.wait(lambda e: e["event"] == "online" and e["app"] == "rl", 10, "online")
    systemctl(god.env, "daemon-reload")
    os.kill(online["pid"], signal.SIGKILL)  # the app this test started
    events.wait(lambda e: e["event"] == "exit" and e["app"] == "rl", 10, "exit after the reload")
    events.wait(lambda e: e["event"] == "restart" and e["app"] == "rl", 10, "restart after the reload")
    assert god.wait_status("rl", "online")["pm2_env"]["restart_time"] == 1


def test_update_moves_god_onto_the_installed_code_and_leaves_apps_alone(god: Pmsd, token: str) -> None:
    """Issue 14: `pmsd update` (after upgrading pmsd) restarts god only; every app keeps its process."""
    name = f"upd-{token}"
    god.run("start", os.path.join(APPS, "sleeper.py"), "--name", name)
    app = god.wait_status(name, "online")
    god_pid = unit_property(god.env, GOD, "MainPID")
    result = god.run("update")
    assert "god restarted" in result.stdout and "apps were not touched" in result.stdout
    assert unit_property(god.env, GOD, "MainPID") not in ("0", god_pid)
    after = god.app(name)
    assert (after["pid"], after["pm2_env"]["status"], after["pm2_env"]["restart_time"]) == (app["pid"], "online", 0)


def test_ls_answered_by_god_is_what_systemd_says_right_after_each_change(god: Pmsd) -> None:
    """`pmsd jlist`/`ls` ask god (one round trip, pmsd.god.snapshot) and must never show a state older than the
    command that came before: right after each change, god's answer equals systemd's (PMSD_NO_GOD=1 makes
    the same CLI ask systemd itself)."""
    direct = {**god.env, "PMSD_NO_GOD": "1"}

    def view(env: dict[str, str] | None = None) -> list[tuple[str, str, int, int]]:
        result = god.run("jlist", env=env)
        return [(p["name"], p["pm2_env"]["status"], p["pid"], p["pm2_env"]["restart_time"])
                for p in json.loads(result.stdout)]

    god.run("start", os.path.join(APPS, "sleeper.py"), "--name", "g1")
    god.run("start", os.path.join(APPS, "sleeper.py"), "--name", "g2", "-i", "2")
    for change in (("restart", "g1"), ("stop", "g2"), ("restart", "all"), ("delete", "g1")):
        god.run(*change)
        by_god = view()
        assert by_god == view(direct), change
    god.run("ls")  # the table from god's answer
    stopped = god.run("start", os.path.join(APPS, "sleeper.py"), "--name", "g3")
    assert stopped.returncode == 0 and [row[:2] for row in view() if row[0] == "g3"] == [("g3", "online")]


def test_memory_read_by_god_follows_an_app_into_the_cgroup_of_its_restart(god: Pmsd) -> None:
    """god's memory figure is the unit's cgroup's, as the direct path's is. Two ways it was not:
    - systemd's signals never tell ControlGroup, so for an app started after god, god had no cgroup and summed
      the main process's RSS (regression seen on this host: 13.7 MB against the cgroup's 7.4 MB);
    - god keeps the cgroup files open between listings (pmsd.linux.heldfiles), and a restart gives the unit a
      new cgroup at the same path: the figures must come from the new one."""
    direct = {**god.env, "PMSD_NO_GOD": "1"}

    def memory(env: dict[str, str] | None = None) -> int:
        [app] = json.loads(god.run("jlist", env=env).stdout)
        assert app["pm2_env"]["status"] == "online"
        return int(app["monit"]["memory"])

    god.run("start", os.path.join(APPS, "sleeper.py"), "--name", "held")
    before = memory()
    for _ in range(2):
        god.run("restart", "held")
        by_god, by_systemd = memory(), memory(direct)
        assert by_god > 0 and before > 0
        assert abs(by_god - by_systemd) <= by_systemd // 4, (by_god, by_systemd)
