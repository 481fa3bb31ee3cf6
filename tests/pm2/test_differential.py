"""The same scenario with PM2 and with pmsd: what a user sees (statuses, counters, names, ids, exit codes, the
environment the app gets, files) must match, or differ only where README's "Where pmsd differs" says so."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from pmsd.errors import ExitStatus
from tests.e2e.helpers import wait_for
from tests.pm2.conftest import Manager

# e2e too: these drive the real CLI against a user manager, so the fast suite (-m "not e2e and not system") skips them
pytestmark = [pytest.mark.pm2, pytest.mark.e2e]

PY = ("--interpreter", "python3")
# The keys of PM2's pm2_env that pmsd's jlist carries too (pmsd.render.jlist), read by dashboards and scripts.
JLIST_KEYS = (
    "name", "namespace", "pm_id", "status", "restart_time", "unstable_restarts", "pm_uptime", "created_at",
    "exec_mode", "instances", "NODE_APP_INSTANCE", "instance_var", "pm_exec_path", "pm_cwd", "exec_interpreter",
    "node_args", "args", "autorestart", "autostart", "watch", "username", "unique_id", "version",
    "pm_out_log_path", "pm_err_log_path", "merge_logs", "treekill", "env", "axm_monitor", "axm_actions",
    "axm_options", "axm_dynamic",
)


def summary(manager: Manager) -> list[tuple[str, int, str, int]]:
    """(name, id, status, restarts) of every process, by id."""
    return [(p["name"], int(p["pm_id"]), p["pm2_env"]["status"], int(p["pm2_env"]["restart_time"]))
            for p in manager.apps()]


def differential(pm2: Manager, pmsd: Manager, scenario: Callable[[Manager], Any]) -> tuple[Any, Any]:
    """Run the scenario with each; both observations, PM2's first."""
    return scenario(pm2), scenario(pmsd)


def assert_same(seen: tuple[Any, Any]) -> None:
    pm2_seen, pmsd_seen = seen
    assert pmsd_seen == pm2_seen, f"\nPM2:  {pm2_seen!r}\npmsd: {pmsd_seen!r}"


# ------------------------------------------------------------------------------------------ start


def test_start_a_script(pm2: Manager, pmsd: Manager, token: str) -> None:
    def scenario(m: Manager) -> Any:
        result = m.run("start", m.script(f"a{token}"), *PY)
        m.wait_status(f"a{token}", "online")
        started = len(m.wait_markers(1))
        return result.returncode, summary(m), started

    seen = differential(pm2, pmsd, scenario)
    assert seen[0] == (0, [(f"a{token}", 0, "online", 0)], 1)
    assert_same(seen)


def test_start_with_name_and_args(pm2: Manager, pmsd: Manager, token: str) -> None:
    def scenario(m: Manager) -> Any:
        m.ok("start", m.script("app"), *PY, "--name", f"n{token}", "--", "--port", "1")
        m.wait_status(f"n{token}", "online")
        [record] = m.wait_markers(1)
        return record["argv"], record["cwd"] == m.cwd, m.app(f"n{token}")["pm2_env"]["args"]

    assert_same(differential(pm2, pmsd, scenario))


# ------------------------------------------------------------------------------------------ counters


def _counters(steps: tuple[str, ...], token: str) -> Callable[[Manager], Any]:
    """Start the app, then run each step, noting (status, restart_time, how many runs the app had)."""
    def scenario(m: Manager) -> Any:
        name = f"c{token}"
        m.ok("start", m.script(name), *PY)
        m.wait_status(name, "online")
        m.wait_markers(1)
        seen = []
        for step in steps:
            m.ok(step, name)
            status = "stopped" if step == "stop" else "online"
            m.wait_status(name, status)
            if status == "online":
                wait_for(lambda: m.app(name)["pid"] in {r["pid"] for r in m.markers()}, 15,
                         f"{m.kind}: the current run of {name} to record its start")
            runs = len(m.markers())
            seen.append((step, status, int(m.app(name)["pm2_env"]["restart_time"]), runs))
        return seen

    return scenario


def test_restart_of_a_running_app_counts(pm2: Manager, pmsd: Manager, token: str) -> None:
    seen = differential(pm2, pmsd, _counters(("restart", "restart"), token))
    assert seen[0] == [("restart", "online", 1, 2), ("restart", "online", 2, 3)]
    assert_same(seen)


