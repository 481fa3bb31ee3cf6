"""`pmsd reloadLogs`: god reopens the files it writes."""

from __future__ import annotations

import os

from pmsd.api.godlink import GodConnection
from pmsd.api.logpipes import god_written
from pmsd.context import Context
from pmsd.model.record import AppRecord
from pmsd.state.paths import socket_path


def reopen_log_files(ctx: Context) -> list[tuple[AppRecord, tuple[str, ...]]]:
    """Ask god to reopen every file it writes (after a rotation tool moved one, or it was removed); the apps
    whose files those are. When god is not running there is nothing open: it opens them when it starts."""
    written = [(record, files) for record in ctx.registry.read().apps if (files := god_written(ctx, record))]
    path = socket_path(ctx.user, ctx.environ)
    if written and os.path.exists(path):
        connection = GodConnection(path)
        try:
            connection.request("reloadLogs")
        finally:
            connection.close()
    return written
