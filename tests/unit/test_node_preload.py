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
from typing import IO, Protocol

import pytest

from pmsd.definition.preload import NODE_PRELOAD

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not on PATH")

APPS = Path(__file__).resolve().parent.parent / "apps"
CLUSTER_HTTP = str(APPS / "cluster_http.js")
LISTEN_FDS_APP = str(APPS / "listen_fds.py")
TIMEOUT = 5.0

# Moves the socket to fd 3, announces it for *this* pid (kept across exec), then becomes the app.
LAUNCHER = """
import os, sys
fd, listen_pid, program = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_FDS="1", LISTEN_FDNAMES="web", LISTEN_PID=listen_pid or str(os.getpid()))
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

    def __init__(self, argv: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = ()) -> None:
        self.proc = subprocess.Popen(argv, env=env, pass_fds=pass_fds, stdin=subprocess.DEVNULL,
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
    def __call__(self, program: list[str], sock: socket.socket | None, listen_pid: str = "", **env: str) -> App: ...


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """The shared listening socket, as a socket unit holds it (systemd makes it non-blocking)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    yield sock
    sock.close()


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
    """start(program argv, listener, **env) -> App, socket-activated; apps still running at the end are killed."""
    started: list[App] = []

    def _start(program: list[str], sock: socket.socket | None, listen_pid: str = "", **env: str) -> App:
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        if sock is None:
            app = App(program, {**base, **env})
        else:
            argv = [sys.executable, "-c", LAUNCHER, str(sock.fileno()), listen_pid, *program]
            app = App(argv, {**base, **env}, pass_fds=(sock.fileno(),))
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