def test_stop_then_start(pm2: Manager, pmsd: Manager, token: str) -> None:
    assert_same(differential(pm2, pmsd, _counters(("stop", "start"), token)))


def test_stop_then_restart(pm2: Manager, pmsd: Manager, token: str) -> None:
    assert_same(differential(pm2, pmsd, _counters(("stop", "restart"), token)))


# ------------------------------------------------------------------------------------------ ids


def test_delete_then_start_again_ids(pm2: Manager, pmsd: Manager, token: str) -> None:
    def scenario(m: Manager) -> Any:
        first, second = f"d{token}", f"e{token}"
        m.ok("start", m.script(first), *PY)
        m.ok("start", m.script(second), *PY)
        m.wait_all("online", 2)
        m.ok("delete", first)
        m.wait_all("online", 1)
        m.ok("start", m.script(first), *PY)
        m.wait_all("online", 2)
        return [(name, pm_id) for name, pm_id, _, _ in summary(m)]

    assert_same(differential(pm2, pmsd, scenario))


# ------------------------------------------------------------------------------------------ exit codes


def _same_failure(seen: tuple[Any, Any], pmsd_status: int) -> None:
    """Where PM2 fails, pmsd fails too; PM2 exits 1 for every failure, pmsd with its documented finer status
    (README, "Where pmsd differs" and "Exit statuses"). Everything else observed is the same."""
    (pm2_code, *pm2_rest), (pmsd_code, *pmsd_rest) = seen
    assert (pm2_code, pmsd_code) == (1, pmsd_status)
    assert pmsd_rest == pm2_rest, f"\nPM2:  {pm2_rest!r}\npmsd: {pmsd_rest!r}"


def test_start_of_a_running_script_without_force(pm2: Manager, pmsd: Manager, token: str) -> None:
    def scenario(m: Manager) -> Any:
        script = m.script(f"r{token}")
        m.ok("start", script, *PY)
        m.wait_status(f"r{token}", "online")
        m.wait_markers(1)
        again = m.run("start", script, *PY)
        m.wait_status(f"r{token}", "online")
        return again.returncode, summary(m)

    _same_failure(differential(pm2, pmsd, scenario), ExitStatus.USAGE)


def test_stop_of_an_unknown_name(pm2: Manager, pmsd: Manager, token: str) -> None:
    def scenario(m: Manager) -> Any:
        return (m.run("stop", f"nobody{token}").returncode,)

    _same_failure(differential(pm2, pmsd, scenario), ExitStatus.NOT_FOUND)


def test_restart_all_with_no_apps(pm2: Manager, pmsd: Manager) -> None:
    def scenario(m: Manager) -> Any:
        return m.run("restart", "all").returncode, summary(m)

    _same_failure(differential(pm2, pmsd, scenario), ExitStatus.NOT_FOUND)


# ------------------------------------------------------------------------------------------ environment


def _write_ecosystem(m: Manager, apps: list[dict[str, Any]]) -> str:
    path = os.path.join(m.cwd, "ecosystem.json")
    with open(path, "w") as handle:
        json.dump({"apps": apps}, handle)
    return path


@pytest.mark.parametrize("env_name", [None, "production"])
def test_definition_env_and_env_name(pm2: Manager, pmsd: Manager, token: str, env_name: str | None) -> None:
    def scenario(m: Manager) -> Any:
        app = {"name": f"v{token}", "script": m.script(f"v{token}"), "interpreter": "python3",
               "env": {"SHARED": "base", "ONLY_BASE": "1"},
               "env_production": {"SHARED": "prod", "ONLY_PROD": "1"}}
        path = _write_ecosystem(m, [app])
        m.ok("start", path, *(("--env", env_name) if env_name else ()))
        m.wait_status(f"v{token}", "online")
        [record] = m.wait_markers(1)
        # the definition's env over the environment `start` ran in (MARKER_DIR comes from there)
        return ({key: record["env"].get(key) for key in ("SHARED", "ONLY_BASE", "ONLY_PROD")},
                record["env"]["MARKER_DIR"] == m.marker_dir)

    assert_same(differential(pm2, pmsd, scenario))


def test_variables_pm2_gives_the_app(pm2: Manager, pmsd: Manager, token: str) -> None:
    def scenario(m: Manager) -> Any:
        m.ok("start", m.script(f"x{token}"), *PY)
        m.ok("start", m.script(f"y{token}"), *PY)
        m.wait_all("online", 2)
        records = m.wait_markers(2)
        return sorted((r["env"].get("name"), r["env"].get("pm_id"), r["env"].get("NODE_APP_INSTANCE"),
                       r["env"].get("namespace")) for r in records)

    assert_same(differential(pm2, pmsd, scenario))


