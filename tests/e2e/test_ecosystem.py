"""Every ecosystem format, --env and --only, against the real user manager."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from tests.e2e.helpers import APPS, Pmsd, markers, wait_for
from tests.e2e.test_cluster import needs_node

pytestmark = pytest.mark.e2e
SLEEPER = os.path.join(APPS, "sleeper.py")


def _write(directory: str, filename: str, text: str) -> str:
    path = os.path.join(directory, filename)
    with open(path, "w") as handle:
        handle.write(textwrap.dedent(text))
    return path


def _ecosystem(fmt: str, directory: str, name: str, marker_dir: str) -> str:
    if fmt == "json":
        return _write(directory, "ecosystem.json", json.dumps({"apps": [{
            "name": name, "script": SLEEPER, "env": {"MARKER_DIR": marker_dir, "STAGE": "dev"},
            "env_production": {"STAGE": "prod"}, "max_restarts": 5}]}))
    if fmt == "yaml":
        return _write(directory, "ecosystem.yaml", f"""
            apps:
              - name: {name}
                script: {SLEEPER}
                env: {{MARKER_DIR: {marker_dir}, STAGE: dev}}
                env_production: {{STAGE: prod}}
            """)
    if fmt == "toml":
        return _write(directory, "ecosystem.toml", f"""
            [[apps]]
            name = "{name}"
            script = "{SLEEPER}"
            env = {{ MARKER_DIR = "{marker_dir}", STAGE = "dev" }}
            env_production = {{ STAGE = "prod" }}
            """)
    return _write(directory, "ecosystem.config.js", f"""
        module.exports = {{
          apps: [{{
            name: {json.dumps(name)},
            script: {json.dumps(SLEEPER)},
            env: {{ MARKER_DIR: {json.dumps(marker_dir)}, STAGE: "dev" }},
            env_production: {{ STAGE: "prod" }},
          }}],
        }};
        """)


@pytest.mark.parametrize("fmt", ["json", "yaml", "toml", pytest.param("js", marks=needs_node)])
def test_every_format_starts_its_apps_with_env(pmsd: Pmsd, token: str, marker_dir: str, fmt: str) -> None:
    name = f"eco-{fmt}-{token}"
    path = _ecosystem(fmt, pmsd.cwd, name, marker_dir)
    pmsd.run("start", path, "--env", "production")
    started = wait_for(lambda: markers(marker_dir), 10, "the app's start marker")[0]
    assert started["env"]["STAGE"] == "prod"
    assert pmsd.status(name) == "online"
    # Starting the file again restarts the apps it declares, with the file's definition (PM2 does too).
    pmsd.run("start", path)
    proc = pmsd.app(name)
    assert proc["pm2_env"]["restart_time"] == 1
    latest = wait_for(lambda: [m for m in markers(marker_dir) if m["pid"] == proc["pid"]], 10, "restart")[0]
    assert latest["env"]["STAGE"] == "dev"


def test_only_and_relative_scripts(pmsd: Pmsd, token: str) -> None:
    os.symlink(SLEEPER, os.path.join(pmsd.cwd, "app.py"))
    path = _write(pmsd.cwd, "apps.json", json.dumps([
        {"name": f"one-{token}", "script": "app.py", "namespace": "eco"},
        {"name": f"two-{token}", "script": "./app.py", "namespace": "eco", "unknown_key": 1},
    ]))
    result = pmsd.run("start", path, "--only", f"two-{token}")
    assert "unknown_key" in result.stderr  # a warning naming the unknown key
    assert [p["name"] for p in pmsd.jlist()] == [f"two-{token}"]
    assert pmsd.app(f"two-{token}")["pm2_env"]["pm_cwd"] == pmsd.cwd
