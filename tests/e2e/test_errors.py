"""Bad input: a clear error, a non-zero exit, and nothing half-created."""

from __future__ import annotations

import os

import pytest

from tests.e2e.helpers import APPS, Pmsd, systemctl

pytestmark = pytest.mark.e2e
SLEEPER = os.path.join(APPS, "sleeper.py")


def _nothing_created(pmsd: Pmsd, token: str) -> None:
    assert pmsd.jlist() == []
    units = systemctl(pmsd.env, "list-units", "--all", "--plain", "--no-legend", f"pmsd-*{token}*").stdout
    assert units.strip() == ""


def test_missing_script(pmsd: Pmsd, token: str) -> None:
    result = pmsd.run("start", f"./missing-{token}.js", check=False)
    assert result.returncode == 2
    assert f"missing-{token}.js" in result.stderr and "not found" in result.stderr
    _nothing_created(pmsd, token)


def test_malformed_ecosystem_says_where(pmsd: Pmsd, token: str) -> None:
    path = os.path.join(pmsd.cwd, "ecosystem.json")
    with open(path, "w") as handle:
        # neither JSON nor JavaScript (PM2 evaluates a .json file that is not JSON)
        handle.write('{"apps": [\n  {"name": "x", "script": "a.js" "b"}\n]}\n')
    result = pmsd.run("start", path, check=False)
    assert result.returncode == 2
    assert "ecosystem.json:2:" in result.stderr
    _nothing_created(pmsd, token)


def test_wrong_type_names_file_app_and_key(pmsd: Pmsd, token: str) -> None:
    path = os.path.join(pmsd.cwd, "eco.yaml")
    with open(path, "w") as handle:
        handle.write(f"apps:\n  - name: good-{token}\n    script: {SLEEPER}\n"
                     f"  - name: bad-{token}\n    script: {SLEEPER}\n    max_restarts: lots\n")
    result = pmsd.run("start", path, check=False)
    assert result.returncode == 2
    assert "eco.yaml" in result.stderr and f"bad-{token}" in result.stderr and "max_restarts" in result.stderr
    _nothing_created(pmsd, token)  # the valid sibling was not started either


def test_unknown_target_and_bad_values(pmsd: Pmsd, token: str) -> None:
    assert pmsd.run("stop", f"nobody-{token}", check=False).returncode == 3
    assert pmsd.run("restart", "42", check=False).returncode == 3
    for args in (["--max-restarts", "-1"], ["--kill-timeout", "0"], ["--stop-exit-codes", "300"],
                 ["--name", "123"], ["--name", "all"]):
        result = pmsd.run("start", SLEEPER, "--name", f"v-{token}", *args, check=False)
        assert result.returncode == 2, (args, result.stderr)
        assert "[pmsd][ERROR]" in result.stderr and "Traceback" not in result.stderr
    _nothing_created(pmsd, token)


def test_user_option_needs_system_mode(pmsd: Pmsd, token: str) -> None:
    path = os.path.join(pmsd.cwd, "eco.json")
    with open(path, "w") as handle:
        handle.write(f'{{"name": "u-{token}", "script": "{SLEEPER}", "user": "nobody"}}')
    result = pmsd.run("start", path, check=False)
    assert result.returncode == 2 and "system manager" in result.stderr
    _nothing_created(pmsd, token)


def test_no_reachable_systemd_says_how_to_get_one(pmsd: Pmsd, token: str, tmp_path: str) -> None:
    nowhere = {"XDG_RUNTIME_DIR": str(tmp_path), "DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp_path}/bus"}
    result = pmsd.run("start", SLEEPER, "--name", f"lost-{token}", check=False, env=nowhere)
    assert result.returncode == 4
    assert "user manager" in result.stderr and "hint:" in result.stderr
    _nothing_created(pmsd, token)
    pmsd.run("start", SLEEPER, "--name", f"found-{token}")
    assert pmsd.run("ls", check=False, env=nowhere).returncode == 4