# ------------------------------------------------------------------------------------------ ecosystem


def test_ecosystem_with_two_apps_and_only(pm2: Manager, pmsd: Manager, token: str) -> None:
    def scenario(m: Manager) -> Any:
        apps = [{"name": f"{stem}{token}", "script": m.script(f"{stem}{token}"), "interpreter": "python3"}
                for stem in ("p", "q")]
        path = _write_ecosystem(m, apps)
        only = m.run("start", path, "--only", f"q{token}").returncode
        m.wait_all("online", 1)
        after_only = summary(m)
        whole = m.run("start", path).returncode
        m.wait_all("online", 2)
        return only, after_only, whole, summary(m)

    assert_same(differential(pm2, pmsd, scenario))


# ------------------------------------------------------------------------------------------ targets


def _two_namespaces(m: Manager, token: str) -> None:
    m.ok("start", m.script(f"j1{token}"), *PY, "--namespace", f"jobs{token}")
    m.ok("start", m.script(f"j2{token}"), *PY, "--namespace", f"jobs{token}")
    m.ok("start", m.script(f"w{token}"), *PY, "--namespace", f"web{token}")
    m.wait_all("online", 3)


def test_stop_a_namespace(pm2: Manager, pmsd: Manager, token: str) -> None:
    def scenario(m: Manager) -> Any:
        _two_namespaces(m, token)
        code = m.run("stop", f"jobs{token}").returncode
        m.wait_status(f"j1{token}", "stopped")
        m.wait_status(f"j2{token}", "stopped")
        return code, [(p["name"], p["pm2_env"]["namespace"], p["pm2_env"]["status"]) for p in m.apps()]

    assert_same(differential(pm2, pmsd, scenario))


def test_regex_target(pm2: Manager, pmsd: Manager, token: str) -> None:
    def scenario(m: Manager) -> Any:
        _two_namespaces(m, token)
        code = m.run("stop", f"/^j.{token}$/").returncode
        m.wait_status(f"j1{token}", "stopped")
        m.wait_status(f"j2{token}", "stopped")
        return code, [(name, status) for name, _, status, _ in summary(m)]

    assert_same(differential(pm2, pmsd, scenario))


def test_script_path_target(pm2: Manager, pmsd: Manager, token: str) -> None:
    def scenario(m: Manager) -> Any:
        m.ok("start", m.script(f"s{token}"), *PY)
        m.ok("start", m.script(f"t{token}"), *PY)
        m.wait_all("online", 2)
        code = m.run("stop", f"s{token}.py").returncode
        m.wait_status(f"s{token}", "stopped")
        return code, [(name, status) for name, _, status, _ in summary(m)]

    assert_same(differential(pm2, pmsd, scenario))


# ------------------------------------------------------------------------------------------ jlist


def test_jlist_fields(pm2: Manager, pmsd: Manager, token: str) -> None:
    def scenario(m: Manager) -> Any:
        m.ok("start", m.script(f"f{token}"), *PY, "--", "one")
        proc = m.wait_status(f"f{token}", "online")
        env = proc["pm2_env"]
        missing = [key for key in JLIST_KEYS if key not in env]
        values = {key: env.get(key) for key in ("name", "namespace", "pm_id", "status", "restart_time",
                                                "unstable_restarts", "exec_mode", "instances", "NODE_APP_INSTANCE",
                                                "instance_var", "exec_interpreter", "node_args",
                                                "args", "autorestart", "autostart", "watch", "username",
                                                "version", "merge_logs", "treekill")}
        values["pm_cwd"] = env.get("pm_cwd") == m.cwd
        values["pm_exec_path"] = env.get("pm_exec_path") == m.script(f"f{token}")
        values["pm_uptime_is_a_time"] = abs(env["pm_uptime"] - env["created_at"]) < 5000
        values["top"] = sorted(key for key in proc if key in ("pid", "name", "pm_id", "monit", "pm2_env"))
        values["pid_alive"] = proc["pid"] > 0 and os.path.exists(f"/proc/{proc['pid']}")
        return missing, values

    seen = differential(pm2, pmsd, scenario)
    pm2_seen = seen[0]
    assert pm2_seen[0] == [], f"PM2 {pm2_seen[0]} lacks keys this test expects: update JLIST_KEYS"
    assert_same(seen)


