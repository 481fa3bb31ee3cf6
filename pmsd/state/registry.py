"""pmsd's registry: app definitions and ids, the things systemd cannot hold.

systemd is the truth for runtime state; the registry only knows what was defined (name, namespace, id,
definition, restart-count offset). It is one JSON file, rewritten atomically (temporary file, fsync,
rename), so a crash mid-write leaves the old or the new version, never a torn one. Commands that change it
hold an exclusive flock on a sibling lock file for the whole read-modify-write, so two `pmsd` commands
running at once serialise instead of losing each other's updates.

The registry is never the single point of failure: every write keeps the version it replaces as
registry.json.bak (a hard link to the old file, so it costs no copy). A registry that cannot be read (a disk
that filled, an editor's mistake) is copied aside as registry.json.broken-<hash of its content>,
with a warning, and the backup is read instead (or the last `pmsd save`, pmsd.state.dump, when there is no
backup); the next change writes a good registry again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from typing import IO

from pmsd.errors import ExitStatus, PmsdError
from pmsd.model.record import AppRecord, RegistryData
from pmsd.state.atomic import WriteError, keep_as_backup, make_durable, remove_stale_temporaries, write_atomic
from pmsd.state.dump import DumpFile
from pmsd.state.listfile import dumps_with_lines, item_line, loads_with_list
from pmsd.state.pending import PendingRecords, UnitsPresent
from pmsd.systemd.names import instance_env_file_name

FORMAT_VERSION = 1


class Registry:
    def __init__(self, state_dir: str, warnings: list[str] | None = None,
                 rebuild: Callable[[], RegistryData] | None = None, units_present: UnitsPresent | None = None) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, "registry.json")
        self.backup_path = self.path + ".bak"
        self.lock_path = os.path.join(state_dir, "registry.lock")
        self.env_dir = os.path.join(state_dir, "env")
        self.warnings = warnings if warnings is not None else []  # what the caller shows the user
        self._readable = False  # the last read() read self.path itself: it may become the backup
        self._rebuild = rebuild  # the last resort: the apps systemd runs (pmsd.state.rebuild)
        self._undo: list[Callable[[], None]] | None = None  # in a transaction: undo_unless_saved's
        self._unsynced: list[str] = []  # in a transaction: files made durable before it is saved
        self.pending = PendingRecords(state_dir, units_present)  # new records whose units are being created

    def env_file(self, pm_id: int) -> str:
        return os.path.join(self.env_dir, f"{pm_id}.env")

    def record_env_file(self, record: AppRecord) -> str:
        """A fork app's env file is named by id; a cluster instance's by unit, as the template's
        EnvironmentFile= spells it with %i."""
        if record.instance is None:
            return self.env_file(record.pm_id)
        return self.instance_env_file(record.name, record.instance)

    def instance_env_file(self, name: str, instance: int | str) -> str:
        """Instance `instance` (or "%i", as the template spells it) of cluster app `name`."""
        return os.path.join(self.env_dir, instance_env_file_name(name, instance))

    def read(self) -> RegistryData:
        """A consistent snapshot without locking: renames are atomic, so readers never see a torn file. A
        damaged registry is set aside and its backup read instead, with a warning (module docstring)."""
        self._readable = False
        try:
            data = self._read_file(self.path)
            self._readable = os.path.exists(self.path)
            return self.pending.merge(data, self.warnings)
        except _Damaged as damaged:
            data, used = self._fallback(damaged)
            aside = self._set_aside()
            self.warnings.append(f"{damaged.error.message}; {aside}, and {used} is used instead until the next "
                                 "change writes the registry again: check `pmsd ls`")
            return self.pending.merge(data, self.warnings)

    def _fallback(self, damaged: _Damaged) -> tuple[RegistryData, str]:
        """What stands in for a damaged registry: its backup, else the apps of the last `pmsd save` (a save
        holds the same records); the damage itself when neither reads."""
        if os.path.exists(self.backup_path):
            with contextlib.suppress(_Damaged, PmsdError):
                return self._read_file(self.backup_path), f"the backup of the version before it ({self.backup_path})"
        ignored: list[str] = []
        try:
            saved = DumpFile(self.state_dir).read(ignored)
        except PmsdError:
            saved = None
        if saved is None:
            return self._rebuilt(damaged)
        return (RegistryData(next_id=max([saved.next_id, *(app.record.pm_id + 1 for app in saved.apps)]),
                             apps=[app.record for app in saved.apps]),
                f"the apps of the last `pmsd save` ({DumpFile(self.state_dir).path})")

    def _rebuilt(self, damaged: _Damaged) -> tuple[RegistryData, str]:
        if self._rebuild is None:
            raise damaged.error from None
        try:
            data = self._rebuild()
        except PmsdError:
            raise damaged.error from None  # no systemd to ask either: the damage is the news
        return data, (f"a list of the {len(data.apps)} app unit(s) systemd runs (their options other than the "
                      "program, directory and user are back to their defaults; stopped apps are not listed)")

    def _set_aside(self) -> str:
        """A copy of the damaged registry, named by its content so that every read of the same damage keeps
        one copy; what was done, for the warning. Copied, not moved: readers do not hold the lock, and the next
        transaction replaces the damaged file anyway (the backup it reads becomes the registry). A copy that
        cannot be written (the full disk that damaged the registry, often) must not fail the read."""
        try:
            with open(self.path, "rb") as handle:
                content = handle.read()
        except OSError:
            return "it cannot be read, so no copy is kept"
        import hashlib  # lazy: ~2 ms on every command, for a registry that is almost never damaged

        aside = f"{self.path}.broken-{hashlib.sha256(content).hexdigest()[:12]}"
        if not os.path.exists(aside):
            try:
                write_atomic(aside, content.decode("utf-8", "surrogateescape"))
            except OSError as error:  # WriteError too
                return f"no copy of it could be kept ({error.strerror or error})"
        return f"a copy is kept as {aside}"

    def _read_file(self, path: str) -> RegistryData:
        try:
            with open(path, encoding="utf-8") as handle:
                stamp = _stamp(os.fstat(handle.fileno()))
                parsed = _PARSED.get(path)
                if parsed is not None and parsed[0] == stamp:
                    return RegistryData(next_id=parsed[1].next_id, apps=_copies(parsed[1].apps))
                text = handle.read()
                by_line = loads_with_list(text, "apps", _LINES.get(path, {}), AppRecord.from_json)
                raw = json.loads(text) if by_line is None else by_line[0]
        except FileNotFoundError:
            return RegistryData()
        except PermissionError:
            raise PmsdError(f"permission denied reading pmsd's registry {self.path}",
                            "it belongs to the user who started those apps: run pmsd as that user "
                            "(for --system, as root)", ExitStatus.PERMISSION) from None
        except NotADirectoryError:
            raise PmsdError(f"pmsd's state directory {self.state_dir} is not a directory",
                            "PMSD_STATE_DIR or XDG_STATE_HOME must name a directory") from None
        except (OSError, ValueError) as error:
            raise _damaged(f"pmsd's registry {path} cannot be read: {error}") from None
        if not isinstance(raw, dict):
            raise _damaged(f"pmsd's registry {path} is damaged: it is not a JSON object")
        if raw.get("version") != FORMAT_VERSION:
            raise PmsdError(f"{path} has format version {raw.get('version')}, this pmsd reads "
                            f"{FORMAT_VERSION}", "upgrade pmsd")
        try:
            next_id = int(raw["next_id"])
            apps = (list(by_line[1].values()) if by_line is not None
                    else [AppRecord.from_json(app) for app in raw["apps"]])
            data = RegistryData(next_id=next_id, apps=apps)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise _damaged(f"pmsd's registry {path} is damaged: unexpected content "
                           f"({type(error).__name__}: {error})") from None
        _PARSED[path] = (stamp, RegistryData(next_id=data.next_id, apps=list(data.apps)))
        _LINES[path] = by_line[1] if by_line is not None else {}
        return RegistryData(next_id=data.next_id, apps=_copies(data.apps))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[RegistryData]:
        """Exclusive read-modify-write; the data is saved only when the block completes without error. When it
        is not saved (the block raised, or the write failed: a full disk), what the block registered with
        undo_unless_saved is undone."""
        self._make_state_dir()
        with self._open_lock() as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self.read()
            self.pending.settle(data, self.record_env_file)
            for directory in (self.state_dir, self.env_dir):  # what killed commands left half-written
                remove_stale_temporaries(directory)
            self._undo, self._unsynced = [], []
            try:
                yield data
                self._write(data)
                self.pending.done()
            except BaseException:
                self._run_undo()
                raise
            finally:
                self._undo = None

    def sync_when_saved(self, path: str) -> bool:
        """In a transaction: `path`, about to be written with write_atomic(durable=False), is made durable just
        before the registry is saved, since only the records saved with it make it matter (an app's
        environment file). Its fsyncs then come after the app's unit was asked for, not before: the start
        waits for none of them. False outside a transaction: the caller writes it durably itself."""
        if self._undo is None:
            return False
        self._unsynced.append(path)
        return True

    def undo_unless_saved(self, undo: Callable[[], None]) -> None:
        """Have `undo` called if this transaction's data is not saved. A block that starts units for new records
        registers their removal: a registry that cannot be written (issue 19, a full disk) must not leave apps
        running that pmsd does not list."""
        if self._undo is None:
            raise RuntimeError("undo_unless_saved() outside a registry transaction")
        self._undo.append(undo)

    def _run_undo(self) -> None:
        """Last registered first; one that fails (systemd refusing a stop) does not keep the others from
        running, nor hide the error that aborted the transaction."""
        for undo in reversed(self._undo or []):
            with contextlib.suppress(PmsdError):
                undo()

    def _open_lock(self) -> IO[str]:
        try:
            return open(self.lock_path, "a")  # the caller closes it (a with block)
        except PermissionError:
            raise PmsdError(f"permission denied opening {self.lock_path}",
                            "run pmsd as the user who owns its state (for --system, as root)",
                            ExitStatus.PERMISSION) from None
        except OSError as error:  # a new lock file on a file system out of inodes (ENOSPC)
            raise WriteError(self.lock_path, error) from error

    def _make_state_dir(self) -> None:
        try:
            os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        except PermissionError:
            raise PmsdError(f"cannot create pmsd's state directory {self.state_dir}: permission denied",
                            status=ExitStatus.PERMISSION) from None
        except OSError as error:
            raise PmsdError(f"cannot create pmsd's state directory {self.state_dir}: {error.strerror}",
                            "PMSD_STATE_DIR or XDG_STATE_HOME must name a directory pmsd can create") from None

    def _write(self, data: RegistryData) -> None:
        apps, lines = self._lines_of(sorted(data.apps, key=lambda a: a.pm_id))
        text = dumps_with_lines({"version": FORMAT_VERSION, "next_id": data.next_id}, "apps", lines)
        make_durable(self._unsynced)
        self._unsynced = []
        self._keep_backup()
        write_atomic(self.path, text)
        with contextlib.suppress(OSError):  # the lock is held: the file is the one just written
            _PARSED[self.path] = (_stamp(os.stat(self.path)), RegistryData(next_id=data.next_id, apps=apps))
            _LINES[self.path] = dict(zip(lines, apps, strict=True))

    def _lines_of(self, apps: list[AppRecord]) -> tuple[list[AppRecord], list[str]]:
        """Each app's line, and the record kept for it: an app equal to the record read from its line is
        written as that line again (encoding all of 1,000 apps took ~10 ms of every `start`); another is
        encoded, and a copy of it kept (the caller's may change after the write)."""
        read = {record.pm_id: (line, record) for line, record in _LINES.get(self.path, {}).items()}
        kept, lines = [], []
        for app in apps:
            line, record = read.get(app.pm_id, ("", None))
            if record is None or vars(record) != vars(app):  # the spec is frozen: usually the same object
                line, record = item_line(app.to_json()), _copies([app])[0]
            kept.append(record)
            lines.append(line)
        return kept, lines

    def _keep_backup(self) -> None:
        """The registry about to be replaced becomes the backup: a hard link to its file (write_atomic puts
        a new file in its place), renamed over the old backup, so the backup is whole at every moment. Only a
        registry that read back in this transaction is kept: a damaged one must not push out the good backup."""
        if not self._readable:
            return
        keep_as_backup(self.path, self.backup_path)


# The last parse of each registry file this process read, by path, with the file's identity then. Readers get
# copies of its records (_copies): these stay as the file says. A file is replaced by a rename (a new inode) or
# changes its mtime, so an unchanged stamp means unchanged content. god parses its registry whenever it changes,
# and the commands it forks (pmsd.god.runner) inherit the parse: `pmsd ls` of 1,000 apps reads none (~25 ms).
_PARSED: dict[str, tuple[tuple[int, ...], RegistryData]] = {}
# The records of the last read or write, by their line (listfile.loads_with_list): the next read parses changed
# lines only, and the next write encodes changed records only (Registry._lines_of).
_LINES: dict[str, dict[str, AppRecord]] = {}


def _copies(records: list[AppRecord]) -> list[AppRecord]:
    """Copies of records for a caller, which may change them (a record's fields other than its frozen spec are
    set in place): the records kept above stand for the file's text, and only those may be reused."""
    copies = []
    for record in records:
        copy = object.__new__(AppRecord)  # a shallow copy: ~0.5 us, a quarter of copy.copy()'s cost
        copy.__dict__.update(record.__dict__)
        copies.append(copy)
    return copies


def _stamp(info: os.stat_result) -> tuple[int, ...]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class _Damaged(Exception):
    """A registry file that does not read back; `error` is what the user is told."""

    def __init__(self, error: PmsdError) -> None:
        super().__init__(error.message)
        self.error = error


DAMAGED_HINT = ("move it away to start with an empty registry (the apps keep running; `pmsd resurrect` brings "
                "back what `pmsd save` recorded)")


def _damaged(message: str) -> _Damaged:
    return _Damaged(PmsdError(message, DAMAGED_HINT))
