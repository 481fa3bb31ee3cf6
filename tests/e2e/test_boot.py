"""Issue 14: saved apps come back after a reboot, and a lost or damaged registry or save loses nothing.

A "reboot" of user mode ends the user manager and starts it again (tests/harness/systemd-user.sh down, up):
every unit is gone, as after a real reboot, and `pmsd startup`'s unit runs `pmsd resurrect` as the manager
starts. On a host booted with systemd the harness does not own the user manager, so the reboot tests skip
there; the system-mode reboot is the nspawn harness's (tests/system).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import HARNESS
from tests.e2e.helpers import Pmsd, systemctl, wait_for
from tests.e2e.test_cluster import free_port, get, needs_node, online_pids

pytestmark = pytest.mark.e2e
SLEEPER = "import time\nprint('up', flush=True)\nwhile True:\n    time.sleep(3600)\n"
HTTP_APP = "require('http').createServer((q, r) => r.end(`${{process.pid}}\\n`)).listen({port});\n"
needs_own_manager = pytest.mark.skipif(
    Path("/proc/1/comm").read_text().strip() == "systemd",
    reason="the user manager belongs to the booted host: the harness only reboots a manager it started")


def reboot_user_manager() -> None:
    for step in ("down", "up"):
        subprocess.run(["bash", HARNESS, step], check=True, capture_output=True, timeout=120)


@pytest.fixture
def startup(pmsd: Pmsd) -> Iterator[None]:
    pmsd.run("startup")
    yield
    pmsd.run("unstartup")


def _statuses(pmsd: Pmsd) -> list[tuple[int, str, str]]:
    return [(p["pm_id"], p["name"], p["pm2_env"]["status"]) for p in pmsd.jlist()]


def _apps(pmsd: Pmsd, token: str) -> int:
    """A fork app, a Node cluster app with its port in the code, a cron app, and an app stopped on purpose."""
    for name in ("w", "cron", "off"):
        Path(pmsd.cwd, f"{name}-{token}.py").write_text(SLEEPER)
    pmsd.run("start", f"w-{token}.py")
    pmsd.run("start", f"cron-{token}.py", "--cron-restart", "0 3 * * *")
    pmsd.run("start", f"off-{token}.py")
    pmsd.run("stop", f"off-{token}")
    port = free_port()
    Path(pmsd.cwd, f"web-{token}.js").write_text(HTTP_APP.format(port=port))
    pmsd.run("start", f"web-{token}.js", "-i", "2")
    online_pids(pmsd, f"web-{token}", 2)
    return port


@needs_own_manager
@needs_node
def test_saved_apps_come_back_after_a_reboot(pmsd: Pmsd, token: str, startup: None) -> None:
    port = _apps(pmsd, token)
    before = _statuses(pmsd)
    pmsd.run("save")
    reboot_user_manager()
    wait_for(lambda: _statuses(pmsd) == before or None, 30, "the apps to come back as they were",
             describe=lambda: str(_statuses(pmsd)))
    assert get(port) in online_pids(pmsd, f"web-{token}", 2)  # the socket is back, shared again
    assert systemctl(pmsd.env, "is-active", f"pmsd.cron-cron-{token}.timer").stdout.strip() == "active"
    # Idempotent: nothing left to do.
    assert "nothing to do" in pmsd.run("resurrect").stdout
    assert _statuses(pmsd) == before


def test_resurrect_puts_back_a_lost_registry_with_the_same_ids(pmsd: Pmsd, token: str) -> None:
    Path(pmsd.cwd, f"a-{token}.py").write_text(SLEEPER)
    pmsd.run("start", f"a-{token}.py", "--name", f"a-{token}")
    pmsd.run("start", f"a-{token}.py", "--name", f"b-{token}")
    pmsd.run("stop", f"b-{token}")
    before = _statuses(pmsd)
    pmsd.run("save")
    pmsd.run("delete", "all")
    state = Path(pmsd.env["XDG_STATE_HOME"], "pmsd")
    for lost in ("registry.json", "registry.json.bak"):
        (state / lost).unlink(missing_ok=True)
    result = pmsd.run("resurrect")
    assert "restored" in result.stdout
    wait_for(lambda: _statuses(pmsd) == before or None, 15, "the same apps, ids and statuses",
             describe=lambda: str(_statuses(pmsd)))


def test_a_damaged_registry_and_a_damaged_save_are_survived(pmsd: Pmsd, token: str) -> None:
    Path(pmsd.cwd, f"d-{token}.py").write_text(SLEEPER)
    pmsd.run("start", f"d-{token}.py")
    pmsd.run("save")  # the save before: d
    pmsd.run("start", f"d-{token}.py", "--name", f"e-{token}")
    pmsd.run("stop", f"e-{token}")
    pmsd.run("save")  # the save: d, and e stopped
    pmsd.run("reset", f"d-{token}")  # one more change: the registry's backup knows both apps
    state = Path(pmsd.env["XDG_STATE_HOME"], "pmsd")
    (state / "registry.json").write_text("{torn")
    (state / "dump.json").write_text("")
    listed = pmsd.run("ls")
    assert f"d-{token}" in listed.stdout and f"e-{token}" in listed.stdout
    assert "is used instead" in listed.stderr
    result = pmsd.run("resurrect")
    assert "using the save before it" in result.stderr and "nothing to do" in result.stdout
    assert {p["name"]: p["pm2_env"]["status"] for p in pmsd.jlist()} == {f"d-{token}": "online",
                                                                          f"e-{token}": "stopped"}
    assert any(name.startswith("registry.json.broken-") for name in os.listdir(state))
    pmsd.run("reset", "all")  # a change writes a good registry again: no more warnings
    assert "[WARN]" not in pmsd.run("ls").stderr


def test_save_skips_an_empty_list_unless_forced(pmsd: Pmsd) -> None:
    result = pmsd.run("save", check=False)
    assert result.returncode == 0 and "--force" in result.stderr and "nothing saved" in result.stderr  # as PM2
    assert not Path(pmsd.env["XDG_STATE_HOME"], "pmsd", "dump.json").exists()
    pmsd.run("save", "--force")
    assert "nothing to do" in pmsd.run("resurrect").stdout


@needs_node
def test_with_no_registry_backup_or_save_the_running_apps_are_relisted_from_systemd(pmsd: Pmsd,
                                                                                     token: str) -> None:
    Path(pmsd.cwd, f"f-{token}.py").write_text(SLEEPER)
    pmsd.run("start", f"f-{token}.py", "--", "--flag", "x")
    Path(pmsd.cwd, f"n-{token}.js").write_text(HTTP_APP.format(port=free_port()))
    pmsd.run("start", f"n-{token}.js", "-i", "2")
    before = {(p["pm_id"], p["name"], p["pid"]) for p in pmsd.jlist() if p["name"] == f"f-{token}"}
    online_pids(pmsd, f"n-{token}", 2)
    state = Path(pmsd.env["XDG_STATE_HOME"], "pmsd")
    (state / "registry.json").write_text("{lost")
    (state / "registry.json.bak").unlink(missing_ok=True)
    listed = pmsd.run("jlist")
    assert "app unit(s) systemd runs" in listed.stderr
    apps = json.loads(listed.stdout)
    assert {(p["pm_id"], p["name"], p["pid"]) for p in apps if p["name"] == f"f-{token}"} == before  # same id
    fork = next(p for p in apps if p["name"] == f"f-{token}")
    assert fork["pm2_env"]["args"] == ["--flag", "x"] and fork["pm2_env"]["pm_exec_path"].endswith(f"f-{token}.py")
    assert sorted(p["pm2_env"]["status"] for p in apps if p["name"] == f"n-{token}") == ["online", "online"]
    pmsd.run("delete", "all")  # the relisted apps can be managed: deleting them leaves nothing behind
    assert pmsd.jlist() == []