def test_jlist_log_paths_with_files(pm2: Manager, pmsd: Manager, token: str) -> None:
    def scenario(m: Manager) -> Any:
        m.ok("start", m.script(f"l{token}"), *PY, "--output", "out.log", "--error", "err.log")
        env = m.wait_status(f"l{token}", "online")["pm2_env"]
        m.wait_markers(1)
        out = os.path.join(m.cwd, "out.log")
        return (env["pm_out_log_path"], env["pm_err_log_path"]) == (out, os.path.join(m.cwd, "err.log")), \
            os.path.exists(out), os.path.exists(os.path.join(m.cwd, "err.log"))

    seen = differential(pm2, pmsd, scenario)
    assert seen[0] == (True, True, True)
    assert_same(seen)


def test_stopped_app_exit_code(pm2: Manager, pmsd: Manager, token: str) -> None:
    """pid and monit as PM2 after `stop`; exit_code differs on purpose: PM2 shows 0, pmsd null (README, Where
    pmsd differs: the stopped app's unit is gone, and pmsd keeps no runtime state of its own)."""
    def scenario(m: Manager) -> Any:
        m.ok("start", m.script(f"k{token}"), *PY)
        m.wait_status(f"k{token}", "online")
        m.wait_markers(1)
        m.ok("stop", f"k{token}")
        proc = m.wait_status(f"k{token}", "stopped")
        return proc["pid"], proc["monit"], proc["pm2_env"].get("exit_code")

    (pm2_pid, pm2_monit, pm2_code), (pmsd_pid, pmsd_monit, pmsd_code) = differential(pm2, pmsd, scenario)
    assert (pmsd_pid, pmsd_monit) == (pm2_pid, pm2_monit)
    assert (pm2_code, pmsd_code) == (0, None)


def test_instances(pm2: Manager, pmsd: Manager, token: str) -> None:
    """-i 2: one process per instance, each with its own id and NODE_APP_INSTANCE; a Python app's instances are
    fork_mode in both (pmsd's shared socket needs a port or exec_mode: cluster; README, Cluster mode)."""
    def scenario(m: Manager) -> Any:
        m.ok("start", m.script(f"i{token}"), *PY, "-i", "2")
        procs = m.wait_all("online", 2)
        records = m.wait_markers(2)
        listed = [(p["name"], int(p["pm_id"]), p["pm2_env"]["NODE_APP_INSTANCE"], p["pm2_env"]["instances"])
                  for p in procs]
        seen_by_apps = sorted((r["env"].get("pm_id"), r["env"].get("NODE_APP_INSTANCE")) for r in records)
        return listed, seen_by_apps, {p["pm2_env"]["exec_mode"] for p in procs}

    (pm2_listed, pm2_apps, pm2_mode), (pmsd_listed, pmsd_apps, pmsd_mode) = differential(pm2, pmsd, scenario)
    assert (pmsd_listed, pmsd_apps) == (pm2_listed, pm2_apps)
    assert pm2_mode == pmsd_mode == {"fork_mode"}


# ------------------------------------------------------------------------------------------ issue 12: the rest

SIGNAL_APP = """\
import os, signal, sys, time

def seen(signum, _frame):
    with open(os.path.join(os.environ["MARKER_DIR"], f"signals-{os.getpid()}.txt"), "a") as handle:
        handle.write(signal.Signals(signum).name + "\\n")

signal.signal(signal.SIGUSR1, seen)
signal.signal(signal.SIGUSR2, seen)
print("listening", flush=True)
while True:
    time.sleep(3600)
"""


def _signals_seen(m: Manager, pid: int) -> list[str]:
    path = os.path.join(m.marker_dir, f"signals-{pid}.txt")
    with open(path) as handle:
        return handle.read().split()


