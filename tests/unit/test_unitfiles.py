"""A cluster app's unit files (template, socket, holder), against golden files."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from pmsd.definition.settings import SYSTEMD_FLOOR
from pmsd.definition.unitfiles import render_cluster_units
from pmsd.model.spec import UnitInputs
from pmsd.state.unitfiles import installed_units, remove_leftovers, remove_units, write_units
from tests.unit.helpers import GOLDEN_DIR, UPDATE_GOLDEN, make_spec
from tests.unit.test_units import CLUSTER_NODE_SPEC

ENV_FILE = "/var/lib/pmsd/env/0.env"
PRELOAD = "/usr/lib/python3/dist-packages/pmsd/preload/node.js"  # conftest.fixed_node_preload


def _golden(name: str, text: str) -> None:
    path = os.path.join(GOLDEN_DIR, name)
    if UPDATE_GOLDEN:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    with open(path, encoding="utf-8", newline="") as handle:
        assert text == handle.read(), f"{path} differs; regenerate with PMSD_UPDATE_GOLDEN=1 if intended"


def test_cluster_units_match_golden() -> None:
    files = render_cluster_units(UnitInputs(CLUSTER_NODE_SPEC, ENV_FILE), SYSTEMD_FLOOR)
    assert sorted(files) == ["pmsd-web.socket", "pmsd-web@.service", "pmsd.listen-web.service"]
    for unit, text in files.items():
        _golden(unit, text)


def test_template_passes_the_socket_and_names_each_instance_env_file() -> None:
    text = render_cluster_units(UnitInputs(CLUSTER_NODE_SPEC, ENV_FILE), SYSTEMD_FLOOR)["pmsd-web@.service"]
    lines = text.splitlines()
    assert "Sockets=pmsd-web.socket" in lines
    assert "Requires=pmsd-web.socket" in lines
    assert "EnvironmentFile=/var/lib/pmsd/env/pmsd-web@%i.env" in lines
    # listen_timeout 8 s: the preload calls the app ready by then (as PM2 calls it online); systemd waits 5 s more.
    assert "Type=notify" in lines and "NotifyAccess=all" in lines and "TimeoutStartSec=13s" in lines
    assert f"ExecStart=/usr/bin/node --require {PRELOAD} /srv/web/server.js" in lines
    assert "Environment=PMSD_LISTEN_PORTS=3000 PMSD_READY_AFTER_MS=8000" in lines
    # The count of instances is not in the template: scaling never rewrites it.
    assert "4" not in "".join(line for line in lines if not line.startswith(("#", "TimeoutStopSec")))


def test_wait_ready_app_in_another_language_must_be_ready_within_listen_timeout() -> None:
    spec = dataclasses.replace(CLUSTER_NODE_SPEC, interpreter="/usr/bin/python3", exec_path="/usr/bin/python3",
                               script="/srv/web/main.py", argv=("/usr/bin/python3", "/srv/web/main.py"))
    lines = render_cluster_units(UnitInputs(spec, ENV_FILE), SYSTEMD_FLOOR)["pmsd-web@.service"].splitlines()
    assert "TimeoutStartSec=8s" in lines
    assert not any("PMSD_READY_AFTER_MS" in line for line in lines)


def test_node_instances_and_the_holder_keep_the_shared_socket_non_blocking() -> None:
    """Every service started with the socket sets its O_NONBLOCK (one open file description for all) to its own
    NonBlocking=; libuv wants it set, so the Node instances and the holder say yes (settings._non_blocking).
    Other languages keep systemd's default: a blocking accept() would fail with EAGAIN on a non-blocking socket."""
    files = render_cluster_units(UnitInputs(CLUSTER_NODE_SPEC, ENV_FILE), SYSTEMD_FLOOR)
    assert "NonBlocking=yes" in files["pmsd-web@.service"].splitlines()
    assert "NonBlocking=yes" in files["pmsd.listen-web.service"].splitlines()
    python = dataclasses.replace(CLUSTER_NODE_SPEC, interpreter="/usr/bin/python3", exec_path="/usr/bin/python3",
                                 script="/srv/web/main.py", argv=("/usr/bin/python3", "/srv/web/main.py"))
    probing = dataclasses.replace(CLUSTER_NODE_SPEC, port=None)
    for inputs in (UnitInputs(python, ENV_FILE), UnitInputs(probing, ENV_FILE, discover_ports=True)):
        assert all("NonBlocking" not in text for text in render_cluster_units(inputs, SYSTEMD_FLOOR).values())


def test_socket_listens_and_triggers_only_the_holder() -> None:
    text = render_cluster_units(UnitInputs(CLUSTER_NODE_SPEC, ENV_FILE), SYSTEMD_FLOOR)["pmsd-web.socket"]
    assert "ListenStream=127.0.0.1:3000" in text.splitlines()
    assert "Service=pmsd.listen-web.service" in text.splitlines()


