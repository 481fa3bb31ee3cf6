"""Prometheus metrics (issue 18): the text pmsd.render.metrics writes, read back by Prometheus' format rules,
prometheus_client's parser and (where installed) promtool; god's HTTP responder on its own loop; the
metrics_listen setting."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from pmsd.api.metrics import Scrape, scrape_of
from pmsd.context import Context
from pmsd.definition.config import parse_config_value
from pmsd.errors import ExitStatus, PmsdError, UsageError
from pmsd.god import metrics_http
from pmsd.god.handlers import ApiHandlers
from pmsd.god.loop import Loop
from pmsd.god.metrics_http import MetricsListener
from pmsd.linux.procfs import unit_open_fds
from pmsd.model.record import AppRecord
from pmsd.model.status import RUNTIME_FIELDS, ProcessInfo, Status, info_from_row, runtime_row
from pmsd.render.metrics import render_metrics
from pmsd.systemd.bus import Manager
from tests.unit.cli_harness import Env, run
from tests.unit.exposition import Series, UnixHTTPConnection, parse_exposition, values
from tests.unit.helpers import make_record
from tests.unit.test_cli_pm2 import fake_manager, seed

STARTED_MS = 1_700_000_000_500


def _info(record: AppRecord, status: Status = Status.ONLINE, **fields: Any) -> ProcessInfo:
    running = status is Status.ONLINE
    base: dict[str, Any] = {
        "unit": record.unit, "status": status, "pid": 4242 if running else 0, "restart_time": 3,
        "unstable_restarts": 1, "uptime_since_ms": STARTED_MS if running else 0,
        "memory_bytes": 12 << 20 if running else 0, "cpu_percent": 1.5 if running else 0.0,
        "exit_code": None if running else 1, "invocation_id": "", "control_group": "",
        "cpu_seconds": 2.25 if running else None}
    return ProcessInfo(record=record, **{**base, **fields})


def _cluster_record(pm_id: int, instance: int) -> AppRecord:
    record = make_record(pm_id=pm_id, name="web", namespace="shop", instances=2)
    record.instance = instance
    return record


GOLDEN = """\
# HELP pmsd_build_info pmsd's version, as a label; the value is always 1.
# TYPE pmsd_build_info gauge
pmsd_build_info{version="9.9.9"} 1
# HELP pmsd_up 1 when pmsd could read its apps' state, 0 when it could not.
# TYPE pmsd_up gauge
pmsd_up 1
# HELP pmsd_god_up 1 when pmsd's god (pmsd-god.service) answers, 0 when it does not.
# TYPE pmsd_god_up gauge
pmsd_god_up 1
# HELP pmsd_apps Apps pmsd manages, each instance of a cluster app counted once.
# TYPE pmsd_apps gauge
pmsd_apps 2
# HELP pmsd_app_status The app's status as pmsd ls shows it: 1 for the current one.
# TYPE pmsd_app_status gauge
pmsd_app_status{name="api",id="0",app_instance="",namespace="default",unit="pmsd-api.service",state="launching"} 0
pmsd_app_status{name="api",id="0",app_instance="",namespace="default",unit="pmsd-api.service",state="online"} 1
pmsd_app_status{name="api",id="0",app_instance="",namespace="default",unit="pmsd-api.service",state="stopping"} 0
pmsd_app_status{name="api",id="0",app_instance="",namespace="default",unit="pmsd-api.service",state="stopped"} 0
pmsd_app_status{name="api",id="0",app_instance="",namespace="default",unit="pmsd-api.service",state="errored"} 0
pmsd_app_status{name="api",id="0",app_instance="",namespace="default",unit="pmsd-api.service",state="waiting restart"} 0
pmsd_app_status{name="web",id="1",app_instance="1",namespace="shop",unit="pmsd-web@1.service",state="launching"} 0
pmsd_app_status{name="web",id="1",app_instance="1",namespace="shop",unit="pmsd-web@1.service",state="online"} 0
pmsd_app_status{name="web",id="1",app_instance="1",namespace="shop",unit="pmsd-web@1.service",state="stopping"} 0
pmsd_app_status{name="web",id="1",app_instance="1",namespace="shop",unit="pmsd-web@1.service",state="stopped"} 0
pmsd_app_status{name="web",id="1",app_instance="1",namespace="shop",unit="pmsd-web@1.service",state="errored"} 1
pmsd_app_status{name="web",id="1",app_instance="1",namespace="shop",unit="pmsd-web@1.service",state="waiting restart"} 0
# HELP pmsd_app_memory_bytes Memory used by the app's processes: its unit's cgroup memory.current, else their \
resident memory.
# TYPE pmsd_app_memory_bytes gauge
pmsd_app_memory_bytes{name="api",id="0",app_instance="",namespace="default",unit="pmsd-api.service"} 12582912
# HELP pmsd_app_cpu_seconds_total CPU time used by the app's processes since its current run started (from 0 \
again at each restart).
# TYPE pmsd_app_cpu_seconds_total counter
pmsd_app_cpu_seconds_total{name="api",id="0",app_instance="",namespace="default",unit="pmsd-api.service"} 2.25
# HELP pmsd_app_restarts_total Restarts of the app, as PM2 counts them: automatic, manual and god's.
# TYPE pmsd_app_restarts_total counter
pmsd_app_restarts_total{name="api",id="0",app_instance="",namespace="default",unit="pmsd-api.service"} 3
pmsd_app_restarts_total{name="web",id="1",app_instance="1",namespace="shop",unit="pmsd-web@1.service"} 3
# HELP pmsd_app_unstable_restarts_total Restarts of the app after runs shorter than its min_uptime (PM2's \
unstable restarts).
# TYPE pmsd_app_unstable_restarts_total counter
pmsd_app_unstable_restarts_total{name="api",id="0",app_instance="",namespace="default",unit="pmsd-api.service"} 1
pmsd_app_unstable_restarts_total{name="web",id="1",app_instance="1",namespace="shop",unit="pmsd-web@1.service"} 1
# HELP pmsd_app_start_time_seconds When the app's current run started, in seconds since the Unix epoch.
# TYPE pmsd_app_start_time_seconds gauge
pmsd_app_start_time_seconds{name="api",id="0",app_instance="",namespace="default",unit="pmsd-api.service"} \
1700000000.5
# HELP pmsd_app_open_fds File descriptors held by the app's processes, where /proc lets pmsd count them.
# TYPE pmsd_app_open_fds gauge
pmsd_app_open_fds{name="api",id="0",app_instance="",namespace="default",unit="pmsd-api.service"} 17
"""


def _golden_scrape() -> Scrape:
    return Scrape([_info(make_record(pm_id=0, name="api")), _info(_cluster_record(1, 1), Status.ERRORED)],
                  {0: 17}, god_up=True, version="9.9.9")


# ------------------------------------------------------------------------------------------ the text


def test_the_scrape_reads_as_the_golden_text() -> None:
    assert render_metrics(_golden_scrape()) == GOLDEN


def test_the_golden_text_is_valid_exposition() -> None:
    series = parse_exposition(GOLDEN)
    status = values(series, "pmsd_app_status")
    assert len(status) == 2 * len(Status)
    assert sum(status.values()) == 2  # one current status per app


def test_unknown_figures_are_left_out_not_zero() -> None:
    """A stopped app has no memory, CPU time, start time or descriptors; a running one whose figures could not
    be read (memory 0, cpu None, /proc closed to pmsd) has none either."""
    unread = _info(make_record(pm_id=2, name="hidden"), memory_bytes=0, cpu_seconds=None)
    stopped = _info(make_record(pm_id=3, name="idle"), Status.STOPPED)
    series = parse_exposition(render_metrics(Scrape([unread, stopped], {})))
    names = {name for name, _ in series}
    for left_out in ("pmsd_app_memory_bytes", "pmsd_app_cpu_seconds_total", "pmsd_app_open_fds"):
        assert left_out not in names
    assert [dict(labels)["name"] for labels in values(series, "pmsd_app_start_time_seconds")] == ["hidden"]
    assert "pmsd_god_up" not in names  # not asked (PMSD_NO_GOD)
    assert values(series, "pmsd_app_restarts_total")  # what is known is still there


@pytest.mark.parametrize("name", ['quote"d', "back\\slash", "new\nline", "all\\\"\n\\n", "ünï cödé", "{,}= #"])
def test_label_values_are_escaped(name: str) -> None:
    text = render_metrics(Scrape([_info(make_record(pm_id=0, name=name))], {}))
    assert "\n\n" not in text
    series = parse_exposition(text)
    assert {dict(labels)["name"] for labels in values(series, "pmsd_app_memory_bytes")} == {name}


def test_a_scrape_that_could_not_read_the_apps_says_pmsd_up_0_and_nothing_else() -> None:
    error = PmsdError("cannot connect to systemd")
    scrape = scrape_of([], god_up=False, error=error)
    series = parse_exposition(render_metrics(scrape))
    assert series == {("pmsd_build_info", frozenset({("version", scrape.version)})): 1.0,
                      ("pmsd_up", frozenset()): 0.0, ("pmsd_god_up", frozenset()): 0.0}


def test_no_apps_is_a_valid_scrape() -> None:
    series = parse_exposition(render_metrics(Scrape([])))
    assert series[("pmsd_apps", frozenset())] == 0.0


def test_a_hundred_apps_render_fast() -> None:
    infos = [_info(make_record(pm_id=n, name=f"app{n}")) for n in range(100)]
    started = time.perf_counter()
    text = render_metrics(Scrape(infos, {n: 10 for n in range(100)}, god_up=True))
    assert time.perf_counter() - started < 0.5
    assert len(values(parse_exposition(text), "pmsd_app_memory_bytes")) == 100


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus) is not installed")
def test_promtool_finds_nothing_to_say() -> None:
    for text in (GOLDEN, render_metrics(scrape_of([], True, PmsdError("down")))):
        checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                                 timeout=60, check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr


# ------------------------------------------------------------------------------------------ the figures


def test_a_runtime_row_carries_every_field_and_a_row_of_another_shape_is_refused() -> None:
    """god's status rows are positional (RUNTIME_FIELDS): what a row says comes back whole, cpu_seconds too,
    and a row of another god's shape (fewer values, or a mapping) is refused rather than misread."""
    record = make_record(pm_id=0, name="api")
    info = _info(record)
    assert info_from_row(record, runtime_row(info)) == info
    assert info_from_row(record, runtime_row(info)).cpu_seconds == 2.25
    for other in (runtime_row(info)[:-1], dict(zip(RUNTIME_FIELDS, runtime_row(info), strict=True))):
        with pytest.raises(ValueError):
            info_from_row(record, other)


