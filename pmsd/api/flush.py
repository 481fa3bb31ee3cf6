"""`pmsd flush`: empty apps' log files, and start `pmsd logs` after now for apps that log to the journal.

A file of an app that runs as another user is emptied with that user's rights (pmsd.linux.asuser): the user
controls the file's directory, so root opening it would truncate whatever a swapped-in symlink names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pmsd.api.logs import sources_for
from pmsd.api.targets import resolve_targets
from pmsd.context import Context
from pmsd.definition.environment import runs_as_another_user
from pmsd.linux.asuser import identity_of, open_as
from pmsd.model.record import AppRecord, now_ms


@dataclass(frozen=True)
class Flushed:
    record: AppRecord
    path: str | None  # the file emptied; None: the journal (`pmsd logs` now starts after this point)


def flush(ctx: Context, target: str | None = None) -> list[Flushed]:
    resolve_targets(ctx.registry.read(), target or "all")  # an unknown target is refused before any effect
    done: list[Flushed] = []
    with ctx.registry.transaction() as data:
        for record in resolve_targets(data, target or "all"):
            spec = record.log_spec
            # PM2's log_file next to out_file/error_file: the combined file god writes (pmsd.god.logwriter).
            combined = [spec.log_file] if spec.log_file and (spec.out_file or spec.error_file) else []
            for path in combined:
                if _truncate(ctx, record, path):
                    done.append(Flushed(record, path))
            for source in sources_for(record):
                if source.path:
                    if _truncate(ctx, record, source.path):
                        done.append(Flushed(record, source.path))
                elif source.journal_unit:
                    record.flushed_at = now_ms()
                    done.append(Flushed(record, None))
    return done


def _truncate(ctx: Context, record: AppRecord, path: str) -> bool:
    """Empty the file (systemd opened it with O_APPEND, so the app keeps writing at the new end); False when
    there is nothing to empty or the app's user may not."""
    spec = record.spec
    try:
        if spec.user is not None and runs_as_another_user(spec.user, not ctx.user, os.getuid()):
            fd = open_as(identity_of(spec.user, spec.group), path, os.O_WRONLY | os.O_NOCTTY)
        else:
            fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except (OSError, KeyError) as error:
        reason = error.strerror if isinstance(error, OSError) else f"no user {spec.user!r}"
        ctx.warnings.append(f"app {record.name!r}: {path} not emptied: {reason} (as user {spec.user})")
        return False
    try:
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)
    return True
