from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.helpers import Pmsd


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
