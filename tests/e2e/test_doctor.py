"""`pmsd doctor` against the real user manager (issue 18). The host decides much of what it finds (lingering,
cgroups, journald, the clock), so these tests check the shape and what the test itself controls: every check
named, the exit status following the failures, and a cluster app's port told apart from a stranger's."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from pmsd.api.doctor import CHECKS
from tests.e2e.helpers import APPS, Pmsd, wait_for

pytestmark = pytest.mark.e2e
PY_APP = os.path.join(APPS, "listen_fds.py")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def doctor_json(pmsd: Pmsd) -> tuple[int, dict[str, Any]]:
    result = pmsd.run("doctor", "--json", check=False)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def by_check(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {finding["check"]: finding for finding in report["findings"]}


def test_doctor_names_every_check_and_fails_only_on_a_failure(pmsd: Pmsd) -> None:
    result = pmsd.run("doctor", check=False)
    assert result.returncode in (0, 1), result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "pmsd doctor: the systemd user manager and this host"
    for check in CHECKS:
        assert any(re.match(rf"(OK|WARN|FAIL) +{re.escape(check)} +\S", line) for line in lines), check
    assert re.fullmatch(r"\d+ failures?, \d+ warnings? in 9 checks", lines[-1]), lines[-1]
    failed = any(line.startswith("FAIL") for line in lines)
    assert result.returncode == (1 if failed else 0), result.stdout
    assert "\x1b[" not in result.stdout  # NO_COLOR, and not a terminal


def test_doctor_json(pmsd: Pmsd) -> None:
    status, report = doctor_json(pmsd)
    assert report["scope"] == "user"
    assert [finding["check"] for finding in report["findings"]] == list(CHECKS)
    levels = {finding["level"] for finding in report["findings"]}
    assert levels <= {"ok", "warn", "fail"}
    assert report["status"] == ("fail" if "fail" in levels else "warn" if "warn" in levels else "ok")
    assert status == (1 if "fail" in levels else 0)
    findings = by_check(report)
    assert findings["manager"]["level"] == "ok", findings["manager"]  # the suite runs against a live manager
    assert findings["systemd"]["found"].startswith("systemd ")
    assert findings["god"]["level"] == "warn"  # the `pmsd` fixture sets PMSD_NO_GOD=1
    assert findings["god"]["found"] == "disabled by PMSD_NO_GOD in this environment"
    assert findings["ports"]["found"] == "no cluster app has a port to check"


def test_doctor_with_god_running(god: Pmsd) -> None:
    _, report = doctor_json(god)
    finding = by_check(report)["god"]
    assert finding["level"] == "ok", finding
    assert finding["found"].startswith("running, pid ")


@contextlib.contextmanager
def stranger_on(port: int) -> Iterator[socket.socket]:
    """A listening socket of this test process (not pmsd's) on 127.0.0.1:port, once the port is free."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def bound() -> bool:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True

    try:
        wait_for(bound, 10, f"127.0.0.1:{port} to be free after the app stopped")
        sock.listen()
        yield sock
    finally:
        sock.close()


def test_doctor_tells_a_cluster_apps_socket_from_a_stranger(pmsd: Pmsd, token: str) -> None:
    name, port = f"doc-{token}", free_port()
    address = f"127.0.0.1:{port}"
    pmsd.run("start", PY_APP, "--name", name, "-i", "2", "--port", address, "--interpreter", sys.executable)
    pmsd.wait_status(name, "online")
    _, report = doctor_json(pmsd)
    ports = by_check(report)["ports"]
    assert ports["level"] == "ok", ports  # held by the manager and the instances: pmsd's own
    assert f"{name} {address}" in ports["found"]
    pmsd.run("stop", name)  # the socket unit goes with the last instance, and the port is free
    with stranger_on(port):
        status, report = doctor_json(pmsd)
        ports = by_check(report)["ports"]
        assert ports["level"] == "fail", ports
        assert ports["found"].startswith(f"{name} ({address}): {address} is held by pid {os.getpid()} (")
        assert f"sport = :{port}" in ports["fix"]
        assert status == 1
