"""god's smaller parts: its unit files, the counters file, the wire format (and its error statuses), and the
settings it enforces."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from pmsd.api import query
from pmsd.api.client import GodClient
from pmsd.api.godlink import GodConnection
from pmsd.context import Context
from pmsd.definition.god_unit import god_unit_text
from pmsd.definition.settings import parse_memory_bytes, parse_patterns, parse_watch
from pmsd.errors import ExitStatus, PmsdError
from pmsd.god import handlers, server
from pmsd.god.handlers import ApiHandlers
from pmsd.god.loop import Loop
from pmsd.god.server import ApiServer, Handler, peer_uid
from pmsd.model.counters import AppCounters, counters_for
from pmsd.model.events import Event
from pmsd.model.protocol import decode, encode, error_reply, error_status
from pmsd.model.record import AppRecord
from pmsd.model.status import ProcessInfo, Status, process_info
from pmsd.render.events import describe
from pmsd.state.counters import load_counters, save_counters
from pmsd.systemd.names import app_name_of_cron_unit, check_app_name, cron_service_unit, cron_timer_unit
from tests.unit.helpers import make_spec

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
    body: Mapping[str, object] = error_reply(4, "no", "try")["error"]
    assert body == {"message": "no", "hint": "try", "status": ExitStatus.ERROR}
    refused: Mapping[str, object] = error_reply(None, "no", status=ExitStatus.PERMISSION)["error"]
    assert refused == {"message": "no", "status": 5}  # no hint: none on the wire
    assert encode(error_reply(None, "no", status=ExitStatus.USAGE)) == \
        b'{"id":null,"error":{"message":"no","status":2}}\n'


@pytest.mark.parametrize(("body", "status"), [
    ({"message": "x", "status": 5}, ExitStatus.PERMISSION), ({"message": "x", "status": 2}, ExitStatus.USAGE),
    ({"message": "x"}, ExitStatus.ERROR),  # a god older than the status on the wire
    ({"message": "x", "status": 0}, ExitStatus.ERROR), ({"message": "x", "status": 99}, ExitStatus.ERROR),
    ({"message": "x", "status": "5"}, ExitStatus.ERROR), ({"message": "x", "status": True}, ExitStatus.ERROR),
])
def test_error_status_read_from_the_wire(body: Mapping[str, object], status: ExitStatus) -> None:
    assert error_status(body) == status


@pytest.fixture
def god_socket(tmp_path: Path) -> Iterator[tuple[str, Context]]:
    """god's API server and handlers on a socket of their own, served from a thread (no systemd needed:
    nothing here asks god for what it follows)."""
    path = str(tmp_path / "run" / "god.sock")
    ctx = Context(user=True, environ={"PMSD_GOD_SOCKET": path}, state_dir=str(tmp_path / "state"))
    with _serving(path, ApiHandlers(ctx, {}, {}, lambda: None)):
        yield path, ctx


@contextlib.contextmanager
def _serving(path: str, handler: Handler) -> Iterator[None]:
    """god's API server on `path`, its loop run by a thread (the loop's callbacks only: no god around it)."""
    loop = Loop()
    api = ApiServer(path, loop, handler)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            for key, mask in loop.selector.select(0.02):
                key.data(mask)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        api.close()


def _exchange(path: str, line: bytes | None) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(path)
        if line is not None:
            sock.sendall(line)
        with sock.makefile("rb") as reader:
            return decode(reader.readline())


def test_usage_errors_carry_their_status_on_the_wire(god_socket: tuple[str, Context]) -> None:
    path, _ = god_socket
    assert _exchange(path, b"[1]\n")["error"] == {
        "message": "not a JSON request: a message must be a JSON object", "status": ExitStatus.USAGE}
    unknown = _exchange(path, encode({"id": 7, "method": "launch"}))
    assert unknown == {"id": 7, "error": {"message": "unknown method 'launch'",
                                          "hint": "methods: ping, list, status, subscribe, reloadLogs, run",
                                          "status": ExitStatus.USAGE}}


def test_a_refused_peer_is_told_permission(god_socket: tuple[str, Context], monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = god_socket
    monkeypatch.setattr(server, "peer_uid", lambda _sock: os.getuid() + 1)
    refusal = _exchange(path, None)  # refused at accept time, before any request
    assert refusal["id"] is None
    assert refusal["error"] == {"message": f"uid {os.getuid() + 1} may not use this pmsd god (owner uid "
                                           f"{os.getuid()})", "status": ExitStatus.PERMISSION}


def test_the_client_exits_with_the_status_god_sent(god_socket: tuple[str, Context]) -> None:
    _, ctx = god_socket
    client = GodClient(ctx, timeout=5)
    try:
        with pytest.raises(PmsdError) as raised:
            client.request("launch")
    finally:
        client.close()
    assert raised.value.status == ExitStatus.USAGE
    assert raised.value.message == "god: unknown method 'launch'"
    assert raised.value.hint == "methods: ping, list, status, subscribe, reloadLogs, run"


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
    assert cron_timer_unit("my api") == "pmsd.cron-my\\x20api.timer"
    assert cron_service_unit("web") == "pmsd.cron-web.service"
    assert app_name_of_cron_unit("pmsd.cron-my\\x20api.timer") == "my api"
    assert app_name_of_cron_unit("pmsd-web.service") is None


def test_god_is_a_reserved_app_name() -> None:
    from pmsd.errors import UsageError

    with pytest.raises(UsageError, match=r"pmsd-god\.service"):
        check_app_name("god")


def test_ls_takes_gods_answer_and_asks_systemd_only_for_what_god_lacks(god_socket: tuple[str, Context],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """pmsd.api.query: god's "status" (one round trip) for the apps it follows; systemd for the others, or for
    all of them when god serves another registry."""
    _, ctx = god_socket
    first, second = AppRecord(0, make_spec(name="a"), 1), AppRecord(1, make_spec(name="b"), 1)
    with ctx.registry.transaction() as data:
        data.apps += [first, second]
    online = replace(process_info(first, None), status=Status.ONLINE, pid=4242, memory_bytes=7)
    monkeypatch.setattr(handlers, "current_units", lambda *_args: {})
    monkeypatch.setattr(handlers, "live_processes", lambda *_args: [online])
    asked: list[list[str]] = []

    def ask_systemd(_ctx: Context, records: list[AppRecord], _counters: object) -> list[ProcessInfo]:
        asked.append([record.name for record in records])
        return [process_info(record, None) for record in records]

    monkeypatch.setattr(query, "_ask_systemd", ask_systemd)
    infos = query.list_processes(ctx)
    assert [(i.name, i.status, i.pid, i.memory_bytes) for i in infos] == [("a", Status.ONLINE, 4242, 7),
                                                                          ("b", Status.STOPPED, 0, 0)]
    assert asked == [["b"]]
    elsewhere = Context(user=True, environ=ctx.environ, state_dir=ctx.state_dir + "-other")
    with elsewhere.registry.transaction() as data:
        data.apps += [first]
    assert [i.status for i in query.list_processes(elsewhere)] == [Status.STOPPED]  # not god's registry
    assert asked[-1] == ["a"]


def test_a_listing_command_god_forks_takes_the_state_god_handed_over_once(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """pmsd.api.query.hand_over: god works out every app's state before it forks `pmsd ls`; the command's first
    listing takes it, paired with its own records, without asking god; an app added since is asked of systemd;
    a later listing, or one of another registry, asks as usual."""
    ctx = Context(user=True, environ={"PMSD_NO_GOD": "", "XDG_RUNTIME_DIR": str(tmp_path)},
                  state_dir=str(tmp_path / "state"))
    first, second = AppRecord(0, make_spec(name="a"), 1), AppRecord(1, make_spec(name="b"), 1)
    with ctx.registry.transaction() as data:
        data.apps += [first, second]
    online = replace(process_info(first, None), status=Status.ONLINE, pid=4242, memory_bytes=7)
    asked: list[list[str]] = []

    def ask_systemd(_ctx: Context, records: list[AppRecord], _counters: object) -> list[ProcessInfo]:
        asked.append([record.name for record in records])
        return [process_info(record, None) for record in records]

    monkeypatch.setattr(query, "_ask_systemd", ask_systemd)
    monkeypatch.setattr(query, "ask_god", lambda *_args: pytest.fail("god was asked over its socket"))
    query.hand_over(ctx.state_dir, [online])
    infos = query.list_processes(ctx)
    assert [(i.name, i.status, i.pid, i.memory_bytes) for i in infos] == [("a", Status.ONLINE, 4242, 7),
                                                                          ("b", Status.STOPPED, 0, 0)]
    assert infos[0].record is not first and infos[0].record.name == "a"  # the command's own record
    assert asked == [["b"]]
    monkeypatch.setattr(query, "ask_god", lambda *_args: None)  # god is not there
    assert [i.status for i in query.list_processes(ctx)] == [Status.STOPPED, Status.STOPPED]  # taken once
    query.hand_over(ctx.state_dir + "-other", [online])
    assert query.list_processes(ctx)[0].status == Status.STOPPED  # another registry's state
    query.hand_over(ctx.state_dir, [online])
    query.take_back()
    assert query.list_processes(ctx)[0].status == Status.STOPPED


def test_god_hands_a_listing_command_the_state_and_keeps_none_after_the_fork(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = Context(user=True, environ={"XDG_RUNTIME_DIR": str(tmp_path)}, state_dir=str(tmp_path / "state"))
    api = ApiHandlers(ctx, {}, {}, lambda: None)
    online = replace(process_info(AppRecord(0, make_spec(name="a"), 1), None), status=Status.ONLINE)
    monkeypatch.setattr(api, "live", lambda: [online])
    api._prepare_listing(["start", "app.js"])
    assert query._HANDED_OVER is None
    api._prepare_listing(["jlist"])
    handed = query._HANDED_OVER
    assert handed == (ctx.state_dir, [online])
    query.take_back()

    def broken() -> list[ProcessInfo]:
        raise PmsdError("systemd does not answer")

    monkeypatch.setattr(api, "live", broken)
    api._prepare_listing(["ls"])
    assert query._HANDED_OVER is None  # the command asks itself, and says what is wrong


def test_a_reply_larger_than_the_socket_buffer_arrives_whole_and_at_once(tmp_path: Path) -> None:
    """Regression (issue 17, 1,000 apps): the rest of a reply the socket could not take at once waited for the
    next message god sent; `ls` got it a socket buffer per watchdog tick, ~10 s, and timed out."""
    path = str(tmp_path / "god.sock")
    big = "x" * (3 << 20)
    with _serving(path, lambda _connection, request: {"id": request.get("id"), "result": big}):
        connection = GodConnection(path, timeout=5)
        started = time.monotonic()
        assert connection.request("status") == big
        assert time.monotonic() - started < 2
        connection.close()
