"""Reading PM2's dump.pm2 (`pm2 save`) as pmsd app definitions.

The fixture is written by hand in the shape PM2 7.0.4 writes (observed with `pm2 save` on fork, cluster,
stopped, errored, cron and watched apps), with generic values: each entry is the process's pm2_env, the env
variables copied to its top level, PM2's bookkeeping beside the options, and no pm_id (PM2 leaves it out).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pmsd.definition.build import build_spec
from pmsd.definition.pm2dump import CARRIED_KEYS, LOG_PATH_KEYS, RENAMED_KEYS, load_pm2_dump
from pmsd.definition.settings import ALIASES, SETTINGS_BY_KEY
from pmsd.errors import UsageError
from pmsd.model.spec import Source
from tests.unit.helpers import SYSTEM_PATH

Entry = dict[str, object]


@pytest.fixture
def srv(tmp_path: Path) -> Path:
    """The apps' directory, with their scripts (build_spec wants them on disk) and a stand-in node."""
    app = tmp_path / "srv" / "app"
    (app / "logs").mkdir(parents=True)
    for script in ("server.js", "idle.js", "worker.py"):
        (app / script).write_text("\n")
    tool = app / "tool"
    tool.write_text("#!/bin/sh\nexec sleep 1000\n")
    tool.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "node").write_text("#!/bin/sh\n")
    (bin_dir / "node").chmod(0o755)
    return app


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """PM2_HOME: where PM2 keeps dump.pm2 and its default log files."""
    directory = tmp_path / "pm2home"
    (directory / "logs").mkdir(parents=True)
    return directory


def _entry(home: Path, srv: Path, name: str, script: str, pm_id: int, **options: object) -> Entry:
    """One process as PM2 saves it: its options, PM2's bookkeeping, and env with what `pm2 start` ran in."""
    user_env = options.pop("user_env", {})
    assert isinstance(user_env, dict)
    env: Entry = {
        # The shell `pm2 start` ran in: kept, the app saw it.
        "HOME": "/home/deploy", "LANG": "C.UTF-8", "PATH": f"{srv.parent.parent}/bin:{SYSTEM_PATH}",
        # The shell's own bookkeeping: dropped.
        "PWD": str(srv), "OLDPWD": "/home/deploy", "SHLVL": "1", "_": "/usr/local/bin/pm2",
        # PM2's: dropped.
        "PM2_HOME": str(home), "PM2_USAGE": "CLI", "PM2_JSON_PROCESSING": "true", name: "{}",
        "unique_id": "00000000-0000-4000-8000-000000000000",
        **user_env,
    }
    instance_var = options.get("instance_var", "NODE_APP_INSTANCE")
    assert isinstance(instance_var, str)
    entry: Entry = {
        "name": name, "namespace": "default", "pm_exec_path": str(srv / script), "pm_cwd": str(srv),
        "exec_interpreter": "node", "node_args": [], "exec_mode": "fork_mode", "env": env,
        "autostart": True, "autorestart": True, "treekill": True, "instance_var": "NODE_APP_INSTANCE",
        "vizion": True, "pmx": True, "automation": True, "username": "deploy", "windowsHide": True,
        "kill_retry_time": 100, "km_link": False, "vizion_running": False,
        "pm_out_log_path": str(home / "logs" / f"{name}-out.log"),
        "pm_err_log_path": str(home / "logs" / f"{name}-error.log"),
        "pm_pid_path": str(home / "pids" / f"{name}-{pm_id}.pid"),
        instance_var: 0, "status": "online", "pm_uptime": 1_700_000_000_000, "created_at": 1_700_000_000_000,
        "restart_time": 0, "unstable_restarts": 0, "version": "N/A", "node_version": "20.20.2",
        "axm_actions": [], "axm_monitor": {}, "axm_options": {}, "axm_dynamic": {},
    }
    entry.update(options)
    entry.update({key: value for key, value in env.items() if key != name})  # PM2 copies env to the top level
    return entry


def _web(home: Path, srv: Path, pm_id: int, instance: int) -> Entry:
    """An instance of a Node cluster app started from an ecosystem file (`instances: 2`, no merge_logs): PM2
    adds "-<pm_id>" to each instance's log files."""
    return _entry(
        home, srv, "web", "server.js", pm_id, exec_mode="cluster_mode", NODE_APP_INSTANCE=instance,
        node_args=["--max-old-space-size=256"], max_memory_restart=209_715_200, kill_timeout=3000,
        listen_timeout=5000, user_env={"PORT": "3999", "NODE_ENV": "production"},
        pm_out_log_path=str(srv / "logs" / f"web.out-{pm_id}.log"),
        pm_err_log_path=str(home / "logs" / f"web-error-{pm_id}.log"),
    )