def test_a_row_with_a_status_pmsd_does_not_know_is_refused() -> None:
    record = make_record(pm_id=0, name="api")
    row = runtime_row(_info(record))
    row[0] = "hibernating"
    with pytest.raises(KeyError):
        info_from_row(record, row)


def test_the_quick_constructor_sets_every_field_as_the_dataclass_does() -> None:
    """ProcessInfo.of bypasses the dataclass's __init__: a field added to the class and not to `of` fails here."""
    info = _info(make_record(pm_id=0, name="api"))
    values = {field.name: getattr(info, field.name) for field in dataclasses.fields(ProcessInfo)}
    built = ProcessInfo.of(**values)
    assert built == info
    assert vars(built) == vars(ProcessInfo(**values))
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.pid = 1  # type: ignore[misc]


def test_open_fds_of_a_process_are_counted() -> None:
    count = unit_open_fds("", os.getpid())
    assert count is not None
    with open(os.devnull) as _handle:
        assert unit_open_fds("", os.getpid()) == count + 1
    assert unit_open_fds("", 0) is None  # no process at all: unknown, not 0


def test_open_fds_are_unknown_where_proc_is_closed() -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every process's descriptors")
    assert unit_open_fds("", 1) is None  # init's, another user's


def test_scrape_of_counts_descriptors_of_running_apps_only() -> None:
    running = _info(make_record(pm_id=0, name="api"), pid=os.getpid())
    stopped = _info(make_record(pm_id=1, name="idle"), Status.STOPPED)
    assert set(scrape_of([running, stopped], None).open_fds) == {0}


