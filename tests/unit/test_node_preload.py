"""pmsd/preload/node.js and the cluster-mode test apps, with socket activation emulated by hand.

No systemd here: the test binds a listening TCP socket itself (as a socket unit would), and a small launcher puts
it on fd 3, sets LISTEN_FDS/LISTEN_PID to its own pid and exec()s the app, so the app sees exactly what a unit
with `Sockets=` gives it. $NOTIFY_SOCKET is a datagram socket the test reads.
"""

from __future__ import annotations

import array
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

import pytest

from pmsd.definition.preload import NODE_PRELOAD

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not on PATH")

APPS = Path(__file__).resolve().parent.parent / "apps"
CLUSTER_HTTP = str(APPS / "cluster_http.js")
LISTEN_FDS_APP = str(APPS / "listen_fds.py")
TIMEOUT = 5.0

# Moves the sockets to fds 3, 4, ... (by way of high fds, so none is overwritten before it moved), announces
# them for *this* pid (kept across exec), then becomes the app.
LAUNCHER = """
import fcntl, os, sys
fds, listen_pid, program = [int(fd) for fd in sys.argv[1].split(",")], sys.argv[2], sys.argv[3:]
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
for fd in fds:
    os.close(fd)
for index, fd in enumerate(high):
    os.dup2(fd, 3 + index)
    os.close(fd)
names = ":".join(f"web{index}" for index in range(len(fds)))
os.environ.update(LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=names, LISTEN_PID=listen_pid or str(os.getpid()))
os.execv(program[0], program)
"""

# Reports what the preload did, as one JSON line: LISTEN_* left in its own and in a child's environment,
# process.send, and how three listen() calls went (a port number, or the error code).
PROBE = """
const net = require('net');
const { execFileSync } = require('child_process');
const listenKeys = () => Object.keys(process.env).filter((key) => key.startsWith('LISTEN_')).sort();
const childListenKeys = `JSON.stringify((${listenKeys})())`;
function listen(...args) {
  return new Promise((resolve) => {
    const server = net.createServer((connection) => connection.end(`${process.pid}\\n`));
    server.once('error', (error) => resolve(error.code));
    server.listen(...args, () => resolve(server.address().port));
  });
}
(async () => {
  const port = process.env.PORT;
  const report = {
    env: listenKeys(),
    childEnv: JSON.parse(execFileSync(process.execPath, ['-p', childListenKeys], { encoding: 'utf8' })),
    send: typeof process.send,
    other: await listen(0, '127.0.0.1'),
    main: await listen({ port, host: '0.0.0.0' }),
    again: await listen(Number(port), '127.0.0.1'),
  };
  report.sent = await new Promise((resolve) => {
    const returned = process.send('hello', (error) => resolve([returned, error]));
  });
  console.log(JSON.stringify(report));
  if (process.env.PROBE_READY === '1') process.send('ready');
})();
"""