def _queue(home: Path, srv: Path, pm_id: int, instance: int) -> Entry:
    """An instance of a cluster app with increment_var: each instance's env holds its own PORT."""
    return _entry(
        home, srv, "queue", "idle.js", pm_id, exec_mode="cluster_mode", NODE_APP_INSTANCE=instance,
        merge_logs=True, increment_var="PORT", user_env={"PORT": 4000 + instance}, stop_exit_codes=[0, 3],
        exp_backoff_restart_delay=100, wait_ready=True, treekill=False, min_uptime=2000, autorestart=False,
        filter_env=["AWS"], watch=["src", "lib"], watch_delay=300, cron_restart="*/5 * * * *",
        pm_out_log_path=str(srv / "logs" / "queue.log"),
    )


@pytest.fixture
def dump(home: Path, srv: Path) -> Path:
    entries = [
        # `MY_VAR=1 pm2 start worker.py --name worker --interpreter python3 -- --port 81 -v`
        _entry(home, srv, "worker", "worker.py", 0, exec_interpreter="python3", args=["--port", "81", "-v"],
               merge_logs=True, filter_env=[], user_env={"MY_VAR": "1"}),
        _web(home, srv, 1, 0),
        _web(home, srv, 2, 1),
        # `pm2 start idle.js --name idle && pm2 stop idle`
        _entry(home, srv, "idle", "idle.js", 3, merge_logs=True, status="stopped", exit_code=0),
        # `pm2 start idle.js --name cronny --cron-restart "0 * * * *" --watch --ignore-watch node_modules
        #  --namespace jobs --restart-delay 500 --max-restarts 5 --time`
        _entry(home, srv, "cronny", "idle.js", 4, namespace="jobs", cron_restart="0 * * * *", watch=True,
               ignore_watch=["node_modules"], restart_delay=500, max_restarts=5, time=True, merge_logs=True,
               log_date_format="YYYY-MM-DDTHH:mm:ss"),
        # Instance 1 saved before instance 0: the base PORT is instance 0's.
        _queue(home, srv, 6, 1),
        _queue(home, srv, 5, 0),
        # An executable run directly, that crashed (errored): PM2 still wanted it running.
        _entry(home, srv, "tool", "tool", 7, exec_interpreter="none", instance_var="INST", status="errored",
               merge_logs=True, max_memory_restart=1_073_741_824,
               pm_log_path=str(srv / "logs" / "tool.all.log"), pm_err_log_path=str(srv / "logs" / "tool.err")),
        # No script path: left out, with a warning.
        {"name": "broken", "status": "online", "env": {}},
    ]
    path = home / "dump.pm2"
    path.write_text(json.dumps(entries))
    return path


def _apps(dump: Path) -> dict[str, dict[str, object]]:
    apps, warnings = load_pm2_dump(str(dump))
    assert warnings == [f"{dump}: app 'broken' has no script path (pm_exec_path); left out"]
    by_name = {str(app["name"]): app for app in apps}
    assert len(by_name) == len(apps)
    return by_name


def test_a_fork_app(dump: Path, srv: Path) -> None:
    worker = _apps(dump)["worker"]
    env = worker.pop("env")
    assert worker == {
        "name": "worker", "namespace": "default", "interpreter": "python3", "interpreter_args": [],
        "args": ["--port", "81", "-v"], "filter_env": [], "autorestart": True, "treekill": True,
        "merge_logs": True, "instance_var": "NODE_APP_INSTANCE", "script": str(srv / "worker.py"),
        "cwd": str(srv), "exec_mode": "fork", "instances": 1, "autostart": True,
    }
    assert env == {"HOME": "/home/deploy", "LANG": "C.UTF-8", "PATH": f"{srv.parent.parent}/bin:{SYSTEM_PATH}",
                   "MY_VAR": "1"}


def test_cluster_instances_collapse_into_one_app(dump: Path, srv: Path) -> None:
    web = _apps(dump)["web"]
    assert (web["exec_mode"], web["instances"], web["interpreter"]) == ("cluster", 2, "node")
    assert web["interpreter_args"] == ["--max-old-space-size=256"]
    assert (web["max_memory_restart"], web["kill_timeout"], web["listen_timeout"]) == (209_715_200, 3000, 5000)
    env = web["env"]
    assert isinstance(env, dict)
    assert (env["PORT"], env["NODE_ENV"]) == ("3999", "production")
    # Each instance's "-<pm_id>" file is the one file the user named; PM2's default error file goes.
    assert web["out_file"] == str(srv / "logs" / "web.out.log")
    assert "error_file" not in web and "log_file" not in web


def test_the_base_of_increment_var_is_instance_zeros(dump: Path, srv: Path) -> None:
    queue = _apps(dump)["queue"]
    env = queue["env"]
    assert isinstance(env, dict)
    assert (queue["instances"], queue["increment_var"], env["PORT"]) == (2, "PORT", 4000)
    assert {key: queue[key] for key in ("stop_exit_codes", "exp_backoff_restart_delay", "wait_ready", "treekill",
                                        "min_uptime", "autorestart", "filter_env", "watch", "watch_delay",
                                        "cron_restart")} == {
        "stop_exit_codes": [0, 3], "exp_backoff_restart_delay": 100, "wait_ready": True, "treekill": False,
        "min_uptime": 2000, "autorestart": False, "filter_env": ["AWS"], "watch": ["src", "lib"],
        "watch_delay": 300, "cron_restart": "*/5 * * * *"}
    assert queue["out_file"] == str(srv / "logs" / "queue.log")  # merge_logs: PM2 added no suffix


