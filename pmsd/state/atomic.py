"""The one way pmsd writes a file it owns: all or nothing, and durable.

The text goes to a temporary file beside the target (named with the writer's pid, so two pmsd commands
writing the same file at once never share a temporary), created with its final mode from the first byte
(never briefly readable by others), fsync'ed, then renamed over the target; the directory is fsync'ed too,
so the rename itself survives a crash (rename(2) is atomic, not durable). A reader sees the old file or the
new one, never a torn one.

A write that fails (a full disk, a quota, a read-only file system) leaves the file as it was and no temporary
behind, and raises WriteError: a PmsdError naming the file, the reason and what to do, for the CLI to print
(issue 19: a full state directory). PermissionError passes through unchanged: the CLI and the callers that
expect it (pmsd.api.startup) already say who must run pmsd.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable, Iterator

from pmsd.errors import PmsdError

# link(2) refusing hard links as such (protected_hardlinks, another file system, none supported, too many):
# the backup is then a copy. Any other failure (ENOSPC: tmpfs counts links against nr_inodes) is the news.
NO_HARD_LINKS = frozenset({errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK})


class WriteError(PmsdError, OSError):
    """A file pmsd owns could not be written; the OSError that said so is its __cause__.

    Also an OSError (with its errno and strerror), so that code that carries on without a file (god's
    counters, pmsd.god.daemon) keeps catching it as before."""

    def __init__(self, path: str, cause: OSError) -> None:
        reason = (cause.strerror or str(cause)).strip()
        super().__init__(f"cannot write {path}: {reason[:1].lower()}{reason[1:]}", _hint(path, cause.errno))
        self.errno, self.strerror, self.filename = cause.errno, cause.strerror, path


def _hint(path: str, number: int | None) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    if number == errno.ENOSPC:
        return f"free space in {directory} (`df -h {directory}` shows what is left), then run the command again"
    if number == errno.EDQUOT:
        return f"free space in {directory}: your disk quota is used up (`quota -s`), then run the command again"
    if number == errno.EROFS:
        return f"{directory} is on a read-only file system: remount it read-write, then run the command again"
    return f"check the file system of {directory} (`dmesg` may say more), then run the command again"


@contextlib.contextmanager
def _explained(path: str) -> Iterator[None]:
    """An OSError writing `path` becomes a WriteError; PermissionError and a WriteError already made (a
    nested write) pass through."""
    try:
        yield
    except (PermissionError, WriteError):
        raise
    except OSError as error:
        raise WriteError(path, error) from error


def write_atomic(path: str, text: str, mode: int = 0o600, dir_mode: int = 0o700, durable: bool = True) -> None:
    """Replace `path` with `text` (UTF-8); its directory is created (with `dir_mode`) when missing. WriteError
    when the file system refuses: `path` is then unchanged. Readers see the old file or the new one, whole,
    either way; `durable` also makes the new one survive a crash of the machine before this returns (two
    fsyncs). Without it, make_durable() can do that later, off a command's critical path."""
    directory = os.path.dirname(path) or "."
    with _explained(path):
        os.makedirs(directory, mode=dir_mode, exist_ok=True)
        temporary = f"{path}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            # A full disk fails the write (at flush) or, with delayed allocation or over a network, fsync or
            # close: every one of them is inside this block, before the rename.
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
                handle.flush()
                if durable:
                    os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    if durable:
        _sync_directory(directory)


def make_durable(paths: Iterable[str]) -> None:
    """Make files written with write_atomic(durable=False) survive a crash: each file's data, then each of
    their directories (the renames). WriteError when the file system reports a failed write-back (a full disk
    with delayed allocation); a file removed since is skipped."""
    directories: dict[str, None] = {}
    for path in paths:
        with _explained(path):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        directories[os.path.dirname(path) or "."] = None
    for directory in directories:
        _sync_directory(directory)


def _sync_directory(directory: str) -> None:
    """Make the rename durable. Past the rename every reader sees the new file, so a directory that cannot be
    synced (EINVAL on some FUSE and network file systems) costs only durability across a crash: not an error
    the caller could act on, and reporting the write as failed would contradict what readers see."""
    with contextlib.suppress(OSError):
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
    file system has no hard links, a copy written the same all-or-nothing way. WriteError when the file system
    refuses: the old backup is then unchanged."""
    link = f"{backup_path}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(link)
    with _explained(backup_path):
        try:
            os.link(path, link)
        except FileNotFoundError:
            return
        except OSError as error:
            if error.errno not in NO_HARD_LINKS:
                raise
            with open(path, encoding="utf-8", newline="") as handle:
                write_atomic(backup_path, handle.read())
            return
        try:
            os.replace(link, backup_path)
        finally:
            # Gone after a rename, except when the backup already was this file (a write that failed after
            # its backup was kept): rename(2) of two links to one file does nothing and leaves both.
            with contextlib.suppress(OSError):
                os.unlink(link)


def remove_stale_temporaries(directory: str) -> None:
    """Remove the temporaries (`<file>.<pid>.tmp`) of writers that died before their rename (`kill -9`, the
    OOM killer): nothing else would, and they pile up. A writer still alive keeps its own; one that cannot be
    signalled (another user's, EPERM) counts as alive."""
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        parts = entry.rsplit(".", 2)
        if len(parts) != 3 or parts[2] != "tmp" or not parts[1].isdigit() or int(parts[1]) == os.getpid():
            continue
        try:
            os.kill(int(parts[1]), 0)
            continue
        except ProcessLookupError:
            pass
        except OSError:
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, entry))
