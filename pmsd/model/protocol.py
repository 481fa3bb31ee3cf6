"""god's local API: newline-delimited JSON over a Unix stream socket (0600, owner only).

Requests   {"id": 1, "method": "ping" | "list" | "subscribe", "params": {...}}
Replies    {"id": 1, "result": ...}  or  {"id": 1, "error": {"message": "...", "hint": "..."}}
Events     {"event": {...}}           (after "subscribe", one per line, as they happen)

Methods:
  ping       -> {"pong": true, "pid": int, "version": str, "started_at": ms, "apps": int, "state_dir": str,
                 "systemd": int}
  list       -> [process, ...]: each as `pmsd jlist` prints it, with god's counters
  subscribe  -> {"subscribed": true}; then events (see pmsd.model.events.Event.to_json)

Peers whose uid is not the daemon's are refused with an error line, then disconnected.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypedDict

Method = Literal["ping", "list", "subscribe"]
METHODS: tuple[str, ...] = ("ping", "list", "subscribe")
MAX_LINE = 1 << 20  # a request longer than this is not one pmsd would send


class Request(TypedDict, total=False):
    id: int
    method: str
    params: dict[str, Any]


class ErrorBody(TypedDict, total=False):
    message: str
    hint: str


class PingResult(TypedDict):
    pong: bool
    pid: int
    version: str
    started_at: int
    apps: int
    state_dir: str
    systemd: int


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    value = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError("a message must be a JSON object")
    return value


def error_reply(request_id: object, message: str, hint: str = "") -> dict[str, Any]:
    body: ErrorBody = {"message": message}
    if hint:
        body["hint"] = hint
    return {"id": request_id, "error": body}
