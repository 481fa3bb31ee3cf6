"""The ports a cluster app was found listening on (pmsd.state.ports), and which apps are probed."""

from __future__ import annotations

import os

import pytest

from pmsd.api.cluster import discovers_ports
from pmsd.state.ports import (
    forget_found_ports,
    parse_status_ports,
    ports_file,
    read_found_ports,
    write_found_ports,
)
from tests.unit.helpers import make_spec


def test_never_probed_probed_empty_and_found_are_three_answers(tmp_path: object) -> None:
    state = str(tmp_path)
    assert read_found_ports(state, "web") is None
    write_found_ports(state, "web", ())
    assert read_found_ports(state, "web") == ()
    write_found_ports(state, "web", (9000, 8000, 9000))
    assert read_found_ports(state, "web") == (8000, 9000)
    assert oct(os.stat(ports_file(state, "web")).st_mode & 0o777) == "0o600"
    forget_found_ports(state, "web")
    forget_found_ports(state, "web")  # twice is fine
    assert read_found_ports(state, "web") is None


@pytest.mark.parametrize("text", ["{", '{"ports": [0]}', '{"ports": ["80"]}', '{"ports": 80}', "[]"])
def test_a_damaged_file_reads_as_never_probed(tmp_path: object, text: str) -> None:
    state = str(tmp_path)
    write_found_ports(state, "web", (80,))
    with open(ports_file(state, "web"), "w", encoding="utf-8") as handle:
        handle.write(text)
    assert read_found_ports(state, "web") is None


def test_a_name_cannot_leave_the_ports_directory(tmp_path: object) -> None:
    path = ports_file(str(tmp_path), "../../etc/x")
    assert os.path.dirname(path) == os.path.join(str(tmp_path), "ports")


@pytest.mark.parametrize(("text", "ports"), [
    ("pmsd-ports: 8000", (8000,)),
    ("pmsd-ports: 9000 8000 8000", (8000, 9000)),
    ("pmsd-ports:", ()),
    ("", ()),
    ("Ready.", ()),
    ("pmsd-ports: 0 70000 x 443", (443,)),
])
def test_status_text_of_the_preload(text: str, ports: tuple[int, ...]) -> None:
    assert parse_status_ports(text) == ports


def test_only_node_cluster_apps_without_a_port_are_probed() -> None:
    node = {"script": "/srv/app.js", "interpreter": "/usr/bin/node"}
    assert discovers_ports(make_spec(exec_mode="cluster", instances=2, **node))
    assert not discovers_ports(make_spec(exec_mode="cluster", instances=2, port="3000", **node))
    assert not discovers_ports(make_spec(exec_mode="fork", instances=2, **node))
    assert not discovers_ports(make_spec(exec_mode="cluster", instances=2, script="/srv/app.py",
                                         interpreter="/usr/bin/python3"))
