"""god's smaller parts: its unit files, the counters file, the wire format, and the settings it enforces."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from pmsd.definition.god_unit import god_unit_text
from pmsd.definition.settings import parse_memory_bytes, parse_patterns, parse_watch
from pmsd.god.server import peer_uid
from pmsd.model.counters import AppCounters, counters_for
from pmsd.model.events import Event
from pmsd.model.protocol import decode, encode, error_reply
from pmsd.render.events import describe
from pmsd.state.counters import load_counters, save_counters
from pmsd.systemd.names import app_name_of_cron_unit, check_app_name, cron_service_unit, cron_timer_unit

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("scope", ["user", "system"])
def test_shipped_unit_files_are_what_pmsd_renders(scope: str) -> None:
    shipped = (REPO / "units" / scope / "pmsd-god.service").read_text()
    assert shipped == god_unit_text(scope == "user", "/usr/bin/pmsd-god")


def test_god_unit_is_notify_with_watchdog_and_restart() -> None:
    text = god_unit_text(True, "/usr/bin/pmsd-god")
    for line in ("Type=notify", "WatchdogSec=10s", "Restart=always", "RuntimeDirectory=pmsd",
                 "ExecStart=/usr/bin/pmsd-god --user", "WantedBy=default.target"):
        assert line in text.splitlines()
    assert "WantedBy=multi-user.target" in god_unit_text(False, "/x").splitlines()


def test_counters_round_trip_and_ignore_damage(tmp_path: Path) -> None:
    save_counters(str(tmp_path), {2: AppCounters(created_at=5, restarts=3, unstable=1, last_exit_usec=9)})
    loaded = load_counters(str(tmp_path))
    assert loaded[2] == AppCounters(created_at=5, restarts=3, unstable=1, last_exit_usec=9)
    assert oct(os.stat(tmp_path / "god-counters.json").st_mode & 0o777) == "0o600"
    assert counters_for(loaded, 2, 5) is loaded[2]
    assert counters_for(loaded, 2, 6) is None  # a reused id does not inherit counts
    (tmp_path / "god-counters.json").write_text("{not json")
    assert load_counters(str(tmp_path)) == {}


def test_wire_format() -> None:
    line = encode({"id": 1, "method": "ping"})
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    assert decode(line) == {"id": 1, "method": "ping"}
    with pytest.raises(ValueError):
        decode(b"[1]")
    assert error_reply(4, "no", "try")["error"] == {"message": "no", "hint": "try"}


def test_events_round_trip_and_read_like_pm2() -> None:
    event = Event("exit", "api", 0, 1_700_000_000_123, {"code": 1, "signal": None, "uptime_ms": 42})
    assert Event.from_json(event.to_json()) == event
    assert "App [api:0] exited with code [1] after 42 ms" in describe(event)
    killed = Event("exit", "api", 0, 1, {"code": None, "signal": "SIGKILL", "uptime_ms": 1})
    assert "via signal [SIGKILL]" not in describe(killed) and "signal [SIGKILL]" in describe(killed)


def test_peer_uid_is_the_connecting_process() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert peer_uid(left) == os.getuid()


@pytest.mark.parametrize(("value", "expected"), [
    (1024, 1024), ("300K", 300 * 1024), ("150M", 150 * 1024**2), ("1G", 1024**3), ("1.5G", int(1.5 * 1024**3)),
    ("200mb", 200 * 1024**2),
])
def test_memory_sizes_as_pm2_reads_them(value: object, expected: int) -> None:
    assert parse_memory_bytes(value) == expected


@pytest.mark.parametrize("value", ["lots", "-5M", 0, True, "12T"])
def test_bad_memory_sizes(value: object) -> None:
    with pytest.raises(ValueError):
        parse_memory_bytes(value)


def test_watch_values() -> None:
    assert parse_watch(True) == (".",)
    assert parse_watch(False) == ()
    assert parse_watch("src") == ("src",)
    assert parse_watch(["src", "lib"]) == ("src", "lib")
    assert parse_watch("true") == (".",)
    assert parse_patterns("*.log") == ("*.log",)
    with pytest.raises(ValueError):
        parse_watch(3)


def test_cron_units_cannot_clash_with_app_units() -> None:
    assert cron_timer_unit("my api") == "pmsd.definition.cron-my\\x20api.timer"
    assert cron_service_unit("web") == "pmsd.definition.cron-web.service"
    assert app_name_of_cron_unit("pmsd.definition.cron-my\\x20api.timer") == "my api"
    assert app_name_of_cron_unit("pmsd-web.service") is None


def test_god_is_a_reserved_app_name() -> None:
    from pmsd.errors import UsageError

    with pytest.raises(UsageError, match=r"pmsd-god\.service"):
        check_app_name("god")
