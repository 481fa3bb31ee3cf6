"""PM2's filter_env and treekill against the real user manager (issue 12)."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from tests.e2e.helpers import APPS, Pmsd, markers, pid_alive, unit_property, wait_for

pytestmark = pytest.mark.e2e

SLEEPER = os.path.join(APPS, "sleeper.py")
# What the caller's shell has and systemd's user manager does not: none of it may reach a filtered app.
CALLER_ONLY = ("NO_COLOR", "PMSD_NO_GOD", "XDG_STATE_HOME")


def _ecosystem(directory: str, app: dict[str, object]) -> str:
    path = os.path.join(directory, "ecosystem.json")
    Path(path).write_text(json.dumps({"apps": [app]}))
    return path


def test_filter_env_true_gives_the_app_none_of_the_callers_environment(
        pmsd: Pmsd, token: str, marker_dir: str) -> None:
    name = f"filtered-{token}"
    secret = f"PMSD_E2E_SECRET_{token}"
    eco = _ecosystem(pmsd.cwd, {"name": name, "script": SLEEPER, "filter_env": True,
                                "env": {"MARKER_DIR": marker_dir}})
    pmsd.run("start", eco, env={secret: "s3cr3t"})
    seen = wait_for(lambda: markers(marker_dir), 10, "the app to write its start marker")[0]["env"]
    assert secret not in seen
    assert not set(CALLER_ONLY) & set(seen), seen
    assert seen["MARKER_DIR"] == marker_dir and seen["name"] == name  # the definition's and PM2's own


def test_filter_env_strings_drop_only_matching_caller_variables(pmsd: Pmsd, token: str, marker_dir: str) -> None:
    name = f"prefixed-{token}"
    secret = f"PMSD_E2E_SECRET_{token}"
    pmsd.run("start", SLEEPER, "--name", name, "--filter-env", "PMSD_E2E_", "--filter-env", "NO_COLOR",
             env={"MARKER_DIR": marker_dir, secret: "s3cr3t", "PMSD_KEPT": "1"})
    seen = wait_for(lambda: markers(marker_dir), 10, "the app to write its start marker")[0]["env"]
    assert secret not in seen and "NO_COLOR" not in seen
    assert seen["PMSD_KEPT"] == "1" and seen["MARKER_DIR"] == marker_dir


def test_filter_env_flag_alone_drops_everything(pmsd: Pmsd, token: str) -> None:
    name = f"bare-{token}"
    pmsd.run("start", SLEEPER, "--name", name, "--filter-env", env={f"PMSD_E2E_SECRET_{token}": "s3cr3t"})
    pmsd.wait_status(name, "online")
    # What the app's environment file holds: PM2's own variables, nothing of the caller's.
    listed = dict(line.split(": ", 1) for line in pmsd.run("env", name).stdout.splitlines() if ": " in line)
    assert set(listed) == {"pm_id", "name", "namespace", "NODE_APP_INSTANCE"}, listed
    assert listed["name"] == name


# A parent that starts a child and records both pids, and each process records the SIGINT it gets.
_FAMILY = textwrap.dedent("""\
    import os, signal, subprocess, sys, time
    marker_dir, role = sys.argv[1], sys.argv[2]

    def on_sigint(signum, frame):
        open(os.path.join(marker_dir, role + ".sigint"), "w").close()
        sys.exit(0)

    signal.signal(signal.SIGINT, on_sigint)
    if role == "main":
        child = subprocess.Popen([sys.executable, __file__, marker_dir, "child"])
        with open(os.path.join(marker_dir, "pids.tmp"), "w") as handle:
            handle.write(f"{os.getpid()} {child.pid}")
        os.replace(os.path.join(marker_dir, "pids.tmp"), os.path.join(marker_dir, "pids"))
    while True:
        time.sleep(3600)
""")


def _family(pmsd: Pmsd, name: str, marker_dir: str, treekill: bool) -> tuple[int, int]:
    script = os.path.join(pmsd.cwd, f"{name}.py")
    Path(script).write_text(_FAMILY)
    eco = _ecosystem(pmsd.cwd, {"name": name, "script": script, "interpreter": sys.executable,
                                "args": [marker_dir, "main"], "treekill": treekill, "kill_timeout": 3000})
    pmsd.run("start", eco)
    pid_file = Path(marker_dir, "pids")
    pids = wait_for(lambda: pid_file.read_text() if pid_file.exists() else None, 10, "the app to start its child")
    main, child = (int(pid) for pid in pids.split())
    wait_for(lambda: pid_alive(child), 10, "the child to run")
    return main, child


def test_treekill_false_signals_only_the_main_process(pmsd: Pmsd, token: str, marker_dir: str) -> None:
    name = f"notreekill-{token}"
    main, child = _family(pmsd, name, marker_dir, treekill=False)
    try:
        assert unit_property(pmsd.env, f"pmsd-{name}.service", "KillMode") == "mixed"
        pmsd.run("stop", name)
        assert pmsd.status(name) == "stopped"
        assert Path(marker_dir, "main.sigint").exists()
        # The child never got the stop signal; once the main process had exited, systemd killed what was left
        # (KillMode=mixed), so a stopped app leaves nothing running.
        assert not Path(marker_dir, "child.sigint").exists()
        wait_for(lambda: not pid_alive(child), 10, "the child to be gone")
        assert not pid_alive(main)
    finally:
        for pid in (main, child):
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_treekill_default_signals_every_process(pmsd: Pmsd, token: str, marker_dir: str) -> None:
    name = f"treekill-{token}"
    main, child = _family(pmsd, name, marker_dir, treekill=True)
    try:
        assert unit_property(pmsd.env, f"pmsd-{name}.service", "KillMode") == "control-group"
        pmsd.run("stop", name)
        assert Path(marker_dir, "main.sigint").exists() and Path(marker_dir, "child.sigint").exists()
        wait_for(lambda: not pid_alive(child), 10, "the child to be gone")
    finally:
        for pid in (main, child):
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
