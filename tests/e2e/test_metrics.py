"""Prometheus metrics against the real user manager (issue 18): `pmsd metrics` names every app and instance
with figures read from systemd and /proc, and god serves the same series over HTTP when metrics_listen asks
(its Unix socket, then a loopback port), and stops when it is unset."""

from __future__ import annotations

import http.client
import os
import socket
import time

import pytest

from pmsd.state.paths import metrics_socket_path
from tests.e2e.helpers import APPS, Pmsd, wait_for
from tests.unit.exposition import Series, UnixHTTPConnection, parse_exposition, values

pytestmark = pytest.mark.e2e
SLEEPER = os.path.join(APPS, "sleeper.py")


def _start_two_apps(god: Pmsd, token: str) -> tuple[str, str]:
    """One fork app and one of two instances, all online."""
    single, double = f"met-{token}", f"met2-{token}"
    god.run("start", SLEEPER, "--name", single)
    god.run("start", SLEEPER, "--name", double, "-i", "2")

    def all_online() -> bool | None:
        statuses = [proc["pm2_env"]["status"] for proc in god.jlist() if proc["name"] in (single, double)]
        return True if statuses == ["online"] * 3 else None

    wait_for(all_online, 15, "the three processes to be online", describe=lambda: god.run("ls").stdout)
    return single, double


def _by_app(series: dict[Series, float], name: str) -> dict[tuple[str, str], float]:
    """One metric's values by (app name, app_instance)."""
    return {(dict(labels)["name"], dict(labels)["app_instance"]): value
            for labels, value in values(series, name).items()}


def test_pmsd_metrics_has_every_app_and_instance(god: Pmsd, token: str) -> None:
    single, double = _start_two_apps(god, token)
    series = parse_exposition(god.run("metrics").stdout)
    assert series[("pmsd_up", frozenset())] == 1
    assert series[("pmsd_god_up", frozenset())] == 1
    assert series[("pmsd_apps", frozenset())] == 3
    ours = {(single, ""), (double, "0"), (double, "1")}
    current = [dict(labels) for labels, value in values(series, "pmsd_app_status").items() if value == 1]
    assert sorted((labels["name"], labels["app_instance"], labels["state"]) for labels in current) == sorted(
        (name, instance, "online") for name, instance in ours)
    memory = _by_app(series, "pmsd_app_memory_bytes")
    assert set(memory) == ours and all(value > 1 << 20 for value in memory.values())  # a Python interpreter's
    assert set(_by_app(series, "pmsd_app_cpu_seconds_total")) == ours
    started = _by_app(series, "pmsd_app_start_time_seconds")
    assert set(started) == ours and all(time.time() - 120 < value <= time.time() for value in started.values())
    fds = _by_app(series, "pmsd_app_open_fds")
    assert set(fds) == ours and all(value >= 3 for value in fds.values())
    assert set(_by_app(series, "pmsd_app_restarts_total").values()) == {0}
    units = {dict(labels)["unit"] for labels in values(series, "pmsd_app_restarts_total")}
    assert {f"pmsd-{single}.service", f"pmsd-{double}@0.service", f"pmsd-{double}@1.service"} <= units


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get_unix(path: str, target: str = "/metrics") -> tuple[int, str, str]:
    connection = UnixHTTPConnection(path, timeout=10)
    try:
        connection.request("GET", target)
        answer = connection.getresponse()
        return answer.status, answer.getheader("Content-Type") or "", answer.read().decode()
    finally:
        connection.close()


def _get_tcp(port: int) -> str | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        answer = connection.getresponse()
        return answer.read().decode() if answer.status == 200 else None
    except OSError:
        return None
    finally:
        connection.close()


def test_god_serves_the_same_series_over_http_when_asked(god: Pmsd, token: str) -> None:
    _start_two_apps(god, token)
    path = metrics_socket_path(True, god.env)
    assert not os.path.exists(path)  # off by default
    port = _free_port()
    god.run("set", "metrics_listen", "unix")
    try:
        wait_for(lambda: os.path.exists(path) or None, 10, f"god to listen on {path}")
        status, content_type, body = _get_unix(path)
        assert (status, content_type) == (200, "text/plain; version=0.0.4; charset=utf-8")
        over_http = parse_exposition(body)
        printed = parse_exposition(god.run("metrics").stdout)
        assert set(over_http) == set(printed)  # the same series; CPU and memory move between the two reads
        assert _get_unix(path, "/")[0] == 404
        assert os.stat(path).st_mode & 0o777 == 0o600

        god.run("set", "metrics_listen", f"127.0.0.1:{port}")
        text = wait_for(lambda: _get_tcp(port), 10, f"god to serve metrics on 127.0.0.1:{port}")
        assert set(parse_exposition(text)) == set(printed)
        assert not os.path.exists(path)  # moved: the Unix socket is gone
    finally:
        god.run("unset", "metrics_listen")
    wait_for(lambda: (_get_tcp(port) is None and not os.path.exists(path)) or None, 10,
             "god to stop serving metrics")
    assert "metrics_listen: \"\"" in god.run("get", "metrics_listen").stdout
