"""Fixtures for the pure unit tests: nothing here talks to systemd."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from pmsd.model.spec import Source
from tests.unit.cli_harness import Env, make_env

# No example database: runs do not depend on earlier ones. (Hypothesis still caches constants in
# .hypothesis/, which it git-ignores itself.)
settings.register_profile("pmsd-unit", database=None)
settings.load_profile("pmsd-unit")


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A directory holding one script per interpreter pmsd picks by extension, plus an executable tool."""
    directory = tmp_path / "app"
    directory.mkdir()
    (directory / "main.py").write_text("print('hi')\n")
    (directory / "run.sh").write_text("echo hi\n")
    (directory / "server.js").write_text("console.log('hi')\n")
    (directory / "data.txt").write_text("not a program\n")
    tool = directory / "tool"
    tool.write_text("#!/bin/sh\necho hi\n")
    os.chmod(tool, 0o755)
    return directory


@pytest.fixture
def source(app_dir: Path) -> Source:
    return Source("ecosystem.config.json", str(app_dir))


@pytest.fixture(autouse=True)
def fixed_node_preload(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Node preload's real path depends on where pmsd is checked out; rendered units must not."""
    import pmsd.definition.settings

    monkeypatch.setattr(pmsd.definition.settings, "NODE_PRELOAD", "/usr/lib/python3/dist-packages/pmsd/preload/node.js")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    """An isolated, systemd-free environment for running the CLI in-process (tests/unit/cli_harness.py)."""
    return make_env(tmp_path, monkeypatch)


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A directory the user nobody owns and can reach (pytest's tmp_path is under a 0700 directory)."""
    top = Path(tempfile.mkdtemp(prefix="pmsd-asuser-", dir="/tmp"))
    top.chmod(0o755)
    home = top / "nobody"
    nobody = pwd.getpwnam("nobody")
    home.mkdir()
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    yield home
    shutil.rmtree(top)
