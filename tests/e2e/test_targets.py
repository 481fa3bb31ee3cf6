"""PM2's target grammar and restart counting against the real user manager (issue 12)."""

from __future__ import annotations

import json
import os

import pytest

from tests.e2e.helpers import APPS, Pmsd

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