def test_ports_found_in_the_code_get_one_listen_line_each_in_fd_order() -> None:
    """A Node cluster app with no declared port: the ports found (pmsd.state.ports) become the socket's
    ListenStream= lines, in the order of PMSD_LISTEN_PORTS, and discovery stays on for new ones."""
    spec = make_spec(name="web", script="/srv/web/server.js", interpreter="/usr/bin/node", exec_mode="cluster",
                     instances=4)
    files = render_cluster_units(UnitInputs(spec, ENV_FILE, found_ports=(8000, 9000), discover_ports=True),
                                 SYSTEMD_FLOOR)
    socket_lines = files["pmsd-web.socket"].splitlines()
    assert [line for line in socket_lines if line.startswith("ListenStream=")] == [
        "ListenStream=8000", "ListenStream=9000"]
    lines = files["pmsd-web@.service"].splitlines()
    assert "Environment=PMSD_LISTEN_PORTS=8000,9000 PMSD_DISCOVER_PORTS=1" in lines
    assert "NotifyAccess=all" in lines and "Sockets=pmsd-web.socket" in lines


def test_probing_an_app_renders_no_socket_but_discovery() -> None:
    spec = make_spec(name="web", script="/srv/web/server.js", interpreter="/usr/bin/node", exec_mode="cluster",
                     instances=4)
    files = render_cluster_units(UnitInputs(spec, ENV_FILE, discover_ports=True), SYSTEMD_FLOOR)
    assert list(files) == ["pmsd-web@.service"]
    lines = files["pmsd-web@.service"].splitlines()
    assert "Environment=PMSD_DISCOVER_PORTS=1" in lines and "NotifyAccess=all" in lines


def test_app_without_port_has_only_a_template() -> None:
    spec = make_spec(name="worker", exec_mode="cluster", instances=2)
    files = render_cluster_units(UnitInputs(spec, ENV_FILE), SYSTEMD_FLOOR)
    assert list(files) == ["pmsd-worker@.service"]
    assert "Sockets=" not in files["pmsd-worker@.service"]
    assert "Type=exec" in files["pmsd-worker@.service"].splitlines()


def test_specifiers_in_names_and_paths_are_escaped() -> None:
    spec = make_spec(name="100%", exec_mode="cluster", instances=2, cwd="/srv/a%b")
    text = render_cluster_units(UnitInputs(spec, "/state/%h/env/0.env"), SYSTEMD_FLOOR)["pmsd-100\\x25@.service"]
    assert "Description=pmsd app 100%% (instance %i)" in text.splitlines()
    assert "WorkingDirectory=/srv/a%%b" in text.splitlines()
    # EnvironmentFile= is a glob: the escaped name's backslash is itself escaped, or it would match "x25".
    assert "EnvironmentFile=/state/%%h/env/pmsd-100\\\\x25@%i.env" in text.splitlines()


def test_write_units_reports_only_changed_files(tmp_path: os.PathLike[str]) -> None:
    scope = (True, {"XDG_RUNTIME_DIR": str(tmp_path)})
    files = render_cluster_units(UnitInputs(CLUSTER_NODE_SPEC, ENV_FILE), SYSTEMD_FLOOR)
    assert sorted(write_units(*scope, files)) == sorted(files)
    assert write_units(*scope, files) == []
    changed = dict(files, **{"pmsd-web@.service": files["pmsd-web@.service"] + "# edited\n"})
    assert write_units(*scope, changed) == ["pmsd-web@.service"]
    assert sorted(installed_units(*scope, "web")) == sorted(files)
    remove_units(*scope, installed_units(*scope, "web"))
    assert installed_units(*scope, "web") == []


def test_sockets_keeps_the_backslash_of_an_escaped_name() -> None:
    """Sockets= reads backslash escapes (Requires= and After= do not): `pmsd-p\\x20q.socket` is written with the
    backslash doubled, or systemd looks for pmsd-px20q.socket (issue 11 item 5)."""
    spec = make_spec(name="p q", exec_mode="cluster", instances=1, port="127.0.0.1:3000")
    lines = render_cluster_units(UnitInputs(spec, ENV_FILE), SYSTEMD_FLOOR)["pmsd-p\\x20q@.service"].splitlines()
    assert "Sockets=pmsd-p\\\\x20q.socket" in lines
    assert "Requires=pmsd-p\\x20q.socket" in lines


def test_a_gone_apps_leftovers_of_killed_commands_are_removed(tmp_path: Path) -> None:
    """A `pmsd start -i 2` or `scale` killed mid-way leaves a unit file's temporary and instance drop-ins; the
    app's deletion removes them, and nothing of another app (issue 19's fault matrix left them in /run)."""
    environ = {"XDG_RUNTIME_DIR": str(tmp_path)}
    directory = tmp_path / "systemd" / "user"
    directory.mkdir(parents=True)
    leftovers = ["pmsd-web@.service.4242.tmp", "pmsd-web@2.service.d/pmsd-logs.conf",
                 "pmsd-web@3.service.d/pmsd-logs.conf.99.tmp"]
    kept = ["pmsd-web2@.service.7.tmp", "pmsd-web2@0.service.d/pmsd-logs.conf", "pmsd-web@1.service.d/mine.conf"]
    for path in leftovers + kept:
        (directory / path).parent.mkdir(exist_ok=True)
        (directory / path).write_text("x")
    remove_leftovers(True, environ, "web", "pmsd-logs.conf")
    assert sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file()) == sorted(kept)
    assert not (directory / "pmsd-web@2.service.d").exists() and not (directory / "pmsd-web@3.service.d").exists()
