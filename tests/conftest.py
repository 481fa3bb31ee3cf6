"""Shared fixtures. End-to-end tests run against a real systemd user manager: on a machine whose PID 1 is
not systemd, tests/harness/systemd-user.sh brings one up (idempotently) for the session."""

from __future__ import annotations

import os
import subprocess

import pytest

HARNESS = os.path.join(os.path.dirname(__file__), "harness", "systemd-user.sh")


@pytest.fixture(scope="session")
def user_manager() -> dict[str, str]:
    """Environment for clients of the user manager, bringing the manager up if needed."""
    result = subprocess.run(["bash", HARNESS, "up"], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        pytest.fail(f"could not bring up a systemd user manager:\n{result.stderr}")
    env: dict[str, str] = {}
    for line in result.stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value
    return env
