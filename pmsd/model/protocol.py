"""god's local API: newline-delimited JSON over a Unix stream socket (0600, owner only).

Requests   {"id": 1, "method": "ping" | "list" | "status" | "subscribe" | "reloadLogs" | "run", "params": {...}}
Replies    {"id": 1, "result": ...}  or  {"id": 1, "error": {"message": "...", "hint": "...", "status": 2}}
Events     {"event": {...}}           (after "subscribe", one per line, as they happen)

Methods:
  ping       -> {"pong": true, "pid": int, "version": str, "started_at": ms, "apps": int, "state_dir": str,
                 "systemd": int}
  list       -> [process, ...]: each as `pmsd jlist` prints it, with god's counters
  status     -> {"state_dir": str, "fields": [name, ...], "rows": {"<pm_id>": [value, ...], ...}}: each app's
                runtime state (pmsd.model.status.runtime_row: values in the order of "fields"), which `pmsd ls`
                and `jlist` pair with the records of the registry in state_dir (a client with another state
                directory, or that knows other fields, asks systemd itself)
  reloadLogs -> {"reopened": true}: the log files god writes are reopened
  subscribe  -> {"subscribed": true}; then events (see pmsd.model.events.Event.to_json)
  run        params {"argv": [...], "cwd": str, "env": {...}, "umask": int, "encoding": str, "version": str,
                     "package": str, "mounts": str (the caller's mount namespace)},
             sent with the caller's stdin, stdout and stderr (SCM_RIGHTS):
             -> {"pid": int}, the process god forked to run `pmsd <argv>` as the caller (pmsd.god.runner), then
                a second reply to the same id, {"exit": int}, once it has ended (its exit status; -N: signal N).
                An error when god declines (the caller then runs the command itself).

An error's "status" is the exit status pmsd gives it (pmsd.errors.ExitStatus): 2 (usage) for an unknown
method, a line that is not a JSON object or one that is too long; 5 (permission) for a peer refused; otherwise
the status of the failure behind it. "hint" is left out when there is none. An error that answers no request
(a refusal, a line that could not be read) has "id": null.

Peers whose uid is not the daemon's are refused with an error line (status 5), then disconnected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict

from pmsd.errors import ExitStatus

METHODS: tuple[str, ...] = ("ping", "list", "status", "subscribe", "reloadLogs", "run")
MAX_LINE = 1 << 20  # a request longer than this is not one pmsd would send

RequestId = int | None  # a reply's "id" is its request's; null when it answers none


class PingResult(TypedDict):
    pong: bool
    pid: int
    version: str
    started_at: int
    apps: int
    state_dir: str
    systemd: int


ListResult = list[dict[str, Any]]  # processes in the `pmsd jlist` shape (pmsd.render.jlist)


class StatusResult(TypedDict):
    state_dir: str
    fields: Sequence[str]  # what each row's values are, in order (pmsd.model.status.RUNTIME_FIELDS)
    rows: dict[str, list[Any]]  # pm_id (a string, as JSON keys are) -> runtime row


class StatusReply(TypedDict):
    id: RequestId
    result: StatusResult


class SubscribeResult(TypedDict):
    subscribed: bool


class ErrorBody(TypedDict):
    message: str
    hint: NotRequired[str]
    status: int  # an ExitStatus


class PingReply(TypedDict):
    id: RequestId
    result: PingResult


class ListReply(TypedDict):
    id: RequestId
    result: ListResult


class SubscribeReply(TypedDict):
    id: RequestId
    result: SubscribeResult


class ErrorReply(TypedDict):
    id: RequestId
    error: ErrorBody


class ReopenedReply(TypedDict):
    id: RequestId
    result: dict[str, bool]


class RunReply(TypedDict):
    id: RequestId
    result: dict[str, int]  # {"pid": ...} when the command starts, {"exit": ...} when it has ended


Reply = PingReply | ListReply | StatusReply | SubscribeReply | ReopenedReply | RunReply | ErrorReply


class EventMessage(TypedDict):
    event: dict[str, Any]  # pmsd.model.events.Event.to_json()


def encode(message: Mapping[str, object]) -> bytes:
    # No cycle check: messages are built fresh from plain values (10% of a 1,000-app status reply's encoding)
    return json.dumps(message, separators=(",", ":"), check_circular=False).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    value = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError("a message must be a JSON object")
    return value


def error_reply(request_id: RequestId, message: str, hint: str = "",
                status: ExitStatus = ExitStatus.ERROR) -> ErrorReply:
    body: ErrorBody = {"message": message, "status": int(status)}
    if hint:
        body["hint"] = hint
    return {"id": request_id, "error": body}


def error_status(body: Mapping[str, object]) -> ExitStatus:
    """The exit status an error reply carries; ERROR when it has none pmsd knows (a god older than this)."""
    status = body.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or status == ExitStatus.OK:
        return ExitStatus.ERROR
    try:
        return ExitStatus(status)
    except ValueError:
        return ExitStatus.ERROR
