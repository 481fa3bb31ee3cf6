"""PM2's target grammar and restart counting against the real user manager (issue 12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.e2e.helpers import APPS, Pmsd, systemctl

pytestmark = pytest.mark.e2e
SLEEPER = os.path.join(APPS, "sleeper.py")


def _restarts(pmsd: Pmsd, name: str) -> int:
    restarts: int = pmsd.app(name)["pm2_env"]["restart_time"]
    return restarts


def test_only_restarts_of_a_running_app_count(pmsd: Pmsd, token: str) -> None:
    # PM2's God.restartProcessId counts a restart of an online app; a stopped one is just started.
    name = f"count-{token}"
    pmsd.run("start", SLEEPER, "--name", name)
    pmsd.run("restart", name)
    assert _restarts(pmsd, name) == 1
    pmsd.run("stop", name)
    pmsd.run("restart", name)  # a stopped app: started, not counted
    assert pmsd.status(name) == "online"
    assert _restarts(pmsd, name) == 1
    pmsd.run("stop", name)
    pmsd.run("start", name)  # start of a known, stopped app: not counted either
    assert pmsd.status(name) == "online"
    assert _restarts(pmsd, name) == 1
    pmsd.run("reload", name)  # reload counts, as a restart does
    assert _restarts(pmsd, name) == 2
    pmsd.run("reset", name)
    assert _restarts(pmsd, name) == 0


def test_regex_and_script_targets(pmsd: Pmsd, token: str) -> None:
    os.symlink(SLEEPER, os.path.join(pmsd.cwd, "svc.py"))
    first, second, other = f"rx-a-{token}", f"rx-b-{token}", f"other-{token}"
    pmsd.run("start", SLEEPER, "--name", first)
    pmsd.run("start", SLEEPER, "--name", second)
    pmsd.run("start", "svc.py", "--name", other)  # the script as the cwd names it
    pmsd.run("stop", f"/^rx-.-{token}$/")
    assert [pmsd.status(first), pmsd.status(second), pmsd.status(other)] == ["stopped", "stopped", "online"]
    before = pmsd.app(other)["pid"]
    pmsd.run("restart", "svc.py")  # the apps whose script is ./svc.py: not those running its target
    assert pmsd.app(other)["pid"] != before
    assert [pmsd.status(first), pmsd.status(second)] == ["stopped", "stopped"]
    missing = pmsd.run("stop", f"/^nothing-{token}/", check=False)
    assert missing.returncode == 3 and "no app name matches" in missing.stderr
    invalid = pmsd.run("stop", "/rx-(/", check=False)
    assert invalid.returncode == 2 and "invalid regular expression /rx-(/" in invalid.stderr
    pmsd.run("delete", f"/-{token}$/")
    assert not [p for p in pmsd.jlist() if p["name"].endswith(token)]
    empty = pmsd.run("restart", "all", check=False)  # PM2: "No process found", non-zero
    assert empty.returncode == 3 and "no apps to restart" in empty.stderr


def test_ecosystem_file_targets(pmsd: Pmsd, token: str) -> None:
    first, second = f"eco-a-{token}", f"eco-b-{token}"
    path = os.path.join(pmsd.cwd, "targets.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"apps": [{"name": first, "script": SLEEPER}, {"name": second, "script": SLEEPER}]}, handle)
    pmsd.run("start", "targets.json")
    pmsd.run("stop", "targets.json")  # the file's apps, by name
    assert [pmsd.status(first), pmsd.status(second)] == ["stopped", "stopped"]
    pmsd.run("delete", second)
    # restart of a file is PM2's start of it: its apps restart (or start, stopped or missing), uncounted here.
    pmsd.run("restart", "targets.json")
    assert [pmsd.status(first), pmsd.status(second)] == ["online", "online"]
    assert _restarts(pmsd, first) == 0
    pmsd.run("restart", "targets.json")
    assert _restarts(pmsd, first) == 1
    pmsd.run("delete", "targets.json")
    assert not [p for p in pmsd.jlist() if p["name"].endswith(token)]
    gone = pmsd.run("stop", "targets.json", check=False)
    assert gone.returncode == 3 and "none of the apps of targets.json is registered" in gone.stderr


def _piped(pmsd: Pmsd, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    """pmsd with `text` on its stdin (`cat apps.json | pmsd <args>`)."""
    return subprocess.run([sys.executable, "-m", "pmsd", *args], input=text, capture_output=True, text=True,
                          cwd=pmsd.cwd, env=pmsd.env, timeout=60)


def test_stdin_as_a_target(pmsd: Pmsd, token: str) -> None:
    first, second = f"in-a-{token}", f"in-b-{token}"
    apps = json.dumps({"apps": [{"name": first, "script": SLEEPER, "env": {"WHO": "1"}},
                                {"name": second, "script": SLEEPER}]})
    started = _piped(pmsd, apps, "start", "-")
    assert started.returncode == 0, started.stderr
    assert [pmsd.status(first), pmsd.status(second)] == ["online", "online"]
    assert pmsd.app(first)["pm2_env"]["env"]["WHO"] == "1"
    stopped = _piped(pmsd, json.dumps({"name": second, "script": SLEEPER}), "stop", "-")
    assert stopped.returncode == 0, stopped.stderr
    assert [pmsd.status(first), pmsd.status(second)] == ["online", "stopped"]
    before = pmsd.app(first)["pid"]
    restarted = _piped(pmsd, json.dumps([{"name": first, "script": SLEEPER, "env": {"WHO": "2"}}]), "restart", "-")
    assert restarted.returncode == 0, restarted.stderr
    assert pmsd.app(first)["pid"] != before and pmsd.app(first)["pm2_env"]["env"]["WHO"] == "2"
    for bad, message in (("", "stdin is empty"), ('{"apps": [', "stdin:1:11: invalid JSON"),
                         ("[]", "stdin: declares no apps")):
        refused = _piped(pmsd, bad, "delete", "-")
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    assert len([p for p in pmsd.jlist() if p["name"].endswith(token)]) == 2
    deleted = _piped(pmsd, apps, "delete", "-")
    assert deleted.returncode == 0, deleted.stderr
    assert not [p for p in pmsd.jlist() if p["name"].endswith(token)]


def test_restart_flags_change_the_definition(pmsd: Pmsd, token: str, user_manager: dict[str, str]) -> None:
    old, new = f"ren-a-{token}", f"ren-b-{token}"
    pmsd.run("start", SLEEPER, "--name", old, "--interpreter", "python3")
    pmsd.run("restart", old, "--name", new, "--node-args", "-u -B")
    assert [p["name"] for p in pmsd.jlist() if p["name"].endswith(token)] == [new]
    proc = pmsd.wait_status(new, "online")
    assert proc["pm_id"] == 0 and proc["pm2_env"]["restart_time"] == 1
    assert proc["pm2_env"]["node_args"] == ["-u", "-B"]
    assert systemctl(user_manager, "is-active", f"pmsd-{old}.service").stdout.strip() != "active"
    with open(f"/proc/{proc['pid']}/cmdline", "rb") as handle:
        assert handle.read().split(b"\0")[1:3] == [b"-u", b"-B"]
    pmsd.run("reload", new, "--node-args=null")
    assert pmsd.wait_status(new, "online")["pm2_env"]["node_args"] == []
    taken = pmsd.run("start", SLEEPER, "--name", old)
    assert taken.returncode == 0
    refused = pmsd.run("restart", new, "--name", old, check=False)
    assert refused.returncode == 2 and "an app of that name exists" in refused.stderr
    env = pmsd.run("restart", new, "--env", "production", check=False)
    assert env.returncode == 2 and "is read from an ecosystem file" in env.stderr


def test_reload_of_an_ecosystem_file_starts_what_is_missing(pmsd: Pmsd, token: str) -> None:
    first, second = f"rl-a-{token}", f"rl-b-{token}"
    path = os.path.join(pmsd.cwd, "reload.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"apps": [{"name": first, "script": SLEEPER, "env": {"V": "1"}},
                            {"name": second, "script": SLEEPER}]}, handle)
    pmsd.run("start", "reload.json", "--only", first)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"apps": [{"name": first, "script": SLEEPER, "env": {"V": "2"}},
                            {"name": second, "script": SLEEPER}]}, handle)
    pmsd.run("reload", "reload.json")
    assert [pmsd.status(first), pmsd.status(second)] == ["online", "online"]
    assert pmsd.app(first)["pm2_env"]["env"]["V"] == "2" and _restarts(pmsd, first) == 1
