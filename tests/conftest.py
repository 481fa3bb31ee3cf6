"""Shared fixtures. End-to-end tests run against a real systemd user manager: on a machine whose PID 1 is
not systemd, tests/harness/systemd-user.sh brings one up (idempotently) for the session."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

HARNESS = os.path.join(os.path.dirname(__file__), "harness", "systemd-user.sh")


@pytest.fixture(scope="session")
def user_manager() -> Iterator[dict[str, str]]:
    """Environment for clients of the user manager, bringing the manager up if needed. A god unit file that
    pmsd wrote into the manager's runtime directory during the session (any test that let god start) is
    removed at the end, with god: the tests leave no file behind."""
    result = subprocess.run(["bash", HARNESS, "up"], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        pytest.fail(f"could not bring up a systemd user manager:\n{result.stderr}")
    env: dict[str, str] = {}
    for line in result.stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value
    god_unit = os.path.join(env.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}"), "systemd", "user",
                            "pmsd-god.service")
    existed = os.path.exists(god_unit)
    yield env
    if not existed and os.path.exists(god_unit):
        client = {**os.environ, **env}
        subprocess.run(["systemctl", "--user", "stop", "pmsd-god.service"], env=client, capture_output=True,
                       timeout=60)
        os.unlink(god_unit)
        subprocess.run(["systemctl", "--user", "daemon-reload"], env=client, capture_output=True, timeout=60)