# ------------------------------------------------------------------------------------------ metrics_listen


@pytest.mark.parametrize(("raw", "stored"), [
    ("unix", "unix"), ("UNIX", "unix"), ("off", ""), ("", ""), (" 127.0.0.1:9209 ", "127.0.0.1:9209"),
    ("[::1]:9209", "[::1]:9209"), ("0.0.0.0:80", "0.0.0.0:80"),
])
def test_metrics_listen_values(raw: str, stored: str) -> None:
    assert parse_config_value("metrics_listen", raw) == ("metrics_listen", stored)


@pytest.mark.parametrize(("raw", "message", "hint"), [
    ("9209", "names a port but no address", "127.0.0.1:9209"),
    ("localhost:9209", "not an IP address", "unix"),
    ("::1:9209", "in brackets", "unix"),
    ("127.0.0.1:0", "port from 1 to 65535", "unix"),
    ("/run/metrics.sock", "port from 1 to 65535", "unix"),
])
def test_metrics_listen_refuses_what_cannot_be_listened_on(raw: str, message: str, hint: str) -> None:
    with pytest.raises(UsageError, match=message) as refused:
        parse_config_value("metrics_listen", raw)
    assert hint in (refused.value.hint or "")


# ------------------------------------------------------------------------------------------ god's responder