def test_a_stopped_app_is_registered_without_starting_it(dump: Path) -> None:
    apps = _apps(dump)
    assert apps["idle"]["autostart"] is False
    assert all(app["autostart"] is True for name, app in apps.items() if name != "idle")


def test_cron_watch_and_time(dump: Path) -> None:
    cronny = _apps(dump)["cronny"]
    assert {key: cronny[key] for key in ("namespace", "cron_restart", "watch", "ignore_watch", "restart_delay",
                                         "max_restarts", "time", "log_date_format")} == {
        "namespace": "jobs", "cron_restart": "0 * * * *", "watch": True, "ignore_watch": ["node_modules"],
        "restart_delay": 500, "max_restarts": 5, "time": True, "log_date_format": "YYYY-MM-DDTHH:mm:ss"}


def test_run_directly_with_its_own_log_files(dump: Path, srv: Path) -> None:
    tool = _apps(dump)["tool"]
    assert (tool["interpreter"], tool["instance_var"], tool["max_memory_restart"]) == ("none", "INST", 2**30)
    logs = srv / "logs"
    assert (tool["error_file"], tool["log_file"]) == (str(logs / "tool.err"), str(logs / "tool.all.log"))
    assert "out_file" not in tool


def test_only_keys_pmsd_knows(dump: Path) -> None:
    for app in _apps(dump).values():
        assert set(app) <= set(SETTINGS_BY_KEY), app["name"]
        env = app["env"]
        assert isinstance(env, dict)
        assert not {"PM2_HOME", "PM2_USAGE", "PM2_JSON_PROCESSING", "unique_id", "PWD", "OLDPWD", "SHLVL", "_",
                    app["name"]} & set(env)


def test_every_key_read_is_a_setting() -> None:
    targets = [ALIASES.get(key, key) for key in CARRIED_KEYS] + [*RENAMED_KEYS.values(), *LOG_PATH_KEYS.values()]
    assert set(targets) <= set(SETTINGS_BY_KEY)
    assert len(set(targets)) == len(targets)


def test_every_app_builds(dump: Path, tmp_path: Path) -> None:
    apps, _ = load_pm2_dump(str(dump))
    for raw in apps:
        warn: list[str] = []
        spec = build_spec(raw, Source("dump.pm2", str(tmp_path)), None, SYSTEM_PATH, warn)
        assert warn == [], raw["name"]
        assert (spec.name, spec.instances) == (raw["name"], raw["instances"])
        assert spec.autostart is raw["autostart"]
    web = build_spec(next(app for app in apps if app["name"] == "web"), Source("dump.pm2", str(tmp_path)), None,
                     SYSTEM_PATH, [])
    assert (web.exec_mode, web.port, web.out_file, web.error_file) == (
        "cluster", "3999", os.path.join(str(tmp_path), "srv/app/logs/web.out.log"), None)


def test_a_dump_copied_elsewhere_still_drops_pm2s_log_files(dump: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere.json"
    copy.write_text(dump.read_text())
    apps, _ = load_pm2_dump(str(copy))
    worker = next(app for app in apps if app["name"] == "worker")
    assert "out_file" not in worker and "error_file" not in worker  # found through env.PM2_HOME


def test_pm_id_in_the_entry_names_the_suffix(tmp_path: Path, srv: Path, home: Path) -> None:
    entries = [_web(home, srv, 1, 0), _web(home, srv, 2, 1)]
    for entry, pm_id in zip(entries, (1, 2), strict=True):
        entry["pm_id"] = pm_id
        del entry["pm_pid_path"]
    path = tmp_path / "dump.pm2"
    path.write_text(json.dumps(entries))
    (web,), warnings = load_pm2_dump(str(path))
    assert (web["out_file"], warnings) == (str(srv / "logs" / "web.out.log"), [])


def test_an_empty_dump(tmp_path: Path) -> None:
    path = tmp_path / "dump.pm2"
    path.write_text("[]")
    assert load_pm2_dump(str(path)) == ([], [])


@pytest.mark.parametrize(("content", "problem"), [
    (b"[{]", "invalid JSON"),
    (b'["\xff"]', "not UTF-8"),
    (b'{"name": "web"}', "expected a JSON list of processes"),
    (b'[{"name": "web"}, "web"]', "process #2 is"),
])
def test_not_a_dump(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "dump.pm2"
    path.write_bytes(content)
    with pytest.raises(UsageError) as caught:
        load_pm2_dump(str(path))
    assert str(path) in caught.value.message and problem in caught.value.message


def test_a_missing_dump(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "dump.pm2"
    with pytest.raises(UsageError, match="PM2 dump file not found") as caught:
        load_pm2_dump(str(path))
    assert str(path) in caught.value.message and caught.value.hint is not None and "pm2 save" in caught.value.hint
