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
from collections.abc import Iterator

from pmsd.errors import ExitStatus, PmsdError
from pmsd.model.record import AppRecord, RegistryData
from pmsd.state.atomic import write_atomic
from pmsd.systemd.names import instance_env_file_name

FORMAT_VERSION = 1


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
        return os.path.join(self.env_dir, instance_env_file_name(name, instance))

    def read(self) -> RegistryData:
        """A consistent snapshot without locking: renames are atomic, so readers never see a torn file."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                raw = json.load(handle)
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
        try:
            lock = open(self.lock_path, "a")  # noqa: SIM115 - closed by the with block below
        except PermissionError:
            raise PmsdError(f"permission denied opening {self.lock_path}",
                            "run pmsd as the user who owns its state (for --system, as root)",
                            ExitStatus.PERMISSION) from None
        with lock:
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
        except OSError as error:
            raise PmsdError(f"cannot create pmsd's state directory {self.state_dir}: {error.strerror}",
                            "PMSD_STATE_DIR or XDG_STATE_HOME must name a directory pmsd can create") from None

    def _write(self, data: RegistryData) -> None:
        document = {"version": FORMAT_VERSION, "next_id": data.next_id,
                    "apps": [app.to_json() for app in sorted(data.apps, key=lambda a: a.pm_id)]}
        write_atomic(self.path, json.dumps(document, indent=1, ensure_ascii=False) + "\n")