SCRAPE = "x_total 1\n"


@contextlib.contextmanager
def _listening(tmp_path: Path, collect: Callable[[], str] = lambda: SCRAPE, listen: str = "unix"
               ) -> Iterator[tuple[MetricsListener, list[str]]]:
    """god's metrics listener, its loop run by a thread (timers too: a tick keeps the loop turning)."""
    loop = Loop()
    logged: list[str] = []
    listener = MetricsListener(loop, collect, logged.append, str(tmp_path / "run" / "metrics.sock"))
    listener.configure({"metrics_listen": listen})
    stop = threading.Event()

    def tick() -> None:
        if not stop.is_set():
            loop.call_later(0.01, tick)

    def serve() -> None:
        while not stop.is_set():
            loop.run_once(lambda: None)

    tick()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener, logged
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _get(path: str, target: str = "/metrics", method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    connection = UnixHTTPConnection(path, timeout=5)
    try:
        connection.request(method, target)
        answer = connection.getresponse()
        return answer.status, {key.lower(): value for key, value in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def test_get_metrics_answers_the_scrape(tmp_path: Path) -> None:
    calls: list[int] = []

    def collect() -> str:
        calls.append(1)
        return SCRAPE

    with _listening(tmp_path, collect) as (listener, logged):
        assert calls == []  # nothing is computed before someone asks
        status, headers, body = _get(listener.unix_path)
        assert (status, body) == (200, SCRAPE.encode())
        assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert headers["connection"] == "close"
        assert _get(listener.unix_path, "/metrics?x=1")[0] == 200
        assert _get(listener.unix_path, method="HEAD")[2] == b""
        assert len(calls) == 3
        assert os.stat(listener.unix_path).st_mode & 0o777 == 0o600
        assert any("serving Prometheus metrics" in line for line in logged)


@pytest.mark.parametrize(("target", "method", "status"), [
    ("/", "GET", 404), ("/metrics/x", "GET", 404), ("/favicon.ico", "GET", 404), ("/metrics", "POST", 405),
])
def test_anything_else_is_refused(tmp_path: Path, target: str, method: str, status: int) -> None:
    with _listening(tmp_path) as (listener, _):
        assert _get(listener.unix_path, target, method)[0] == status


def _raw(address: str | tuple[str, int], data: bytes) -> bytes:
    """What the listener (a Unix socket's path, or a TCP address) answers `data` with, until it closes."""
    with socket.socket(socket.AF_UNIX if isinstance(address, str) else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(address)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_a_request_too_large_is_refused_and_closed(tmp_path: Path) -> None:
    with _listening(tmp_path) as (listener, _):
        answer = _raw(listener.unix_path, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20_000)
        assert answer.startswith(b"HTTP/1.1 431 ")
        assert _get(listener.unix_path)[0] == 200  # and the listener serves on


def test_not_http_is_a_bad_request(tmp_path: Path) -> None:
    with _listening(tmp_path) as (listener, _):
        assert _raw(listener.unix_path, b"hello\n\n").startswith(b"HTTP/1.1 400 ")
        assert _raw(listener.unix_path, b"GET /metrics HTTP/1.0\n\n").startswith(b"HTTP/1.1 200 ")


def test_a_slow_client_is_dropped_and_others_are_served_meanwhile(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_http, "CLIENT_TIMEOUT_S", 0.3)
    with _listening(tmp_path) as (listener, _):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as slow:
            slow.settimeout(5)
            slow.connect(listener.unix_path)
            slow.sendall(b"GET /metr")
            assert _get(listener.unix_path)[0] == 200  # the loop is not held by the slow one
            started = time.monotonic()
            assert slow.recv(100) == b""  # closed by the listener, without an answer
            assert time.monotonic() - started < 3
        assert listener.clients == set()


def test_an_answer_larger_than_the_socket_buffer_arrives_whole(tmp_path: Path) -> None:
    big = "x_total 1\n" * 300_000  # 3 MB
    with _listening(tmp_path, lambda: big) as (listener, _):
        assert _get(listener.unix_path)[2] == big.encode()


def test_a_failing_scrape_is_a_500_and_god_serves_on(tmp_path: Path) -> None:
    def broken() -> str:
        raise RuntimeError("bug")

    with _listening(tmp_path, broken) as (listener, logged):
        assert _get(listener.unix_path)[0] == 500
        assert _get(listener.unix_path)[0] == 500
        assert any("RuntimeError: bug" in line for line in logged)


def test_tcp_on_loopback_and_off_again(tmp_path: Path) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with _listening(tmp_path, listen=f"127.0.0.1:{port}") as (listener, _):
        answer = _raw(("127.0.0.1", port), b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(SCRAPE.encode())
        assert not os.path.exists(listener.unix_path)
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pytest.fail("still listening after close")


def test_configure_follows_the_setting(tmp_path: Path) -> None:
    loop = Loop()
    logged: list[str] = []
    listener = MetricsListener(loop, lambda: SCRAPE, logged.append, str(tmp_path / "run" / "metrics.sock"))
    try:
        listener.configure({})  # the default: off
        assert listener.sock is None and not os.path.exists(listener.unix_path)
        listener.configure({"metrics_listen": "unix"})
        first = listener.sock
        assert first is not None and os.path.exists(listener.unix_path)
        listener.configure({"metrics_listen": "unix"})  # unchanged: the same socket
        assert listener.sock is first
        listener.configure({"metrics_listen": "nonsense"})  # a hand-edited config.json: logged, off
        assert listener.sock is None and not os.path.exists(listener.unix_path)
        assert any("metrics_listen" in line for line in logged)
        listener._accept()  # an event the loop had selected before the socket was closed: nothing happens
    finally:
        listener.close()


def test_an_address_in_use_is_logged_and_tried_again(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    loop = Loop()
    logged: list[str] = []
    listener = MetricsListener(loop, lambda: SCRAPE, logged.append, str(tmp_path / "metrics.sock"))
    try:
        listener.configure({"metrics_listen": f"127.0.0.1:{port}"})
        assert listener.sock is None
        assert any("cannot serve metrics" in line for line in logged)
        taken.close()
        listener.configure({"metrics_listen": f"127.0.0.1:{port}"})
        assert listener.sock is not None
    finally:
        taken.close()
        listener.close()


# ------------------------------------------------------------------------------------------ the dashboard

DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "grafana", "pmsd-dashboard.json")


def test_the_grafana_dashboard_asks_only_for_what_pmsd_exposes() -> None:
    with open(DASHBOARD, encoding="utf-8") as handle:
        dashboard = json.load(handle)
    exposed = set(re.findall(r"^# TYPE (\S+)", GOLDEN, re.MULTILINE))
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"  # chosen on import, not one Grafana's own uid
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    queries += [variable["definition"] for variable in variables.values() if variable["type"] == "query"]
    asked = {name for query in queries for name in re.findall(r"\bpmsd_[a-z_]+", query)}
    assert asked and asked <= exposed, asked - exposed
    for panel in dashboard["panels"]:
        for item in (panel, *panel["targets"]):
            assert item["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
    labels = {"name", "id", "app_instance", "namespace", "unit", "state", "instance"}
    for query in queries:
        for group in re.findall(r"by \(([^)]*)\)", query):
            assert {label.strip() for label in group.split(",")} <= labels, query


# ------------------------------------------------------------------------------------------ god's scrape


class _Manager:
    """Just enough of pmsd.systemd.bus.Manager for god's snapshot of no apps."""

    def __init__(self, error: PmsdError | None = None) -> None:
        self.error = error

    def list_units(self, _patterns: list[str]) -> list[object]:
        if self.error is not None:
            raise self.error
        return []


def _god_scrape(tmp_path: Path, manager: _Manager) -> dict[Series, float]:
    ctx = Context(user=True, environ={}, state_dir=str(tmp_path), _manager=cast(Manager, manager))
    return parse_exposition(ApiHandlers(ctx, {}, {}, lambda: None).metrics())


def test_god_scrapes_what_it_follows(tmp_path: Path) -> None:
    series = _god_scrape(tmp_path, _Manager())
    assert series[("pmsd_up", frozenset())] == series[("pmsd_god_up", frozenset())] == 1
    assert series[("pmsd_apps", frozenset())] == 0


def test_god_says_pmsd_up_0_when_systemd_does_not_answer(tmp_path: Path) -> None:
    series = _god_scrape(tmp_path, _Manager(PmsdError("cannot reach the user manager")))
    assert series[("pmsd_up", frozenset())] == 0 and ("pmsd_apps", frozenset()) not in series


# ------------------------------------------------------------------------------------------ `pmsd metrics`


def test_pmsd_metrics_prints_every_app(env: Env, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    seed(env, make_record(pm_id=0, name="api"), make_record(pm_id=1, name="idle"))
    fake_manager(monkeypatch, {"pmsd-api.service": os.getpid()})
    result = run(capsys, "metrics")
    assert (result.status, result.err) == (0, "")
    series = parse_exposition(result.out)
    assert series[("pmsd_up", frozenset())] == 1
    assert ("pmsd_god_up", frozenset()) not in series  # PMSD_NO_GOD: no god is meant to run
    current = {dict(labels)["name"]: dict(labels)["state"]
               for labels, value in values(series, "pmsd_app_status").items() if value == 1}
    assert current == {"api": "online", "idle": "stopped"}
    assert [dict(labels)["name"] for labels in values(series, "pmsd_app_open_fds")] == ["api"]


def test_pmsd_metrics_prints_pmsd_up_0_then_the_error(env: Env, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    seed(env, make_record(pm_id=0, name="api"))
    broken = _Manager(PmsdError("cannot reach the user manager", "start it"))
    monkeypatch.setattr(Context, "manager", property(lambda self: broken))
    result = run(capsys, "metrics")
    assert result.status == ExitStatus.ERROR
    assert parse_exposition(result.out)[("pmsd_up", frozenset())] == 0
    assert "cannot reach the user manager" in result.err and "start it" in result.err