class App:
    """A started app. Threads collect its output lines, so every wait on them has a deadline."""

    def __init__(self, argv: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = (),
                 stdin: int = subprocess.DEVNULL) -> None:
        self.proc = subprocess.Popen(argv, env=env, pass_fds=pass_fds, stdin=stdin,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        self.out: list[str] = []
        self.err: list[str] = []
        self._cursor = {"out": 0, "err": 0}
        self._changed = threading.Condition()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._pumps = [threading.Thread(target=self._pump, args=(stream, lines), daemon=True)
                       for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for pump in self._pumps:
            pump.start()

    def _pump(self, stream: IO[str], lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_line(self, fragment: str, stream: str = "out", timeout: float = TIMEOUT) -> str:
        """The next line (after the last one this returned) that contains `fragment`."""
        lines = self.out if stream == "out" else self.err
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(self._cursor[stream], len(lines)):
                    if fragment in lines[index]:
                        self._cursor[stream] = index + 1
                        return lines[index]
                self._cursor[stream] = len(lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"no line with {fragment!r} on std{stream} within {timeout} s; {self.describe()}")
                self._changed.wait(remaining)

    def finish(self, timeout: float = TIMEOUT) -> int:
        """Wait for the exit and the last output line; the exit status."""
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"pid {self.pid} still running after {timeout} s; {self.describe()}")
        for pump in self._pumps:
            pump.join(timeout)
        return status

    def describe(self) -> str:
        return f"stdout: {self.out}; stderr: {self.err}; exit status: {self.proc.poll()}"


class Start(Protocol):
    def __call__(self, program: list[str], sock: socket.socket | list[socket.socket] | None, listen_pid: str = "",
                 **env: str) -> App: ...


def make_listener() -> socket.socket:
    """A shared listening socket, as a socket unit holds it (systemd makes it non-blocking)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    return sock


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with make_listener() as sock:
        yield sock


@pytest.fixture
def second_listener() -> Iterator[socket.socket]:
    with make_listener() as sock:
        yield sock


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A stand-in for the manager's notification socket, in the abstract namespace: (socket, $NOTIFY_SOCKET)."""
    name = f"pmsd-test-notify-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    yield sock, "@" + name
    sock.close()


@pytest.fixture
def start() -> Iterator[Start]:
    """start(program argv, listener(s), **env) -> App, socket-activated with the listeners as fds 3, 4, ... (none:
    not socket-activated); apps still running at the end are killed."""
    started: list[App] = []

    def _start(program: list[str], sock: socket.socket | list[socket.socket] | None, listen_pid: str = "",
               **env: str) -> App:
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        socks = [] if sock is None else [sock] if isinstance(sock, socket.socket) else sock
        if not socks:
            app = App(program, {**base, **env})
        else:
            fds = tuple(each.fileno() for each in socks)
            argv = [sys.executable, "-c", LAUNCHER, ",".join(map(str, fds)), listen_pid, *program]
            app = App(argv, {**base, **env}, pass_fds=fds)
        started.append(app)
        return app

    yield _start
    for app in started:
        if app.proc.poll() is None:
            app.proc.kill()
            app.proc.wait(TIMEOUT)


def node_app(script: str) -> list[str]:
    assert NODE is not None
    return [NODE, "--require", NODE_PRELOAD, script]


def port_env(sock: socket.socket) -> dict[str, str]:
    port = str(sock.getsockname()[1])
    return {"PORT": port, "PMSD_LISTEN_PORT": port}


def connect(sock: socket.socket) -> socket.socket:
    return socket.create_connection(sock.getsockname(), timeout=TIMEOUT)


def get(conn: socket.socket) -> tuple[int, dict[str, str], str]:
    """Send GET / and read one response (status, lower-cased headers, body) by its Content-Length."""
    conn.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
    return read_response(conn)


def read_response(conn: socket.socket) -> tuple[int, dict[str, str], str]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        assert chunk, f"connection closed before a response; got {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
    while len(body) < int(headers["content-length"]):
        chunk = conn.recv(4096)
        assert chunk, f"connection closed inside the body; got {body!r}"
        body += chunk
    return int(status_line.split()[1]), headers, body.decode()


def assert_closed_by_peer(conn: socket.socket) -> None:
    assert conn.recv(4096) == b"", "expected the server to close the connection (a FIN, not a reset)"


def receive_notifications(sock: socket.socket, until: str, timeout: float = TIMEOUT) -> list[str]:
    """Datagrams on the notification socket up to one containing `until`.

    systemd-notify follows READY=1 with BARRIER=1 and the write end of a pipe, and waits until every copy is
    closed (the manager closes it once it has read the messages before): close the received fds, or
    systemd-notify waits 5 s and fails with "Failed to invoke barrier".
    """
    messages: list[str] = []
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            data, ancillary, _flags, _address = sock.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
        except TimeoutError:
            break
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                for fd in fds:
                    os.close(fd)
        messages.append(data.decode())
        if until in messages[-1]:
            return messages
    pytest.fail(f"no {until!r} on $NOTIFY_SOCKET within {timeout} s; received {messages}")


# ------------------------------------------------------------------------------------------------ node


def test_node_app_serves_on_the_inherited_socket(start: Start, listener: socket.socket) -> None:
    app = start(node_app(CLUSTER_HTTP), listener, TRACE="1", **port_env(listener))
    host, port = listener.getsockname()
    assert app.wait_line("listening").endswith(f" listening {host}:{port}")
    with connect(listener) as conn:  # keep-alive: several requests on one connection
        for _ in range(3):
            status, headers, body = get(conn)
            assert (status, body, headers["x-pid"]) == (200, f"{app.pid}\n", str(app.pid))
            assert headers.get("connection") != "close"
    with connect(listener) as conn:
        assert get(conn)[2] == f"{app.pid}\n"
    app.proc.send_signal(signal.SIGTERM)
    assert app.finish() == 0
    assert app.err == []


def test_node_preload_maps_only_the_announced_port(start: Start, listener: socket.socket, tmp_path: Path) -> None:
    probe = tmp_path / "probe.js"
    probe.write_text(PROBE)
    app = start(node_app(str(probe)), listener, **port_env(listener))
    report = json.loads(app.wait_line("{"))
    port = listener.getsockname()[1]
    assert report["env"] == [] and report["childEnv"] == [], "LISTEN_* must not reach the app or its children"
    assert report["send"] == "function"
    assert report["sent"] == [True, None], "process.send returns true and calls its callback"
    assert isinstance(report["other"], int) and report["other"] not in (0, port), "port 0 binds a port of its own"
    assert report["main"] == port, "listen(PORT) serves on the inherited fd (its host is ignored)"
    assert report["again"] == "EADDRINUSE", "the inherited fd is used once; a second listen(PORT) binds for real"
    with connect(listener) as conn:
        assert conn.recv(64) == f"{app.pid}\n".encode()
    assert app.err == []


def test_node_preload_ignores_fds_meant_for_another_process(start: Start, listener: socket.socket,
                                                            tmp_path: Path) -> None:
    probe = tmp_path / "probe.js"
    probe.write_text(PROBE)
    app = start(node_app(str(probe)), listener, listen_pid="1", **port_env(listener))
    report = json.loads(app.wait_line("{"))
    assert report["env"] == ["LISTEN_FDNAMES", "LISTEN_FDS", "LISTEN_PID"]
    assert report["main"] == "EADDRINUSE", "not ours: listen(PORT) must not touch fd 3"


@pytest.mark.skipif(shutil.which("systemd-notify") is None, reason="systemd-notify is not on PATH")
def test_node_process_send_ready_notifies_systemd(start: Start, listener: socket.socket,
                                                  notify_socket: tuple[socket.socket, str]) -> None:
    sock, address = notify_socket
    app = start(node_app(CLUSTER_HTTP), listener, READY_DELAY_MS="50", NOTIFY_SOCKET=address,
                     **port_env(listener))
    messages = receive_notifications(sock, until="BARRIER=1")
    assert messages[0] == "READY=1"
    app.proc.send_signal(signal.SIGTERM)
    assert app.finish() == 0


NEVER_READY = "console.log('up'); setInterval(() => {}, 1000);\n"


@pytest.mark.skipif(shutil.which("systemd-notify") is None, reason="systemd-notify is not on PATH")
def test_node_wait_ready_app_that_never_says_ready_is_ready_after_listen_timeout(
        start: Start, tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    """PM2 calls a wait_ready app online after listen_timeout even without process.send('ready')."""
    sock, address = notify_socket
    (tmp_path / "never.js").write_text(NEVER_READY)
    began = time.monotonic()
    app = start(node_app(str(tmp_path / "never.js")), None, PMSD_READY_AFTER_MS="300", NOTIFY_SOCKET=address)
    app.wait_line("up")
    assert receive_notifications(sock, until="BARRIER=1")[0] == "READY=1"
    assert time.monotonic() - began >= 0.3
    app.proc.send_signal(signal.SIGTERM)
    app.finish()


@pytest.mark.skipif(shutil.which("systemd-notify") is None, reason="systemd-notify is not on PATH")
def test_node_wait_ready_app_that_says_ready_notifies_once(start: Start, listener: socket.socket,
                                                           notify_socket: tuple[socket.socket, str]) -> None:
    sock, address = notify_socket
    app = start(node_app(CLUSTER_HTTP), listener, READY_DELAY_MS="50", PMSD_READY_AFTER_MS="400",
                NOTIFY_SOCKET=address, **port_env(listener))
    assert receive_notifications(sock, until="BARRIER=1")[0] == "READY=1"
    sock.settimeout(0.8)  # past the 400 ms timer: nothing more arrives
    with pytest.raises(TimeoutError):
        sock.recv(4096)
    app.proc.send_signal(signal.SIGTERM)
    assert app.finish() == 0


def test_node_process_send_ready_without_systemd_notify(start: Start, listener: socket.socket, tmp_path: Path,
                                                        notify_socket: tuple[socket.socket, str]) -> None:
    probe = tmp_path / "probe.js"
    probe.write_text(PROBE)
    app = start(node_app(str(probe)), listener, PROBE_READY="1", NOTIFY_SOCKET=notify_socket[1],
                     PATH=str(tmp_path), **port_env(listener))
    app.wait_line("{")
    app.wait_line("systemd-notify is not on PATH", stream="err")
    assert len(app.err) == 1, app.err


def test_node_app_sigint_answers_the_request_in_flight(start: Start, listener: socket.socket) -> None:
    app = start(node_app(CLUSTER_HTTP), listener, TRACE="1", RESPONSE_DELAY_MS="400", **port_env(listener))
    app.wait_line("listening")
    with connect(listener) as idle, connect(listener) as busy:
        assert get(idle)[0] == 200  # leaves a keep-alive connection with nothing in flight
        app.wait_line("request")
        busy.sendall(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        app.wait_line("request GET /slow")
        app.proc.send_signal(signal.SIGINT)
        app.wait_line("shutdown SIGINT")
        assert_closed_by_peer(idle)
        status, headers, body = read_response(busy)
        assert (status, body, headers["connection"]) == (200, f"{app.pid}\n", "close")
        assert_closed_by_peer(busy)
    assert app.finish() == 0
    assert app.err == []


# Two servers in one process, each on one of two shared ports, with listen() called the way FORM says. Each
# server answers a connection with its name; the report gives the port each one ended up on and whether the
# listen callback ran.
TWO_SERVERS = """
const net = require('net');
const form = process.env.FORM;
function serve(name, port) {
  return new Promise((resolve) => {
    const server = net.createServer((connection) => connection.end(`${name}\\n`));
    server.once('error', (error) => resolve({ error: error.code }));
    let called = false;
    server.once('listening', () => setImmediate(() => resolve({ port: server.address().port, called })));
    const callback = () => { called = true; };
    if (form === 'port') server.listen(Number(port));
    else if (form === 'port_host') server.listen(Number(port), '0.0.0.0');
    else if (form === 'options') server.listen({ port: Number(port), host: '::', backlog: 8 });
    else if (form === 'port_callback') server.listen(Number(port), callback);
    else if (form === 'string') server.listen(String(port));
    else if (form === 'string_options') server.listen({ port: String(port) }, callback);
    else throw new Error(`unknown FORM ${form}`);
  });
}
(async () => {
  // The second port first: the fd is chosen by the port, not by the order of the listen() calls.
  const b = await serve('b', process.env.PORT_B);
  const a = await serve('a', process.env.PORT_A);
  const again = await serve('again', process.env.PORT_A);
  console.log(JSON.stringify({ a, b, again }));
})();
"""


@pytest.mark.parametrize("form", ["port", "port_host", "options", "port_callback", "string", "string_options"])
def test_node_preload_serves_several_ports_each_on_its_own_fd(
        start: Start, listener: socket.socket, second_listener: socket.socket, tmp_path: Path, form: str) -> None:
    script = tmp_path / "two_servers.js"
    script.write_text(TWO_SERVERS)
    port_a, port_b = listener.getsockname()[1], second_listener.getsockname()[1]
    app = start(node_app(str(script)), [listener, second_listener], FORM=form, PORT_A=str(port_a),
                PORT_B=str(port_b), PMSD_LISTEN_PORTS=f"{port_a},{port_b}")
    report = json.loads(app.wait_line("{"))
    called = form in ("port_callback", "string_options")
    assert report["a"] == {"port": port_a, "called": called}, "port a serves on fd 3"
    assert report["b"] == {"port": port_b, "called": called}, "port b serves on fd 4"
    assert report["again"] == {"error": "EADDRINUSE"}, "each fd once: a second listen(a) binds for real"
    for sock, name in ((listener, b"a\n"), (second_listener, b"b\n")):
        with connect(sock) as conn:
            assert conn.recv(64) == name
    assert app.err == []


def test_node_preload_reads_the_ports_in_fd_order(start: Start, listener: socket.socket,
                                                  second_listener: socket.socket, tmp_path: Path) -> None:
    script = tmp_path / "two_servers.js"
    script.write_text(TWO_SERVERS)
    port_a, port_b = listener.getsockname()[1], second_listener.getsockname()[1]
    # fd 3 is the second listener here, and PMSD_LISTEN_PORTS says so.
    app = start(node_app(str(script)), [second_listener, listener], FORM="port", PORT_A=str(port_a),
                PORT_B=str(port_b), PMSD_LISTEN_PORTS=f"{port_b}, {port_a}")
    report = json.loads(app.wait_line("{"))
    assert (report["a"]["port"], report["b"]["port"]) == (port_a, port_b)
    for sock, name in ((listener, b"a\n"), (second_listener, b"b\n")):
        with connect(sock) as conn:
            assert conn.recv(64) == name
    assert app.err == []


def test_node_preload_warns_when_the_ports_and_fds_disagree(start: Start, listener: socket.socket,
                                                            tmp_path: Path) -> None:
    script = tmp_path / "two_servers.js"
    script.write_text(TWO_SERVERS)
    port_a = listener.getsockname()[1]
    port_b = free_ports(1)[0]
    app = start(node_app(str(script)), listener, FORM="port", PORT_A=str(port_a), PORT_B=str(port_b),
                PMSD_LISTEN_PORTS=f"{port_a},{port_b}")
    report = json.loads(app.wait_line("{"))
    assert report["a"]["port"] == port_a
    assert report["b"]["port"] == port_b, "a named port without an fd is bound for real"
    assert app.err == [f"pmsd: PMSD_LISTEN_PORTS={port_a},{port_b} names 2 port(s) but systemd passed 1 socket(s)"]


# ------------------------------------------------------------------------------------- port discovery


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on right now (the kernel's pick), distinct."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def assert_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", port))  # fails with EADDRINUSE if anything, on any address, holds it


# An app whose ports pmsd does not know (LOW, HIGH), plus a shared one (PORT, if set), a port 0 and a path.
# It opens them all in one go, and reports where each server listens.
DISCOVERY = """
const net = require('net');
const path = require('path');
function serve(...args) {
  const server = net.createServer((connection) => connection.end(`${process.pid}\\n`));
  return new Promise((resolve) => {
    server.once('error', (error) => resolve(error.code));
    server.listen(...args, () => resolve(server.address()));
  });
}
const low = Number(process.env.LOW);
const high = Number(process.env.HIGH);
const servers = {
  high: serve(high),                                 // reported second, sorted first
  low: serve({ port: String(low), host: '127.0.0.1' }),
  lowAgain: serve(low, '127.0.0.1'),                  // the same port again: reported once
  zero: serve(0, '127.0.0.1'),
  pipe: serve(path.join(process.env.DIR, 'app.sock')),
};
if (process.env.PORT) servers.shared = serve(Number(process.env.PORT));
(async () => {
  const report = { env: Object.keys(process.env).filter((key) => key.startsWith('PMSD_')).sort() };
  for (const [name, promise] of Object.entries(servers)) report[name] = await promise;
  console.log(JSON.stringify(report));
})();
"""


def discovery_app(tmp_path: Path) -> list[str]:
    script = tmp_path / "discovery.js"
    script.write_text(DISCOVERY)
    return node_app(str(script))


def discovery_line(port: int) -> str:
    return (f"pmsd: port {port} is not yet one of this app's shared ports; pmsd will hand it over "
            "(listening on an ephemeral port meanwhile)")


@pytest.mark.skipif(shutil.which("systemd-notify") is None, reason="systemd-notify is not on PATH")
def test_node_preload_discovers_ports_and_reports_them(start: Start, listener: socket.socket, tmp_path: Path,
                                                       notify_socket: tuple[socket.socket, str]) -> None:
    sock, address = notify_socket
    low, high = sorted(free_ports(2))
    shared = listener.getsockname()[1]
    app = start(discovery_app(tmp_path), listener, LOW=str(low), HIGH=str(high), DIR=str(tmp_path),
                PORT=str(shared), PMSD_LISTEN_PORTS=str(shared), PMSD_DISCOVER_PORTS="1", NOTIFY_SOCKET=address)
    report = json.loads(app.wait_line("{"))
    # The whole set, ascending, in one STATUS= (the listens came in one tick); then systemd-notify's barrier.
    messages = receive_notifications(sock, until="STATUS=")
    assert messages == [f"STATUS=pmsd-ports: {low} {high}"]
    assert receive_notifications(sock, until="BARRIER=1") == ["BARRIER=1"]
    assert report["env"] == ["PMSD_LISTEN_PORTS"], "PMSD_DISCOVER_PORTS is for this process, not its children"
    for name in ("low", "lowAgain", "high"):
        assert report[name]["port"] not in (0, low, high, shared), f"{name}: an ephemeral port instead"
    assert report["low"]["address"] == report["lowAgain"]["address"] == "127.0.0.1", "the host is kept"
    assert report["shared"]["port"] == shared, "a shared port still serves on its fd"
    assert report["zero"]["port"] not in (0, low, high, shared)
    assert report["pipe"] == str(tmp_path / "app.sock"), "paths are not touched"
    assert_port_free(low)
    assert_port_free(high)
    with socket.create_connection(("127.0.0.1", report["low"]["port"]), timeout=TIMEOUT) as conn:
        assert conn.recv(64) == f"{app.pid}\n".encode(), "the app serves on the ephemeral port meanwhile"
    with connect(listener) as conn:
        assert conn.recv(64) == f"{app.pid}\n".encode()
    assert sorted(app.err) == sorted([discovery_line(low), discovery_line(high)])


@pytest.mark.skipif(shutil.which("systemd-notify") is None, reason="systemd-notify is not on PATH")
def test_node_preload_reports_every_port_found_so_far(start: Start, tmp_path: Path,
                                                      notify_socket: tuple[socket.socket, str]) -> None:
    sock, address = notify_socket
    first, second = free_ports(2)
    script = tmp_path / "later.js"
    # A second server opened later (once the first report went out): the new STATUS= holds both ports.
    script.write_text("""
const net = require('net');
net.createServer().listen(Number(process.env.FIRST), () => console.log('first'));
process.stdin.once('data', () => net.createServer().listen(Number(process.env.SECOND), () => console.log('second')));
""")
    assert NODE is not None
    app = App([NODE, "--require", NODE_PRELOAD, str(script)],
              {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "FIRST": str(first), "SECOND": str(second),
               "PMSD_DISCOVER_PORTS": "1", "NOTIFY_SOCKET": address}, stdin=subprocess.PIPE)
    try:
        app.wait_line("first")
        assert receive_notifications(sock, until="BARRIER=1") == [f"STATUS=pmsd-ports: {first}", "BARRIER=1"]
        assert app.proc.stdin is not None
        app.proc.stdin.write("go\n")
        app.proc.stdin.flush()
        app.wait_line("second")
        expected = f"STATUS=pmsd-ports: {min(first, second)} {max(first, second)}"
        assert receive_notifications(sock, until="BARRIER=1") == [expected, "BARRIER=1"]
    finally:
        app.proc.kill()
        app.finish()


def test_node_preload_without_discovery_binds_the_port(start: Start, tmp_path: Path,
                                                       notify_socket: tuple[socket.socket, str]) -> None:
    low, high = free_ports(2)
    app = start(discovery_app(tmp_path), None, LOW=str(low), HIGH=str(high), DIR=str(tmp_path),
                NOTIFY_SOCKET=notify_socket[1])
    report = json.loads(app.wait_line("{"))
    assert (report["low"]["port"], report["lowAgain"], report["high"]["port"]) == (low, "EADDRINUSE", high)
    assert app.err == []


def test_node_preload_discovery_without_notify_socket_binds_the_port(start: Start, tmp_path: Path) -> None:
    low, high = free_ports(2)
    app = start(discovery_app(tmp_path), None, LOW=str(low), HIGH=str(high), DIR=str(tmp_path),
                PMSD_DISCOVER_PORTS="1")
    report = json.loads(app.wait_line("{"))
    assert (report["low"]["port"], report["high"]["port"]) == (low, high), "nobody to tell: plain node's bind"
    assert app.err == [f"pmsd: PMSD_DISCOVER_PORTS=1 but NOTIFY_SOCKET is not set: port {high} (and any other) "
                       "is bound directly, not reported"]


def test_node_preload_discovery_without_systemd_notify(start: Start, tmp_path: Path,
                                                       notify_socket: tuple[socket.socket, str]) -> None:
    low, high = free_ports(2)
    app = start(discovery_app(tmp_path), None, LOW=str(low), HIGH=str(high), DIR=str(tmp_path),
                PMSD_DISCOVER_PORTS="1", NOTIFY_SOCKET=notify_socket[1], PATH=str(tmp_path))
    report = json.loads(app.wait_line("{"))
    assert report["low"]["port"] not in (low, high)
    app.wait_line("systemd-notify is not on PATH; cannot tell systemd which ports this app listens on", "err")
    assert len(app.err) == 3, app.err  # the two discovery lines and one failure


# ----------------------------------------------------------------------------------- shutdown_with_message


# LISTENERS: which listeners the app adds: 'message' (exits by itself 50 ms after 'shutdown'), 'sigint'
# (prints and exits 3, unless it also listens for messages).
SHUTDOWN_APP = """
const listeners = (process.env.LISTENERS || '').split(',');
if (listeners.includes('message')) {
  process.on('message', (message) => {
    console.log(`message ${message}`);
    setTimeout(() => process.exit(0), 50);
  });
}
if (listeners.includes('sigint')) {
  process.on('SIGINT', (signal) => {
    console.log(`handler ${signal}`);
    if (!listeners.includes('message')) process.exit(3);
  });
}
setInterval(() => {}, 1000);
console.log('up');
"""


@pytest.mark.parametrize(("option", "listeners", "lines", "status"), [
    ("1", "message", ["message shutdown"], 0),                            # PM2's message; the app exits
    ("1", "message,sigint", ["message shutdown", "handler SIGINT"], 0),    # both, the message first
    ("1", "", [], -signal.SIGINT),                                         # no message listener: the signal
    ("1", "sigint", ["handler SIGINT"], 3),                                # ... and the app's own handler, once
    ("", "message", [], -signal.SIGINT),                                   # without the option: unchanged
    ("", "message,sigint", ["handler SIGINT"], 0),
])
def test_node_preload_shutdown_with_message(start: Start, tmp_path: Path, option: str, listeners: str,
                                            lines: list[str], status: int) -> None:
    script = tmp_path / "shutdown.js"
    script.write_text(SHUTDOWN_APP)
    env = {"LISTENERS": listeners}
    if option:
        env["PMSD_SHUTDOWN_WITH_MESSAGE"] = option
    app = start(node_app(str(script)), None, **env)
    app.wait_line("up")
    app.proc.send_signal(signal.SIGINT)
    if listeners == "message,sigint" and not option:
        # Without the option nothing turns SIGINT into the message: the handler runs, the app keeps going.
        app.wait_line("handler SIGINT")
        app.proc.terminate()
        assert app.finish() == -signal.SIGTERM
        assert app.out == ["up", "handler SIGINT"]
        return
    assert app.finish() == status
    assert app.out == ["up", *lines]
    assert app.err == []


# ---------------------------------------------------------------------------------------- the app's view

VIEW = """
console.log(JSON.stringify({
  filename: __filename,
  dirname: __dirname,
  paths: module.paths,
  isMain: require.main === module,
  mainFilename: require.main.filename,
  parent: module.parent === null ? null : String(module.parent),
  cache: Object.keys(require.cache),
  cwd: process.cwd(),
  argv: process.argv.slice(1),
  argv0: process.argv0,
  execArgv: process.execArgv,
  pwd: process.env.PWD,
  env: Object.keys(process.env).sort(),
  send: typeof process.send,
}));
"""


@pytest.mark.parametrize("pmsd_env", [False, True])
def test_node_preload_leaves_the_apps_view_of_itself(tmp_path: Path, pmsd_env: bool) -> None:
    assert NODE is not None
    (tmp_path / "view.js").write_text(VIEW)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PWD": str(tmp_path)}
    if pmsd_env:  # a cluster app's variables, without sockets: nothing here may change what the app sees
        env.update(PMSD_LISTEN_PORTS="3000", PMSD_DISCOVER_PORTS="1", PMSD_SHUTDOWN_WITH_MESSAGE="1",
                   PMSD_READY_AFTER_MS="60000")

    def view(*node_args: str) -> dict[str, Any]:
        result = subprocess.run([NODE, *node_args, "view.js", "one", "--two"], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=TIMEOUT, check=True)
        assert result.stderr == ""
        return dict(json.loads(result.stdout))

    plain, preloaded = view(), view("--require", NODE_PRELOAD)
    # The differences, and the only ones: node's own flags, and the process.send pmsd gives apps without PM2's
    # IPC channel (wait_ready); the switches the preload keeps from children.
    assert (plain.pop("execArgv"), preloaded.pop("execArgv")) == ([], ["--require", NODE_PRELOAD])
    assert (plain.pop("send"), preloaded.pop("send")) == ("undefined", "function")
    if pmsd_env:
        assert set(plain.pop("env")) - set(preloaded.pop("env")) == {
            "PMSD_DISCOVER_PORTS", "PMSD_SHUTDOWN_WITH_MESSAGE", "PMSD_READY_AFTER_MS"}
    assert preloaded == plain
    assert plain["filename"] == str(tmp_path / "view.js") and plain["isMain"] is True
    assert plain["argv"] == [str(tmp_path / "view.js"), "one", "--two"] and plain["pwd"] == str(tmp_path)
    assert plain["cache"] == [str(tmp_path / "view.js")] and plain["parent"] is None


# ---------------------------------------------------------------------------------------------- python


def python_app() -> list[str]:
    return [sys.executable, LISTEN_FDS_APP]


def test_python_app_serves_and_notifies(start: Start, listener: socket.socket,
                                        notify_socket: tuple[socket.socket, str]) -> None:
    sock, address = notify_socket
    app = start(python_app(), listener, TRACE="1", READY_DELAY_MS="50", NOTIFY_SOCKET=address)
    assert receive_notifications(sock, until="READY=1") == ["READY=1"]
    for _ in range(2):
        with connect(listener) as conn:
            status, headers, body = get(conn)
            assert (status, body, headers["x-pid"], headers["connection"]) == (200, f"{app.pid}\n", str(app.pid),
                                                                             "close")
            assert_closed_by_peer(conn)
    app.proc.send_signal(signal.SIGINT)
    assert app.finish() == 0
    assert app.err == []


def test_python_app_sigterm_finishes_held_connections(start: Start, listener: socket.socket) -> None:
    app = start(python_app(), listener, TRACE="1")
    app.wait_line("listening")
    with connect(listener) as held:
        held.sendall(b"GET / HTTP/1.1\r\n")  # half a request: the app holds the connection, waiting for more
        app.wait_line("accepted")
        app.proc.send_signal(signal.SIGTERM)
        app.wait_line("shutdown SIGTERM")
        with connect(listener):  # queued in the shared socket's backlog for other instances, not accepted
            held.sendall(b"Host: test\r\n\r\n")
            status, _headers, body = read_response(held)
            assert (status, body) == (200, f"{app.pid}\n")
            assert app.finish() == 0
    assert not any("accepted" in line for line in app.out[app.out.index(f"listen_fds {app.pid} shutdown SIGTERM"):])
    assert app.err == []


def test_python_app_without_listen_fds_exits_2(start: Start) -> None:
    app = start(python_app(), None)
    assert app.finish() == 2
    assert app.out == [] and len(app.err) == 1 and "no socket passed in" in app.err[0], app.describe()
