"""The saved app list (`pmsd save`), read back by `pmsd resurrect` at boot.

PM2's dump.pm2 is the area its users complain about most: emptied by a crash, a full disk or an update. Here
the save is one JSON file in the state directory, written atomically (pmsd.state.atomic: a reader or a crash
sees the old file or the new one), and the save it replaces is kept as dump.json.bak. When the current file
does not read back, the backup is read instead, with a warning; when neither does, the error says what was
found. An empty list is only written when asked for (`pmsd save --force`, `pmsd cleardump`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from pmsd.errors import PmsdError
from pmsd.model.record import AppRecord
from pmsd.state.atomic import keep_as_backup, write_atomic
from pmsd.state.listfile import dumps_with_list

FORMAT_VERSION = 1
DUMP_FILE = "dump.json"


@dataclass
class SavedApp:
    """One record as saved: the registry record, whether it was running, its environment file's content."""

    record: AppRecord
    running: bool
    env: dict[str, str] | None  # None: the env file could not be read when saved

    def to_json(self) -> dict[str, Any]:
        return {**self.record.to_json(), "running": self.running, "env": self.env}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SavedApp:
        env = data.get("env")
        return cls(AppRecord.from_json(data), bool(data.get("running")),
                   {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else None)


@dataclass
class Saved:
    saved_at: int = 0  # ms since the epoch
    next_id: int = 0
    apps: list[SavedApp] = field(default_factory=list)
    ports: dict[str, list[int]] = field(default_factory=dict)  # pmsd.state.ports, per app name


class DumpFile:
    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, DUMP_FILE)
        self.backup_path = self.path + ".bak"

    def write(self, saved: Saved) -> None:
        """Replace the save, keeping the one it replaces (when it reads back) as the backup."""
        text = dumps_with_list({"version": FORMAT_VERSION, "saved_at": saved.saved_at, "next_id": saved.next_id,
                                "ports": saved.ports}, "apps", [app.to_json() for app in saved.apps])
        try:
            self._read(self.path)
        except (PmsdError, FileNotFoundError):
            pass  # only a save that reads back may push out the backup
        else:
            # A backup that cannot be kept (a full disk) fails the save: replacing the save anyway would lose
            # the one it replaces.
            keep_as_backup(self.path, self.backup_path)
        write_atomic(self.path, text)

    def read(self, warnings: list[str]) -> Saved | None:
        """The save, or its backup when the save does not read back (a warning says so); None when there is
        none at all."""
        try:
            return self._read(self.path)
        except FileNotFoundError:
            current_error: PmsdError | None = None
        except PmsdError as error:
            current_error = error
        try:
            saved = self._read(self.backup_path)
        except FileNotFoundError:
            if current_error is not None:
                raise current_error from None
            return None
        except PmsdError:
            if current_error is not None:
                raise current_error from None
            raise
        if current_error is not None:
            warnings.append(f"{current_error.message}; using the save before it, {self.backup_path}")
        else:
            warnings.append(f"{self.path} is missing; using the save before it, {self.backup_path}")
        return saved

    def _read(self, path: str) -> Saved:
        """FileNotFoundError when there is no such file; PmsdError when it does not read back."""
        hint = "`pmsd save` writes a new one from the apps pmsd knows now"
        try:
            with open(path, encoding="utf-8") as handle:
                raw = json.load(handle)
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as error:
            raise PmsdError(f"the saved app list {path} cannot be read: {error}", hint) from None
        if not isinstance(raw, dict) or raw.get("version") != FORMAT_VERSION:
            raise PmsdError(f"the saved app list {path} is not a pmsd save (format {FORMAT_VERSION})", hint)
        try:
            return Saved(saved_at=int(raw.get("saved_at", 0)), next_id=int(raw["next_id"]),
                         apps=[SavedApp.from_json(app) for app in raw["apps"]],
                         ports={str(name): [int(p) for p in ports] for name, ports in raw.get("ports", {}).items()})
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise PmsdError(f"the saved app list {path} is damaged: unexpected content "
                            f"({type(error).__name__}: {error})", hint) from None
