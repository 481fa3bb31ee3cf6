"""Cluster options: instances, exec_mode, port, wait_ready; per-instance environment; scale requests."""

from __future__ import annotations

import os

import pytest

from pmsd.api.cluster import parse_scale
from pmsd.definition.build import build_spec
from pmsd.definition.environment import app_environment, incremented
from pmsd.definition.settings import parse_exec_mode, parse_instances, parse_port
from pmsd.errors import UsageError
from pmsd.model.record import AppRecord
from pmsd.model.spec import AppSpec, Source
from tests.unit.helpers import SYSTEM_PATH, make_spec, needs_node

CPUS = os.cpu_count() or 1


def _build(raw: dict[str, object], source: Source) -> AppSpec:
    return build_spec(raw, source, None, SYSTEM_PATH, [])


@pytest.mark.parametrize(("value", "expected"), [
    (4, 4), ("4", 4), ("max", CPUS), ("MAX", CPUS), (0, CPUS), (-1, max(1, CPUS - 1)), (-1000, 1), (1, 1),
])
def test_instances_as_pm2_reads_them(value: object, expected: int) -> None:
    assert parse_instances(value) == expected


@pytest.mark.parametrize("value", ["many", 2.5, True, 100_000])
def test_bad_instances(value: object) -> None:
    with pytest.raises(ValueError):
        parse_instances(value)


@pytest.mark.parametrize(("value", "expected"), [
    ("fork", "fork"), ("fork_mode", "fork"), ("cluster", "cluster"), ("cluster_mode", "cluster"),
])
def test_exec_mode(value: str, expected: str) -> None:
    assert parse_exec_mode(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (3000, "3000"), ("3000", "3000"), ("127.0.0.1:8080", "127.0.0.1:8080"), ("[::1]:80", "[::1]:80"),
    ("[0:0::1]:80", "[::1]:80"), (" 65535 ", "65535"),
])
def test_port(value: object, expected: str) -> None:
    assert parse_port(value) == expected


@pytest.mark.parametrize("value", [0, 65536, "http", "localhost:3000", "1.2.3:80", "::1:80", True])
def test_bad_port(value: object) -> None:
    with pytest.raises(ValueError):
        parse_port(value)


@needs_node
def test_instances_of_a_node_app_imply_cluster_mode(source: Source) -> None:
    spec = _build({"script": "server.js", "instances": 3}, source)
    assert (spec.exec_mode, spec.instances, spec.clustered) == ("cluster", 3, True)
    assert _build({"script": "server.js", "instances": 3, "exec_mode": "fork"}, source).exec_mode == "fork"
    assert not _build({"script": "main.py"}, source).clustered


def test_cluster_port_defaults_to_env_port_and_port_sets_env_port(source: Source) -> None:
    spec = _build({"script": "main.py", "instances": 2, "env": {"PORT": 4000}}, source)
    assert spec.port == "4000"
    spec = _build({"script": "main.py", "instances": 2, "port": "127.0.0.1:5000"}, source)
    assert spec.env["PORT"] == "5000"
    # increment_var PORT: each instance its own port, so no shared socket.
    spec = _build({"script": "main.py", "instances": 2, "env": {"PORT": 4000}, "increment_var": "PORT"}, source)
    assert spec.port is None


def test_a_fork_apps_port_only_sets_port_as_in_pm2(source: Source) -> None:
    spec = _build({"name": "api", "script": "main.py", "port": 3000}, source)
    assert (spec.exec_mode, spec.port, spec.env["PORT"]) == ("fork", None, "3000")
    spec = _build({"name": "api", "script": "main.py", "port": 3000, "env_prod": {"PORT": "4000"}}, source)
    assert spec.env["PORT"] == "3000"  # no --env: the overlay does not apply


def test_python_instances_run_in_fork_mode_as_in_pm2(source: Source) -> None:
    spec = _build({"name": "api", "script": "main.py", "instances": 4}, source)
    assert (spec.exec_mode, spec.instances, spec.port) == ("fork", 4, None)


@pytest.mark.parametrize("extra", [{"exec_mode": "cluster"}, {"port": 3000}])
def test_python_instances_share_a_socket_when_asked(source: Source, extra: dict[str, object]) -> None:
    spec = _build({"name": "api", "script": "main.py", "instances": 4, **extra}, source)
    assert spec.exec_mode == "cluster"


def test_instance_environment() -> None:
    env = app_environment({"HOME": "/root"}, {"PORT": "3000"}, 7, "api", "default", instance=2,
                          increment_var="PORT")
    assert (env["NODE_APP_INSTANCE"], env["PORT"], env["pm_id"]) == ("2", "3002", "7")
    env = app_environment({}, {}, 7, "api", "default", instance=1, instance_var="INSTANCE_ID")
    assert env["INSTANCE_ID"] == "1" and "NODE_APP_INSTANCE" not in env
    assert app_environment({}, {}, 0, "api", "default")["NODE_APP_INSTANCE"] == "0"


@pytest.mark.parametrize(("current", "request_", "wanted"), [(2, "4", 4), (2, "+2", 4), (4, "-3", 1), (1, "1", 1)])
def test_scale_requests(current: int, request_: str, wanted: int) -> None:
    assert parse_scale(current, request_) == wanted


@pytest.mark.parametrize("request_", ["0", "-2", "x", "+", "2000"])
def test_bad_scale_requests(request_: str) -> None:
    with pytest.raises(UsageError):
        parse_scale(2, request_)


def test_instance_records_round_trip_and_name_their_units() -> None:
    record = AppRecord(pm_id=5, spec=make_spec(name="web", exec_mode="cluster", instances=2), created_at=1,
                       instance=1)
    again = AppRecord.from_json(record.to_json())
    assert again.instance == 1 and again.unit == "pmsd-web@1.service"
    fork = AppRecord.from_json(AppRecord(pm_id=1, spec=make_spec(), created_at=1).to_json())
    assert fork.instance is None and fork.unit == "pmsd-main.service"


def test_increment_var_takes_the_records_offset_as_pm2_does() -> None:
    env = app_environment({}, {"PORT": "7000"}, 3, "api", "default", instance=1, increment_var="PORT", increment=3)
    assert (env["NODE_APP_INSTANCE"], env["PORT"]) == ("1", "7003")
    assert incremented(None, 2) == "2" and incremented("x", 2) == "x"


def test_record_keeps_its_increment() -> None:
    record = AppRecord(pm_id=3, spec=make_spec(), created_at=0, instance=1, increment=3)
    assert AppRecord.from_json(record.to_json()) == record
    assert record.increment_offset == 3
    older = AppRecord.from_json({**record.to_json(), "increment": None})
    assert older.increment is None and older.increment_offset == 1  # records from before: the instance number