def test_send_signal_reaches_the_app(pm2: Manager, pmsd: Manager, token: str) -> None:
    def scenario(m: Manager) -> Any:
        script = os.path.join(m.cwd, f"g{token}.py")
        with open(script, "w") as handle:
            handle.write(SIGNAL_APP)
        m.ok("start", script, *PY)
        pid = int(m.wait_status(f"g{token}", "online")["pid"])
        # the handlers are installed before the app prints; wait for its line in /proc's view of its state
        wait_for(lambda: _handles_usr2(pid), 15, f"{m.kind}: the app to install its handlers")
        codes = [m.run("sendSignal", "SIGUSR2", f"g{token}").returncode,
                 m.run("sendSignal", "SIGUSR1", f"g{token}").returncode]
        seen = wait_for(lambda: (lambda s: s if len(s) == 2 else None)(
            _signals_seen(m, pid) if os.path.exists(os.path.join(m.marker_dir, f"signals-{pid}.txt")) else []),
            15, f"{m.kind}: the app to see two signals")
        proc = m.app(f"g{token}")
        return codes, seen, proc["pm2_env"]["status"], proc["pid"] == pid, proc["pm2_env"]["restart_time"]

    seen = differential(pm2, pmsd, scenario)
    assert seen[0] == ([0, 0], ["SIGUSR2", "SIGUSR1"], "online", True, 0)
    assert_same(seen)


