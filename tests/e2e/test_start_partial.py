"""`start` of an ecosystem whose third app fails to start: the two that started are listed and can be deleted
(regression: they used to keep running unrecorded, since the whole file was one registry transaction)."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from tests.e2e.helpers import APPS, Pmsd, systemctl, unit_property, wait_for

pytestmark = pytest.mark.e2e

SLEEPER = os.path.join(APPS, "sleeper.py")


def test_apps_started_before_a_failing_one_stay_listed(pmsd: Pmsd, token: str) -> None:
    # Valid for pmsd (an executable file), but execve() fails: its interpreter does not exist.
    broken = os.path.join(pmsd.cwd, "broken")
    with open(broken, "w") as handle:
        handle.write("#!/nonexistent/interpreter\n")
    os.chmod(broken, stat.S_IRWXU)
    names = [f"one-{token}", f"two-{token}", f"three-{token}"]
    apps = [{"name": names[0], "script": SLEEPER}, {"name": names[1], "script": SLEEPER},
            # autorestart off: its failure is final (with it, systemd may already be restarting the unit when
            # the start job ends, and the app is then reported started and errors later, as under PM2).
            {"name": names[2], "script": broken, "interpreter": "none", "autorestart": False}]
    with open(os.path.join(pmsd.cwd, "ecosystem.json"), "w") as handle:
        json.dump({"apps": apps}, handle)

    result = pmsd.run("start", "ecosystem.json", check=False)
    assert result.returncode == 1, result.stderr
    assert f"app {names[2]!r} failed to start" in result.stderr

    listed = {proc["name"]: proc["pm2_env"]["status"] for proc in pmsd.jlist()}
    assert listed == {names[0]: "online", names[1]: "online"}
    assert systemctl(pmsd.env, "is-active", f"pmsd-{names[2]}.service").stdout.strip() != "active"

    pmsd.run("delete", names[0])
    pmsd.run("delete", names[1])
    assert pmsd.jlist() == []
    for name in names[:2]:
        assert systemctl(pmsd.env, "is-active", f"pmsd-{name}.service").stdout.strip() != "active"


def test_a_bad_definition_has_no_effect(pmsd: Pmsd, token: str) -> None:
    """Validation comes before anything else: no state directory, lock or registry, and god not started."""
    apps = [{"name": f"ok-{token}", "script": SLEEPER}, {"name": f"bad-{token}", "script": "missing.py"}]
    with open(os.path.join(pmsd.cwd, "ecosystem.json"), "w") as handle:
        json.dump({"apps": apps}, handle)
    result = pmsd.run("start", "ecosystem.json", check=False, env={"PMSD_NO_GOD": ""})
    assert result.returncode == 2, result.stderr
    assert "script not found" in result.stderr
    state_dir = os.path.join(pmsd.env["XDG_STATE_HOME"], "pmsd")
    assert not os.path.exists(state_dir)
    assert pmsd.jlist() == []


@pytest.mark.parametrize("leftover", ["failed", "running"])
def test_new_apps_start_where_a_unit_of_their_name_is_left(pmsd: Pmsd, token: str, leftover: str) -> None:
    """New apps ask systemd for their units first and make room only when told a name is taken (UnitExists): a
    unit left under an app's name (an errored run pmsd no longer lists, or one still running) is stopped and
    collected, and the app starts in its place."""
    names = [f"left-{token}", f"fresh-{token}"]
    unit = f"pmsd-{names[0]}.service"
    command = ["/bin/false"] if leftover == "failed" else ["/bin/sleep", "300"]
    subprocess.run(["systemd-run", "--user", "--quiet", f"--unit={unit}", *command], env=pmsd.env, check=True)
    expected = "failed" if leftover == "failed" else "active"
    wait_for(lambda: systemctl(pmsd.env, "is-active", unit).stdout.strip() == expected or None, 10,
             f"the leftover unit to be {expected}")
    with open(os.path.join(pmsd.cwd, "ecosystem.json"), "w") as handle:
        json.dump({"apps": [{"name": name, "script": SLEEPER} for name in names]}, handle)
    try:
        pmsd.run("start", "ecosystem.json")
        listed = {proc["name"]: proc["pm2_env"]["status"] for proc in pmsd.jlist()}
        assert listed == {names[0]: "online", names[1]: "online"}
        assert "sleeper.py" in " ".join(unit_property(pmsd.env, unit, "ExecStart").split())
    finally:
        pmsd.run("delete", "all", check=False)
        systemctl(pmsd.env, "stop", unit)
        systemctl(pmsd.env, "reset-failed", unit)
