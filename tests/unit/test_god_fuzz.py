"""Hostile input to god's socket (issue 19), without systemd: arbitrary bytes and arbitrary `run` requests never
raise in god, never leave it unable to answer, and a `run` request is declined unless every field is right."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmsd.context import Context
from pmsd.god.handlers import ApiHandlers
from pmsd.god.loop import Loop
from pmsd.god.runner import CommandRunner
from pmsd.model.protocol import decode, encode
from tests.unit.helpers import fuzz_examples
from tests.unit.test_god_parts import _serving

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                max_size=4), max_leaves=12)
RUN_KEYS = ("argv", "cwd", "env", "umask", "encoding", "version", "package", "mounts")

RUNNER = CommandRunner(Loop(), lambda _line: None, user=True)


@settings(max_examples=fuzz_examples(300), deadline=None)
@given(st.dictionaries(st.sampled_from(RUN_KEYS) | st.text(max_size=8), JSON, max_size=8),
       st.lists(st.integers(min_value=0, max_value=2), max_size=4))
def test_a_run_request_of_any_shape_is_declined_without_raising(params: dict[str, Any], fds: list[int]) -> None:
    refusal = RUNNER.refusal(params, fds)
    # Only the right version and installation of pmsd can be run for; a random one never is.
    assert isinstance(refusal, str) and refusal


@settings(max_examples=fuzz_examples(60), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=5))
def test_any_bytes_leave_god_answering(tmp_path: Path, chunks: list[bytes]) -> None:
    path = str(tmp_path / "run" / "god.sock")
    ctx = Context(user=True, environ={"PMSD_GOD_SOCKET": path}, state_dir=str(tmp_path / "state"))
    with _serving(path, ApiHandlers(ctx, {}, {}, lambda: None, runner=RUNNER)):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as hostile:
            hostile.settimeout(5)
            hostile.connect(path)
            for chunk in chunks:
                try:
                    hostile.sendall(chunk + b"\n")
                except OSError:
                    break  # god closed it (a line that was too long): allowed
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(5)
            client.connect(path)
            client.sendall(encode({"id": 1, "method": "run", "params": {"argv": ["start", "x.py"]}}))
            with client.makefile("rb") as reader:
                reply = decode(reader.readline())
    assert reply["id"] == 1 and "not run by god" in reply["error"]["message"]


def test_slow_and_stalled_clients_do_not_hold_up_the_others(tmp_path: Path) -> None:
    """Clients that trickle a request a byte at a time, stop half-way through a line, or never read a large
    reply: god serves the others meanwhile (one thread, non-blocking sockets), each within a second."""
    import time

    path = str(tmp_path / "god.sock")
    big = "x" * (4 << 20)  # more than a Unix socket buffer: the reader that never reads holds it in god

    def handler(_connection: Any, request: dict[str, Any]) -> dict[str, Any]:
        return {"id": request.get("id"), "result": big if request.get("method") == "big" else "pong"}

    with _serving(path, handler):
        stalled = []
        for first_bytes in (b'{"id": 1, "meth', encode({"id": 2, "method": "big"}), b""):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            sock.sendall(first_bytes)
            stalled.append(sock)
        trickle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        trickle.connect(path)
        stalled.append(trickle)
        try:
            for index, byte in enumerate(encode({"id": 3, "method": "ping"})):
                trickle.send(bytes([byte]))
                if index % 7 == 0:  # god answers another client between the trickle's bytes
                    started = time.monotonic()
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                        client.settimeout(5)
                        client.connect(path)
                        client.sendall(encode({"id": 4, "method": "ping"}))
                        with client.makefile("rb") as reader:
                            assert decode(reader.readline()) == {"id": 4, "result": "pong"}
                    assert time.monotonic() - started < 1
            trickle.settimeout(5)
            with trickle.makefile("rb") as reader:
                assert decode(reader.readline()) == {"id": 3, "result": "pong"}
        finally:
            for sock in stalled:
                sock.close()
