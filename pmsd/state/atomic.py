"""The one way pmsd writes a file it owns: all or nothing, and durable.

The text goes to a temporary file beside the target (named with the writer's pid, so two pmsd commands
writing the same file at once never share a temporary), created with its final mode from the first byte
(never briefly readable by others), fsync'ed, then renamed over the target; the directory is fsync'ed too,
so the rename itself survives a crash (rename(2) is atomic, not durable). A reader sees the old file or the
new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import os


def write_atomic(path: str, text: str, mode: int = 0o600, dir_mode: int = 0o700) -> None:
    """Replace `path` with `text` (UTF-8); its directory is created (with `dir_mode`) when missing."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=dir_mode, exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)


def write_if_changed(path: str, text: str, mode: int = 0o644, dir_mode: int = 0o755) -> bool:
    """write_atomic unless the file already holds exactly `text`; True when it was written."""
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8", newline="") as handle:
        if handle.read() == text:
            return False
    write_atomic(path, text, mode, dir_mode)
    return True


def keep_as_backup(path: str, backup_path: str) -> None:
    """Make the file at `path` (about to be replaced by write_atomic, which puts a new file in its place) the
    backup: a hard link to it, renamed over the old backup, so the backup is whole at every moment. Where the
    file system has no hard links, a copy written the same all-or-nothing way."""
    link = f"{backup_path}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(link)
    try:
        os.link(path, link)
    except FileNotFoundError:
        return
    except OSError:  # EPERM, EXDEV, ENOTSUP...: no hard links here
        with open(path, encoding="utf-8", newline="") as handle:
            write_atomic(backup_path, handle.read())
        return
    os.replace(link, backup_path)
