"""god runs from the environment pmsd was installed in (issue 11 item 4): a venv's `python` is a symlink to the
base interpreter, where pmsd is not installed; god's unit must run the venv's own `python`."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.e2e.helpers import APPS, forget_god_unit_file, god_unit_file, systemctl, wait_for

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLEEPER = os.path.join(APPS, "sleeper.py")
BASE_PYTHON = "/usr/bin/python3"  # Debian's interpreter: pmsd is not installed for it


def _has_no_pmsd(python: str) -> bool:
    return subprocess.run([python, "-c", "import pmsd"], capture_output=True, timeout=30, cwd="/").returncode != 0


@pytest.fixture
def venv(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A venv of BASE_PYTHON where pmsd (this tree) and its dependencies are importable, and only there."""
    if not os.path.exists(BASE_PYTHON) or not _has_no_pmsd(BASE_PYTHON):
        pytest.skip(f"needs {BASE_PYTHON} without pmsd installed")
    path = str(tmp_path_factory.mktemp("venv"))
    subprocess.run([BASE_PYTHON, "-m", "venv", "--without-pip", path], check=True, timeout=60)
    version = subprocess.run([os.path.join(path, "bin", "python"), "-c",
                              "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                             capture_output=True, text=True, check=True).stdout.strip()
    packages = os.path.join(path, "lib", f"python{version}", "site-packages")
    with open(os.path.join(packages, "pmsd-test.pth"), "w") as handle:
        handle.write(f"{ROOT}\n{site.getsitepackages()[0]}\n")
    assert os.path.islink(os.path.join(path, "bin", "python"))
    return path


@pytest.fixture
def god_env(user_manager: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    env = {**os.environ, **user_manager, "PMSD_STATE_DIR": str(tmp_path_factory.mktemp("state")), "NO_COLOR": "1"}
    env.pop("PMSD_NO_GOD", None)
    unit_file_existed = os.path.exists(god_unit_file(env))
    yield env
    systemctl(env, "stop", "pmsd-god.service")
    systemctl(env, "reset-failed", "pmsd-god.service")
    forget_god_unit_file(env, unit_file_existed)


def test_god_runs_from_a_venv(venv: str, god_env: dict[str, str]) -> None:
    systemctl(god_env, "stop", "pmsd-god.service")
    python = os.path.join(venv, "bin", "python")
    result = subprocess.run([python, "-m", "pmsd", "ping"], capture_output=True, text=True, env=god_env,
                            timeout=60, cwd=venv)
    assert result.returncode == 0, result.stderr
    assert "{ msg: 'pong' }" in result.stdout
    exec_start = systemctl(god_env, "show", "-p", "ExecStart", "--value", "pmsd-god.service").stdout
    assert f"path={python} " in exec_start, exec_start
    shutil.rmtree(venv)  # the unit now names a python that is gone: the next pmsd rewrites it


def test_a_god_that_cannot_start_is_reported_and_kill_leaves_nothing(god_env: dict[str, str], tmp_path: str) -> None:
    """god's interpreter cannot start (PYTHONHOME points nowhere): `start` says so at once with systemd's reason
    and the app still starts; `kill` leaves no failed god behind (issue 11 items 4 and 8)."""
    systemctl(god_env, "stop", "pmsd-god.service")
    systemctl(god_env, "set-environment", "PYTHONHOME=/nonexistent")
    try:
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "pmsd", "start", SLEEPER, "--name", "godless"],
                                capture_output=True, text=True, env=god_env, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "[pmsd][WARN] pmsd's god daemon cannot start: exited with status 1 (exit-code); apps run " \
               "without it" in result.stderr, result.stderr
        assert time.monotonic() - started < 5
        wait_for(lambda: systemctl(god_env, "is-failed", "pmsd-god.service").stdout.strip() == "failed", 30,
                 "god to give up (start limit)")
    finally:
        systemctl(god_env, "unset-environment", "PYTHONHOME")
    result = subprocess.run([sys.executable, "-m", "pmsd", "kill"], capture_output=True, text=True, env=god_env,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert systemctl(god_env, "is-failed", "pmsd-god.service").stdout.strip() != "failed"
    assert "pmsd-godless" not in systemctl(god_env, "list-units", "--all", "--plain", "pmsd-*").stdout
