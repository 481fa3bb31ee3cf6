"""One connection to god's socket (the wire format is pmsd.model.protocol). Light on purpose: `pmsd ls` asks god
through it, and must not import what starting or stopping apps needs (pmsd.api.client adds that)."""

from __future__ import annotations

import contextlib
import errno
import json
import socket
from typing import Any

from pmsd.errors import ExitStatus, PmsdError
from pmsd.model.protocol import encode, error_status


class GodConnection:
    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._sock = self._connect()
        self._reader = self._sock.makefile("rb")
        self._next_id = 0

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError as error:
            sock.close()
            if error.errno in (errno.EACCES, errno.EPERM):
                raise PmsdError(f"permission denied connecting to pmsd's god at {self.path}",
                                "god only serves its owner: run pmsd as the user who owns it",
                                ExitStatus.PERMISSION) from None
            raise PmsdError(f"pmsd's god is not running ({self.path}: {error.strerror})",
                            "`pmsd ping` starts it") from None
        return sock

    def request(self, method: str, **params: Any) -> Any:
        self.ask(method, **params)
        return self.answer()

    def ask(self, method: str, **params: Any) -> None:
        """Send a request; answer() reads its reply (the caller may do other work while god prepares it)."""
        self._next_id += 1
        self._sock.sendall(encode({"id": self._next_id, "method": method, "params": params}))

    def answer(self) -> Any:
        """The result of the request sent last (events that come first are skipped)."""
        while True:
            message = self._read()
            if "event" in message:
                continue
            if "error" in message:
                error = message["error"]
                raise PmsdError(f"god: {error.get('message')}", error.get("hint") or None, error_status(error))
            return message.get("result")

    def _read(self) -> dict[str, Any]:
        line = self._reader.readline()
        if not line:
            raise PmsdError("pmsd's god closed the connection", "it may have been stopped; `pmsd ping` starts it")
        value = json.loads(line)
        if not isinstance(value, dict):
            raise PmsdError(f"god sent something that is not a message: {line[:80]!r}")
        return value

    def close(self) -> None:
        # shutdown() first: it wakes a thread blocked reading events, which holds the reader's lock.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._reader.close()
        self._sock.close()
