"""System-mode tests run against a real booted systemd: a Debian 12 system instance (systemd 252 as PID 1) in
systemd-nspawn, brought up for the session by tests/harness/systemd-system.sh. pmsd is installed inside the way
a user installs it: a venv of Debian's python3 at /opt/pmsd-venv, built from a copy of this working tree; or,
for tests/system/test_package.py, the .deb installed with apt in a Debian 12 or Debian 13 machine."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

HARNESS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "harness", "systemd-system.sh")
CANNOT_RUN = 77  # the harness's "this machine cannot run nspawn at all"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Inside one of these machines (the README's test command run in a stock machine), nspawn cannot boot
    another: every system test is skipped before its fixtures build anything."""
    if os.path.exists("/run/systemd/container"):
        skip = pytest.mark.skip(reason="runs inside a container: no systemd-nspawn machine in a machine")
        for item in items:
            if item.path.is_relative_to(os.path.dirname(os.path.abspath(__file__))):
                item.add_marker(skip)


class MachineCommandFailed(subprocess.CalledProcessError):
    """A command inside the machine failed; its message carries the command's output."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


@dataclass
class Machine:
    """A booted system instance. Commands run inside as root, or as a user (no PAM session: a user's manager
    runs because of lingering, as on a server)."""

    name: str
    venv: str = "/opt/pmsd-venv"
    command: str = "/opt/pmsd-venv/bin/pmsd"  # /usr/bin/pmsd once the package is installed
    apps: str = "/opt/pmsd-tests/apps"  # tests/apps, read-only

    def _harness(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", HARNESS, *args], capture_output=True, text=True, timeout=timeout)

    def run(self, *cmd: str, user: str | None = None, check: bool = True, timeout: float = 60,
            env: dict[str, str] | None = None, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `cmd` inside (a clean environment; cwd is the user's home unless given). The command is killed
        inside the machine after `timeout` seconds (exit status 124)."""
        args = ["exec", self.name, "--timeout", str(timeout)]
        if user:
            args += ["--user", user]
        if cwd:
            args += ["--cwd", cwd]
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        result = self._harness(*args, "--", *cmd, timeout=timeout + 30)
        if check and result.returncode != 0:
            raise MachineCommandFailed(result.returncode, list(cmd), result.stdout, result.stderr)
        return result

    def pmsd(self, *args: str, user: str | None = None, system: bool = False, check: bool = True,
             timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """The pmsd CLI of the venv, inside, as root or `user`; `system` adds --system."""
        scope = ("--system",) if system else ()
        return self.run(self.command, *scope, *args, user=user, check=check, timeout=timeout,
                        env={"NO_COLOR": "1", **(env or {})})

    def push(self, source: str, destination: str, timeout: float = 120) -> None:
        """Copy a host file into the machine (as root, through the harness's stdin)."""
        with open(source, "rb") as data:
            result = subprocess.run(["bash", HARNESS, "exec", self.name, "--", "sh", "-c", 'cat > "$0"', destination],
                                    stdin=data, capture_output=True, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(f"could not copy {source} to {destination}: {result.stderr.decode(errors='replace')}")

    def uid(self, user: str) -> int:
        return int(self.run("id", "-u", user).stdout)

    def add_user(self, name: str, linger: bool = True, timeout: float = 30) -> int:
        """Create `name` (idempotent) and, with `linger`, wait until their user manager runs. Returns the UID."""
        if self.run("id", "-u", name, check=False).returncode != 0:
            self.run("useradd", "--create-home", "--shell", "/bin/bash", name)
        uid = self.uid(name)
        if linger:
            self.run("loginctl", "enable-linger", name)
            self.wait_user_manager(name, timeout=timeout)
        return uid

    def wait_user_manager(self, user: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.run("systemctl", "--user", "is-system-running", user=user, check=False,
                             timeout=10).stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.1)
        raise AssertionError(f"the user manager of {user} is not running after {timeout} s (last: {state!r})")

    def reboot(self) -> None:
        """`systemctl reboot` inside; returns once the machine runs again (the overlay keeps its state)."""
        result = self._harness("reboot", self.name, timeout=180)
        if result.returncode != 0:
            raise AssertionError(f"reboot of {self.name} failed:\n{result.stderr}")

    def status(self) -> dict[str, str]:
        """What the harness recorded: launcher, nspawn and leader PIDs, boots, run_dir, venv, cgroup, alive."""
        result = self._harness("status", self.name, timeout=30)
        return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def _down_stale_machines() -> None:
    """Machines of earlier sessions whose pytest died before its teardown (named pytest-PID)."""
    try:
        names = os.listdir("/run/pmsd-test")
    except OSError:
        return
    for name in names:
        pid = name.removeprefix("pytest-").split("-")[0]
        if name.startswith("pytest-") and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            subprocess.run(["bash", HARNESS, "down", name], capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def booted(name: str, suite: str = "bookworm", install: str = "venv") -> Iterator[Machine]:
    """Boot machine `name` (Debian `suite`, pmsd from the venv or from nothing: `install="package"`), and power
    it off and remove all it left afterwards. Skips when this host cannot run nspawn at all."""
    _down_stale_machines()
    env = {**os.environ, "PMSD_TEST_SUITE": suite, "PMSD_TEST_INSTALL": install}
    up = subprocess.run(["bash", HARNESS, "up", name], capture_output=True, text=True, timeout=1200, env=env)
    if up.returncode == CANNOT_RUN:
        pytest.skip(f"no system instance: {up.stderr.strip()}")
    if up.returncode != 0:
        subprocess.run(["bash", HARNESS, "down", name], capture_output=True, text=True, timeout=120)
        pytest.fail(f"could not boot the system instance {name}:\n{up.stderr}")
    try:
        yield Machine(name)
    finally:
        down = subprocess.run(["bash", HARNESS, "down", name], capture_output=True, text=True, timeout=120)
        if down.returncode != 0:
            pytest.fail(f"could not bring the system instance {name} down:\n{down.stderr}")


@pytest.fixture(scope="session")
def machine() -> Iterator[Machine]:
    """A booted Debian 12 system instance for the session (built and cached on first use: a few minutes)."""
    with booted(f"pytest-{os.getpid()}") as booted_machine:
        yield booted_machine


@pytest.fixture
def token() -> str:
    """A short unique suffix, so apps of different tests never share a unit name."""
    return uuid.uuid4().hex[:6]
