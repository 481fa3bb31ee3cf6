"""Driving the real `pmsd` CLI, and waiting with deadlines (never bare sleeps)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

APPS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "apps")
T = TypeVar("T")


@dataclass
class Pmsd:
    """The pmsd CLI bound to one test's private state directory and environment."""

    env: dict[str, str]
    cwd: str

    def run(self, *args: str, check: bool = True, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "pmsd", *args], capture_output=True, text=True, cwd=self.cwd,
            env={**self.env, **(env or {})}, timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"pmsd {' '.join(args)} exited {result.returncode}\n"
                                 f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        return result

    def jlist(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = json.loads(self.run("jlist").stdout)
        return data

    def app(self, name: str) -> dict[str, Any]:
        for proc in self.jlist():
            if proc["name"] == name:
                return proc
        raise AssertionError(f"{name!r} is not in pmsd jlist")

    def status(self, name: str) -> str:
        return str(self.app(name)["pm2_env"]["status"])

    def wait_status(self, name: str, status: str, timeout: float = 10) -> dict[str, Any]:
        """The app's jlist entry once its status is `status`."""
        def reached() -> dict[str, Any] | None:
            proc = self.app(name)
            return proc if proc["pm2_env"]["status"] == status else None

        return wait_for(reached, timeout, f"{name!r} to be {status}",
                        describe=lambda: json.dumps(self.app(name)["pm2_env"]))


def wait_for(condition: Callable[[], T | None], timeout: float, what: str,
             describe: Callable[[], str] | None = None) -> T:
    """Poll until condition() returns something truthy; on timeout fail with what was last seen."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except AssertionError as error:
            last = error
        else:
            last = value
            if value:
                return value
        time.sleep(0.05)
    seen = describe() if describe else repr(last)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last seen: {seen}")


def systemctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True, env=env, timeout=30)


def unit_property(env: dict[str, str], unit: str, prop: str) -> str:
    return systemctl(env, "show", "-p", prop, "--value", unit).stdout.strip()


def journal_tail(env: dict[str, str], unit: str, lines: int = 15) -> str:
    result = subprocess.run(["journalctl", "--no-pager", "-n", str(lines), f"_SYSTEMD_USER_UNIT={unit}"],
                            capture_output=True, text=True, env=env, timeout=30)
    return result.stdout


def markers(directory: str) -> list[dict[str, Any]]:
    """Start records written by tests/apps/sleeper.py, oldest first."""
    records = []
    for name in os.listdir(directory):
        if name.endswith(".json"):
            with open(os.path.join(directory, name)) as handle:
                records.append(json.load(handle))
    return sorted(records, key=lambda r: os.path.getmtime(os.path.join(directory, f"{r['pid']}.json")))


def markers_count(directory: str, count: int) -> list[dict[str, Any]] | None:
    """The start records once there are exactly `count` of them."""
    found = markers(directory)
    return found if len(found) == count else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def god_unit_file(env: dict[str, str]) -> str:
    """Where a pip-installed pmsd writes god's unit for the user manager (pmsd.definition.god_unit)."""
    return os.path.join(env["XDG_RUNTIME_DIR"], "systemd", "user", "pmsd-god.service")


def forget_god_unit_file(env: dict[str, str], existed_before: bool) -> None:
    """Remove god's unit file if the test made pmsd write it: tests leave no file behind."""
    if not existed_before and os.path.exists(god_unit_file(env)):
        os.unlink(god_unit_file(env))
        systemctl(env, "daemon-reload")


class Events:
    """god's event stream, read in the background through the Python API (subscribed before the test goes
    on, so no event is missed); each event with the time it arrived."""

    def __init__(self, cli: Pmsd) -> None:
        from pmsd.api.client import GodClient  # lazy: only the tests that read god's events need the API
        from pmsd.context import Context

        self.client = GodClient(Context(user=True, environ=cli.env))
        self.stream = self.client.events()
        self.lines: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.seen: list[tuple[float, dict[str, Any]]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the connection closes at the end of the test
            for event in self.stream:
                self.lines.put((time.time(), event.to_json()))

    def wait(self, match: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        for arrived, event in self.seen:
            if match(event):
                return arrived, event
        while time.monotonic() < deadline:
            try:
                arrived, event = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append((arrived, event))
            if match(event):
                return arrived, event
        raise AssertionError(f"no {what} event within {timeout} s; saw {[e['event'] for _, e in self.seen]}")

    def close(self) -> None:
        self.client.close()
