"""pmsd's registry: app definitions and ids, the things systemd cannot hold.

systemd is the truth for runtime state; the registry only knows what was defined (name, namespace, id,
definition, restart-count offset). It is one JSON file, rewritten atomically (temporary file, fsync,
rename), so a crash mid-write leaves the old or the new version, never a torn one. Commands that change it
hold an exclusive flock on a sibling lock file for the whole read-modify-write, so two `pmsd` commands
running at once serialise instead of losing each other's updates.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pmsd.errors import ExitStatus, PmsdError
from pmsd.spec import AppSpec

FORMAT_VERSION = 1


@dataclass
class AppRecord:
    pm_id: int
    spec: AppSpec
    created_at: int  # ms since the epoch, as PM2's created_at
    # restart_time shown = restart_offset + systemd's NRestarts of the current unit. NRestarts restarts
    # from 0 with every new unit (each start creates one), so manual restarts fold it in here.
    restart_offset: int = 0
    flushed_at: int = 0  # ms; `pmsd logs` hides journal lines older than this (`pmsd flush`)
    unstable_offset: int = 0  # god's unstable-restart count when `pmsd reset` last zeroed it
    # A cluster app is one record per instance (each has its own id, as in PM2), sharing name and spec;
    # None: a single transient unit.
    instance: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def unit(self) -> str:
        from pmsd.unitnames import unit_of

        return unit_of(self.spec.name, self.instance)

    def to_json(self) -> dict[str, Any]:
        return {"pm_id": self.pm_id, "created_at": self.created_at, "restart_offset": self.restart_offset,
                "flushed_at": self.flushed_at, "unstable_offset": self.unstable_offset,
                **({"instance": self.instance} if self.instance is not None else {}),
                "spec": self.spec.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AppRecord:
        return cls(pm_id=int(data["pm_id"]), spec=AppSpec.from_json(data["spec"]),
                   created_at=int(data["created_at"]), restart_offset=int(data.get("restart_offset", 0)),
                   flushed_at=int(data.get("flushed_at", 0)),
                   unstable_offset=int(data.get("unstable_offset", 0)),
                   instance=int(data["instance"]) if data.get("instance") is not None else None)


@dataclass
class RegistryData:
    next_id: int = 0
    apps: list[AppRecord] = field(default_factory=list)

    def by_name(self, name: str) -> AppRecord | None:
        return next((app for app in self.apps if app.name == name), None)

    def instances_of(self, name: str) -> list[AppRecord]:
        """Every record of the app `name`, in instance order (one for a fork app)."""
        return sorted((app for app in self.apps if app.name == name), key=lambda a: (a.instance or 0, a.pm_id))

    def by_id(self, pm_id: int) -> AppRecord | None:
        return next((app for app in self.apps if app.pm_id == pm_id), None)

    def allocate_id(self) -> int:
        # Like PM2's God: ids grow monotonically while apps exist, so an id never silently names a
        # different app; once nothing is registered the counter starts again at 0.
        if not self.apps:
            self.next_id = 0
        pm_id = self.next_id
        self.next_id += 1
        return pm_id

    def allocate_ids(self, count: int) -> list[int]:
        """Ids for several new records at once (a cluster app's instances), before any is added."""
        first = self.allocate_id()
        self.next_id += count - 1
        return list(range(first, first + count))


def now_ms() -> int:
    return int(time.time() * 1000)


class Registry:
    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, "registry.json")
        self.lock_path = os.path.join(state_dir, "registry.lock")
        self.env_dir = os.path.join(state_dir, "env")

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
        from pmsd.unitnames import instance_env_file_name

        return os.path.join(self.env_dir, instance_env_file_name(name, instance))

    def read(self) -> RegistryData:
        """A consistent snapshot without locking: renames are atomic, so readers never see a torn file."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                raw = json.load(handle)
        except FileNotFoundError:
            return RegistryData()
        except (OSError, ValueError) as error:
            raise PmsdError(
                f"pmsd's registry {self.path} cannot be read: {error}",
                "restore it from a backup, or move it away to start with an empty registry",
            ) from None
        if not isinstance(raw, dict):
            raise self._damaged("it is not a JSON object")
        if raw.get("version") != FORMAT_VERSION:
            raise PmsdError(f"{self.path} has format version {raw.get('version')}, this pmsd reads "
                            f"{FORMAT_VERSION}", "upgrade pmsd")
        try:
            return RegistryData(next_id=int(raw["next_id"]),
                                apps=[AppRecord.from_json(app) for app in raw["apps"]])
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise self._damaged(f"unexpected content ({type(error).__name__}: {error})") from None

    def _damaged(self, why: str) -> PmsdError:
        return PmsdError(f"pmsd's registry {self.path} is damaged: {why}",
                         "restore it from a backup, or move it away to start with an empty registry")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[RegistryData]:
        """Exclusive read-modify-write; the data is saved only when the block completes without error."""
        self._make_state_dir()
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self.read()
            yield data
            self._write(data)

    def _make_state_dir(self) -> None:
        try:
            os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        except PermissionError:
            raise PmsdError(f"cannot create pmsd's state directory {self.state_dir}: permission denied",
                            status=ExitStatus.PERMISSION) from None

    def _write(self, data: RegistryData) -> None:
        document = {"version": FORMAT_VERSION, "next_id": data.next_id,
                    "apps": [app.to_json() for app in sorted(data.apps, key=lambda a: a.pm_id)]}
        temporary = f"{self.path}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=1, ensure_ascii=False)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        directory = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)  # make the rename itself durable
        finally:
            os.close(directory)
