"""Unmodified cluster apps (issue 13): a Node app whose port is written in its code, started with instances and
no `port`, serves from every instance on one systemd-held socket, as under PM2.

The first run finds the port (one instance alone, its listen() reported by the preload) and records it; later
runs hand the socket to every instance from the start. Traffic stays on 127.0.0.1, load is bounded.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.e2e.helpers import APPS, Pmsd, systemctl, unit_property, wait_for
from tests.e2e.test_cluster import free_port, get, instances, load, needs_node, online_pids, serving_pids

pytestmark = [pytest.mark.e2e, needs_node]
SERVER = os.path.join(APPS, "cluster_http.js")


def app_with_ports(directory: str, name: str, *ports: int) -> str:
    """A Node app that listens on these ports, written in its code: nothing in its definition says so."""
    path = os.path.join(directory, f"{name}.js")
    servers = "\n".join(
        f"require('http').createServer((q, r) => r.end(`${{process.pid}}\\n`)).listen({port});" for port in ports[1:])
    with open(path, "w", encoding="utf-8") as handle:
        # The first port through the test server (graceful shutdown, pid in the body); others plain.
        handle.write(f"process.env.PORT = '{ports[0]}';\nrequire({SERVER!r});\n{servers}\n")
    return path


def socket_listens(pmsd: Pmsd, name: str) -> str:
    return unit_property(pmsd.env, f"pmsd-{name}.socket", "Listen")


def test_a_port_written_in_the_code_is_found_and_shared(pmsd: Pmsd, token: str) -> None:
    name, port = f"found-{token}", free_port()
    script = app_with_ports(pmsd.cwd, name, port)
    pmsd.run("start", script, "-i", "4")
    pids = online_pids(pmsd, name, 4)
    assert serving_pids(port, 4) == pids  # every instance answers on the port, as under PM2
    assert f"127.0.0.1:{port}" in socket_listens(pmsd, name) or f"[::]:{port}" in socket_listens(pmsd, name)
    assert [p["pm2_env"]["restart_time"] for p in instances(pmsd, name)] == [0, 0, 0, 0]  # the probe is no restart
    assert all(p["pm2_env"]["exec_mode"] == "cluster_mode" for p in instances(pmsd, name))

    # From then on nothing is refused: a reload under load, then a later run that starts on the socket at once.
    with load(port, clients=4) as traffic:
        time.sleep(0.3)  # some traffic before the reload
        pmsd.run("reload", name)
        wait_for(lambda: len(traffic.ok) > 50 or None, 10, "traffic after the reload")
    assert traffic.errors == []
    pmsd.run("stop", name)
    started = time.monotonic()
    pmsd.run("start", name)
    assert serving_pids(port, 4) == online_pids(pmsd, name, 4)
    assert time.monotonic() - started < 10

    pmsd.run("delete", name)
    assert not os.listdir(os.path.join(pmsd.env["XDG_STATE_HOME"], "pmsd", "ports"))


def test_several_ports_in_the_code(pmsd: Pmsd, token: str) -> None:
    name, first, second = f"two-{token}", free_port(), free_port()
    script = app_with_ports(pmsd.cwd, name, first, second)
    pmsd.run("start", script, "-i", "2")
    pids = online_pids(pmsd, name, 2)
    assert serving_pids(first, 2) == pids
    assert serving_pids(second, 2) == pids
    listens = socket_listens(pmsd, name)
    assert str(first) in listens and str(second) in listens


def test_an_app_that_listens_on_nothing_is_not_held_up(pmsd: Pmsd, token: str) -> None:
    name = f"worker-{token}"
    script = os.path.join(pmsd.cwd, f"{name}.js")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write("setInterval(() => {}, 1000);\n")
    started = time.monotonic()
    pmsd.run("start", script, "-i", "2", "--listen-timeout", "500")
    assert time.monotonic() - started < 5
    online_pids(pmsd, name, 2)
    state = systemctl(pmsd.env, "show", "-p", "LoadState", "--value", f"pmsd-{name}.socket").stdout.strip()
    assert state == "not-found"


def test_a_declared_port_wins_over_discovery(pmsd: Pmsd, token: str) -> None:
    """`port:` keeps working as before: no probe, the socket from the first start."""
    name, port = f"declared-{token}", free_port()
    pmsd.run("start", SERVER, "--name", name, "-i", "2", "--port", f"127.0.0.1:{port}")
    assert serving_pids(port, 2) == online_pids(pmsd, name, 2)
    assert get(port) > 0
    assert not os.path.exists(os.path.join(pmsd.env["XDG_STATE_HOME"], "pmsd", "ports"))


@pytest.mark.parametrize("declared", [False, True], ids=["port-in-code", "declared-port"])
def test_two_apps_in_one_file_share_a_port(pmsd: Pmsd, token: str, declared: bool) -> None:
    """As under PM2: both apps' instances answer on the port; stopping one leaves the other serving it."""
    port = free_port()
    names = [f"share{app}-{token}" for app in "ab"]
    apps = [{"name": name, "script": app_with_ports(pmsd.cwd, name, port), "instances": 2,
             **({"port": port} if declared else {})} for name in names]
    ecosystem = os.path.join(pmsd.cwd, f"share-{token}.json")
    with open(ecosystem, "w", encoding="utf-8") as handle:
        json.dump({"apps": apps}, handle)
    pmsd.run("start", ecosystem)
    first, second = (online_pids(pmsd, name, 2) for name in names)
    assert serving_pids(port, 4) == first | second

    pmsd.run("stop", names[0])
    with load(port, clients=2) as traffic:
        wait_for(lambda: len(traffic.ok) > 50 or None, 10, "traffic with one app stopped")
    assert traffic.errors == []
    assert {pid for _at, pid in traffic.ok} <= second
