"""Differential tests: the same scenario run with PM2 itself and with pmsd, comparing what a user observes.

PM2 7 is npm-installed once into PM2_CACHE (a lock keeps concurrent sessions from installing twice); every test
gets a private PM2_HOME, whose daemon is ended with `pm2 kill` (then by its pid, if it outlived that). pmsd gets a
private XDG_STATE_HOME and PMSD_NO_GOD=1 against the systemd user manager (tests/conftest.py's user_manager).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import APPS, wait_for

PM2_CACHE = Path(os.environ.get("PMSD_TEST_PM2_DIR", "/var/cache/pmsd-test/pm2"))
PM2_VERSION = "7"
PM2_BIN = PM2_CACHE / "node_modules" / ".bin" / "pm2"


def _install_pm2() -> str | None:
    """Install PM2 into PM2_CACHE unless it is there; the reason it cannot be, or None."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        return "node/npm are not installed"
    PM2_CACHE.mkdir(parents=True, exist_ok=True)
    with open(PM2_CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if PM2_BIN.exists():
            return None
        (PM2_CACHE / "package.json").write_text('{"name": "pmsd-test-pm2", "private": true}\n')
        try:
            result = subprocess.run(["npm", "install", "--no-audit", "--no-fund", f"pm2@{PM2_VERSION}"],
                                    cwd=PM2_CACHE, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            return "npm install pm2 timed out (is the npm registry reachable?)"
        if result.returncode != 0 or not PM2_BIN.exists():
            return f"npm install pm2@{PM2_VERSION} failed (is the npm registry reachable?): {result.stderr[-500:]}"
    return None


@pytest.fixture(scope="session")
def pm2_bin() -> str:
    reason = _install_pm2()
    if reason is not None:
        pytest.skip(reason)
    return str(PM2_BIN)


@dataclass
class Manager:
    """One process manager's CLI (`pm2` or `pmsd`), bound to a private home and a work directory."""

    kind: str  # "pm2" or "pmsd"
    cli: list[str]
    env: dict[str, str]
    cwd: str
    marker_dir: str
    calls: list[str] = field(default_factory=list)

    def run(self, *args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        self.calls.append(" ".join(args))
        return subprocess.run([*self.cli, *args], capture_output=True, text=True, cwd=self.cwd,
                              env={**self.env, **(env or {})}, timeout=timeout)

    def ok(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, env=env)
        if result.returncode != 0:
            raise AssertionError(f"{self.kind} {' '.join(args)} exited {result.returncode}\n"
                                 f"stdout:\n{result.stdout[-2000:]}\nstderr:\n{result.stderr[-2000:]}")
        return result

    def jlist(self) -> list[dict[str, Any]]:
        result = self.ok("jlist")
        # PM2 may print notices before the JSON; the list is the last line
        data: list[dict[str, Any]] = json.loads(result.stdout.strip().splitlines()[-1])
        return data

    def apps(self) -> list[dict[str, Any]]:
        """jlist sorted by id."""
        return sorted(self.jlist(), key=lambda p: int(p["pm_id"]))

    def app(self, name: str) -> dict[str, Any]:
        for proc in self.jlist():
            if proc["name"] == name:
                return proc
        raise AssertionError(f"{name!r} is not in {self.kind} jlist")

    def wait_status(self, name: str, status: str, timeout: float = 15) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            procs = [p for p in self.jlist() if p["name"] == name]
            return procs[0] if procs and all(p["pm2_env"]["status"] == status for p in procs) else None

        return wait_for(reached, timeout, f"{self.kind}: {name!r} to be {status}",
                        describe=lambda: json.dumps([(p["name"], p["pm2_env"]["status"]) for p in self.jlist()]))

    def wait_all(self, status: str, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        """Every listed process, once there are `count` and all have `status`."""
        def reached() -> list[dict[str, Any]] | None:
            procs = self.apps()
            return procs if len(procs) == count and all(p["pm2_env"]["status"] == status for p in procs) else None

        return wait_for(reached, timeout, f"{self.kind}: {count} processes {status}",
                        describe=lambda: json.dumps([(p["name"], p["pm2_env"]["status"]) for p in self.jlist()]))

    def markers(self) -> list[dict[str, Any]]:
        """Start records written by the apps (tests/apps/sleeper.py), oldest first."""
        records = []
        for entry in os.scandir(self.marker_dir):
            if entry.name.endswith(".json"):
                with open(entry.path) as handle:
                    records.append((entry.stat().st_mtime_ns, json.load(handle)))
        return [record for _, record in sorted(records, key=lambda r: r[0])]

    def wait_markers(self, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        return wait_for(lambda: (lambda m: m if len(m) >= count else None)(self.markers()), timeout,
                        f"{self.kind}: {count} app starts recorded", describe=lambda: str(len(self.markers())))

    def script(self, stem: str) -> str:
        """A copy of tests/apps/sleeper.py in the work directory, as `<stem>.py` (its default app name)."""
        path = os.path.join(self.cwd, f"{stem}.py")
        if not os.path.exists(path):
            shutil.copy(os.path.join(APPS, "sleeper.py"), path)
        return path


def _short_dir(prefix: str) -> str:
    # PM2 puts its sockets (rpc.sock, pub.sock) in PM2_HOME: keep it far below the 108-byte sun_path limit
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


def _end_pm2(manager: Manager, home: str) -> None:
    manager.run("kill", timeout=30)
    pid_file = os.path.join(home, "pm2.pid")
    try:
        pid = int(Path(pid_file).read_text().strip())
    except (OSError, ValueError):
        pid = 0
    deadline = time.monotonic() + 5
    while pid and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        if pid:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # the daemon of this test's PM2_HOME, by its pid only


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex[:6]


@pytest.fixture
def pm2(pm2_bin: str) -> Iterator[Manager]:
    home = _short_dir("pm2h-")
    work = _short_dir("pm2w-")
    markers = _short_dir("pm2m-")
    env = {**os.environ, "PM2_HOME": home, "MARKER_DIR": markers, "NO_COLOR": "1"}
    manager = Manager("pm2", [pm2_bin], env, work, markers)
    yield manager
    _end_pm2(manager, home)
    for directory in (home, work, markers):
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def pmsd(user_manager: dict[str, str]) -> Iterator[Manager]:
    state = _short_dir("pmsds-")
    work = _short_dir("pmsdw-")
    markers = _short_dir("pmsdm-")
    env = {**os.environ, **user_manager, "XDG_STATE_HOME": state, "NO_COLOR": "1", "PMSD_NO_GOD": "1",
           "MARKER_DIR": markers}
    for key in ("PMSD_DEBUG", "PMSD_STATE_DIR", "PM2_HOME"):
        env.pop(key, None)
    manager = Manager("pmsd", [sys.executable, "-m", "pmsd"], env, work, markers)
    yield manager
    manager.run("delete", "all", timeout=60)
    for directory in (state, work, markers):
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def both(pm2: Manager, pmsd: Manager) -> tuple[Manager, Manager]:
    return pm2, pmsd