def _handles_usr2(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as handle:
        caught = next(line for line in handle if line.startswith("SigCgt:")).split()[1]
    return bool(int(caught, 16) & (1 << (12 - 1)))


def test_start_or_restart_twice(pm2: Manager, pmsd: Manager, token: str) -> None:
    def scenario(m: Manager) -> Any:
        apps = [{"name": f"{stem}{token}", "script": m.script(f"{stem}{token}"), "interpreter": "python3"}
                for stem in ("o", "u")]
        path = _write_ecosystem(m, apps)
        seen = []
        for runs in (2, 4):
            code = m.run("startOrRestart", path).returncode
            m.wait_all("online", 2)
            m.wait_markers(runs)
            seen.append((code, summary(m)))
        return seen

    seen = differential(pm2, pmsd, scenario)
    assert [[restarts for *_, restarts in listed] for _, listed in seen[0]] == [[0, 0], [1, 1]]
    assert_same(seen)


def _command_scenario(command: str) -> Callable[[Manager], Any]:
    def scenario(m: Manager) -> Any:
        code = m.run("start", command).returncode
        name = wait_for(lambda: next((p["name"] for p in m.jlist() if p["pm2_env"]["status"] == "online"), None),
                        15, f"{m.kind}: the command to run")
        proc = m.app(name)
        with open(f"/proc/{proc['pid']}/cmdline", "rb") as handle:
            argv = handle.read().rstrip(b"\0").split(b"\0")
        return code, summary(m), argv[-2:]

    return scenario


def test_a_command_string(pm2: Manager, pmsd: Manager, token: str) -> None:
    command = f"sh -c 'sleep 1000' x{token}"
    seen = differential(pm2, pmsd, _command_scenario(command))
    # both run it through bash -c (which execs sh, whose $0 is the token), named after the command
    assert seen[0] == (0, [(command, 0, "online", 0)], [b"sleep 1000", f"x{token}".encode()])
    assert_same(seen)


def test_a_command_string_with_a_dot(pm2: Manager, pmsd: Manager, token: str) -> None:
    """Differs on purpose (README, "Where pmsd differs"): PM2 names a command string as it names a script, without
    its "extension" (`sh -c 'sleep 1000.5' x` becomes "sh -c 'sleep 1000"); pmsd keeps the whole command. The
    rest (exit code, id, status, restarts, what runs) is the same."""
    command = f"sh -c 'sleep 1000.5' x{token}"
    (pm2_code, pm2_apps, pm2_argv), (pmsd_code, pmsd_apps, pmsd_argv) = differential(pm2, pmsd,
                                                                                     _command_scenario(command))
    assert [name for name, *_ in pm2_apps] == [command.rsplit(".", 1)[0]]
    assert [name for name, *_ in pmsd_apps] == [command]
    assert (pmsd_code, [rest for _, *rest in pmsd_apps], pmsd_argv) == (pm2_code, [rest for _, *rest in pm2_apps],
                                                                        pm2_argv)


def test_restart_with_a_new_name(pm2: Manager, pmsd: Manager, token: str) -> None:
    def scenario(m: Manager) -> Any:
        m.ok("start", m.script(f"h{token}"), *PY)
        m.wait_status(f"h{token}", "online")
        m.wait_markers(1)
        code = m.run("restart", "0", "--name", f"z{token}").returncode
        proc = m.wait_status(f"z{token}", "online")
        m.wait_markers(2)
        latest = m.markers()[-1]
        return code, summary(m), proc["pid"] == latest["pid"], latest["env"].get("name")

    seen = differential(pm2, pmsd, scenario)
    assert seen[0] == (0, [(f"z{token}", 0, "online", 1)], True, f"z{token}")
    assert_same(seen)


def _piped(m: Manager, text: str, *args: str) -> int:
    m.calls.append(" ".join(args) + " < stdin")
    return subprocess.run([*m.cli, *args], input=text, capture_output=True, text=True, cwd=m.cwd, env=m.env,
                          timeout=60).returncode


def test_start_from_stdin(pm2: Manager, pmsd: Manager, token: str) -> None:
    def scenario(m: Manager) -> Any:
        apps = [{"name": f"{stem}{token}", "script": m.script(f"{stem}{token}"), "interpreter": "python3",
                 "env": {"FROM_STDIN": stem}} for stem in ("b", "c")]
        code = _piped(m, json.dumps({"apps": apps}), "start", "-")
        m.wait_all("online", 2)
        records = m.wait_markers(2)
        return code, summary(m), sorted(r["env"].get("FROM_STDIN") for r in records)

    seen = differential(pm2, pmsd, scenario)
    assert seen[0] == (0, [(f"b{token}", 0, "online", 0), (f"c{token}", 1, "online", 0)], ["b", "c"])
    assert_same(seen)


# ------------------------------------------------------------------------------------------ hostile numbers


def test_a_digit_that_is_not_0_to_9_is_refused_by_both(pm2: Manager, pmsd: Manager, token: str) -> None:
    """`max_restarts: "²"` in a file, `--max-restarts ٣` on the command line: PM2 expects a number and starts
    nothing; so does pmsd (issue 19: str.isdigit() took "²" and int() then raised, and "٣" was read as 3)."""
    def scenario(m: Manager) -> Any:
        app = {"name": f"d{token}", "script": m.script(f"d{token}"), "interpreter": "python3", "max_restarts": "²"}
        from_file = m.run("start", _write_ecosystem(m, [app])).returncode
        flag = m.run("start", m.script(f"e{token}"), *PY, "--max-restarts", "٣").returncode
        return from_file != 0, flag != 0, summary(m)

    seen = differential(pm2, pmsd, scenario)
    assert seen[0] == (True, True, [])
    assert_same(seen)


def test_a_number_of_5000_digits_differs_on_purpose(pm2: Manager, pmsd: Manager, token: str) -> None:
    """README, "Where pmsd differs": JavaScript reads `max_restarts: 99…9` (5,000 digits) as Infinity and PM2
    starts the app; pmsd refuses the file (Python reads at most 4,300 digits of an integer), naming it."""
    def scenario(m: Manager) -> Any:
        app = {"name": f"h{token}", "script": m.script(f"h{token}"), "interpreter": "python3", "max_restarts": 0}
        path = _write_ecosystem(m, [app])
        with open(path, encoding="utf-8") as handle:
            text = handle.read().replace('"max_restarts": 0', '"max_restarts": ' + "9" * 5000)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        result = m.run("start", path)
        return result.returncode, result.stderr, summary(m)

    (pm2_code, _, pm2_apps), (pmsd_code, pmsd_err, pmsd_apps) = differential(pm2, pmsd, scenario)
    assert (pm2_code, [name for name, *_ in pm2_apps]) == (0, [f"h{token}"])
    assert (pmsd_code, pmsd_apps) == (ExitStatus.USAGE, [])
    assert "a number has more than 4300 digits" in pmsd_err


def test_an_app_too_big_to_execute_differs_on_purpose(pm2: Manager, pmsd: Manager, token: str) -> None:
    """README, "Where pmsd differs": an `env` of 3 MB is more than execve() takes. PM2 says
    `Process failed to launch spawn E2BIG`, exits 0 and lists nothing; pmsd refuses the file before anything
    exists (exit status 2), naming the app, its size and the variable, and lists nothing either."""
    def scenario(m: Manager) -> Any:
        app = {"name": f"x{token}", "script": m.script(f"x{token}"), "interpreter": "python3",
               "env": {"BIG": "x" * 3_000_000}}
        result = m.run("start", _write_ecosystem(m, [app]))
        return result.returncode, result.stdout + result.stderr, summary(m)

    (pm2_code, pm2_out, pm2_apps), (pmsd_code, pmsd_out, pmsd_apps) = differential(pm2, pmsd, scenario)
    assert (pm2_code, pm2_apps) == (0, []) and "E2BIG" in pm2_out
    assert (pmsd_code, pmsd_apps) == (ExitStatus.USAGE, [])
    assert f"app 'x{token}' cannot be started" in pmsd_out and "'BIG'" in pmsd_out
