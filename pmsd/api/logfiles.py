"""The directories of an app's log files, created before systemd opens the files."""

from __future__ import annotations

import os
from collections.abc import Iterable

from pmsd.errors import ExitStatus, PmsdError
from pmsd.model.spec import AppSpec, stderr_file, stdout_file


def make_log_dirs(spec: AppSpec, paths: Iterable[str | None] = ()) -> None:
    """Create the directories of the app's log files (`paths`, by default those systemd appends to), as PM2
    does: systemd creates a file, not its directory. Called with the rights of the user the app runs as (the
    caller's own apps; others' go through open_log_files), so nothing is created where that user could not."""
    for path in paths or (stdout_file(spec), stderr_file(spec)):
        if path:
            try:
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            except OSError as error:
                raise PmsdError(f"app {spec.name!r}: cannot create the directory of its log file {path}: "
                                f"{error.strerror}", "fix the path, or create the directory",
                                ExitStatus.PERMISSION) from None
