from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.helpers import Pmsd, forget_god_unit_file, god_unit_file, systemctl

GOD = "pmsd-god.service"


def _pmsd_units(env: dict[str, str]) -> set[str]:
    # Also the slices systemd makes for templates' instances (app-<prefix>.slice), which outlive them.
    listing = systemctl(env, "list-units", "--all", "--plain", "--no-legend", "pmsd-*", "pmsd.*", "app-pmsd*",
                        "*uvtest*").stdout
    return {line.split()[0] for line in listing.splitlines() if line.strip()}


@pytest.fixture(scope="session", autouse=True)
def leaves_no_unit_behind(user_manager: dict[str, str]) -> Iterator[None]:
    """The suite's own promise (issue 11 item 8): every unit a test created is gone when the tests end. god may
    still run (tests start it on purpose); nothing else of pmsd's may stay loaded, failed or not."""
    before = _pmsd_units(user_manager)
    yield
    left = _pmsd_units(user_manager) - before - {"pmsd-god.service"}
    assert not left, f"the tests left these units in the user manager: {sorted(left)}"


@pytest.fixture
def pmsd(user_manager: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pmsd]:
    """A pmsd CLI with its own registry; every app it created is deleted afterwards."""
    state = tmp_path_factory.mktemp("state")
    work = tmp_path_factory.mktemp("work")
    # PMSD_NO_GOD: these tests are about what systemd does alone; god (one per manager, serving one
    # registry) has its own tests in test_god.py.
    env = {**os.environ, **user_manager, "XDG_STATE_HOME": str(state), "NO_COLOR": "1", "PMSD_NO_GOD": "1"}
    env.pop("PMSD_DEBUG", None)
    env.pop("PMSD_STATE_DIR", None)
    cli = Pmsd(env=env, cwd=str(work))
    yield cli
    cli.run("delete", "all", check=False)


@pytest.fixture
def token() -> str:
    """A short unique suffix, so apps of different tests never share a unit name."""
    return uuid.uuid4().hex[:6]


@pytest.fixture
def marker_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("markers"))


@pytest.fixture
def god(user_manager: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pmsd]:
    """A pmsd CLI whose registry is the one god serves: god is one per manager, so it is (re)started with
    this test's state directory (PMSD_STATE_DIR in the manager's environment), and `pmsd kill`ed after."""
    state = tmp_path_factory.mktemp("godstate")
    work = tmp_path_factory.mktemp("godwork")
    env = {**os.environ, **user_manager, "PMSD_STATE_DIR": str(state), "NO_COLOR": "1"}
    for key in ("PMSD_DEBUG", "PMSD_NO_GOD", "XDG_STATE_HOME"):
        env.pop(key, None)
    systemctl(env, "set-environment", f"PMSD_STATE_DIR={state}", "PMSD_MEMORY_INTERVAL_MS=200")
    systemctl(env, "stop", GOD)
    unit_file_existed = os.path.exists(god_unit_file(env))
    cli = Pmsd(env=env, cwd=str(work))
    cli.run("ping")
    yield cli
    cli.run("kill", check=False)
    systemctl(env, "unset-environment", "PMSD_STATE_DIR", "PMSD_MEMORY_INTERVAL_MS")
    forget_god_unit_file(env, unit_file_existed)
