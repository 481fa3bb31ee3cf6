"""A registry record: one app (or one instance of a cluster app) as pmsd defined it, with its id.

systemd is the truth for runtime state; a record only holds what systemd cannot: name, namespace, id,
definition, and the offsets that turn systemd's per-unit counters into PM2's per-app ones.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Any

from pmsd.model.spec import DISCARD, AppSpec
from pmsd.systemd.names import unit_of


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
    # What increment_var adds to the definition's value for this instance. PM2 (God.js, when it launches an
    # instance) gives each new instance one more than the highest of its app's instances, so numbers freed by
    # delete or scale are not reused here, unlike NODE_APP_INSTANCE. None: records written before pmsd kept
    # it, which used the instance number.
    increment: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def increment_offset(self) -> int:
        return self.increment if self.increment is not None else (self.instance or 0)

    @property
    def unit(self) -> str:
        return unit_of(self.spec.name, self.instance)

    @property
    def log_spec(self) -> AppSpec:
        """The definition with the log files this record's process writes. PM2 gives each instance of a
        multi-instance app (cluster mode, or fork with instances > 1) its own files, "-<pm_id>" before the
        extension, unless merge_logs (checked against PM2 7: tests/pm2/test_logfiles_pm2.py)."""
        spec = self.spec
        if self.instance is None or spec.merge_logs:
            return spec
        return replace(spec, out_file=instance_log_path(spec.out_file, self.pm_id),
                       error_file=instance_log_path(spec.error_file, self.pm_id),
                       log_file=instance_log_path(spec.log_file, self.pm_id))

    def to_json(self) -> dict[str, Any]:
        return {"pm_id": self.pm_id, "created_at": self.created_at, "restart_offset": self.restart_offset,
                "flushed_at": self.flushed_at, "unstable_offset": self.unstable_offset,
                **({"instance": self.instance} if self.instance is not None else {}),
                **({"increment": self.increment} if self.increment is not None else {}),
                "spec": self.spec.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AppRecord:
        return cls(pm_id=int(data["pm_id"]), spec=AppSpec.from_json(data["spec"]),
                   created_at=int(data["created_at"]), restart_offset=int(data.get("restart_offset", 0)),
                   flushed_at=int(data.get("flushed_at", 0)),
                   unstable_offset=int(data.get("unstable_offset", 0)),
                   instance=int(data["instance"]) if data.get("instance") is not None else None,
                   increment=int(data["increment"]) if data.get("increment") is not None else None)


def instance_log_path(path: str | None, pm_id: int) -> str | None:
    """out.log -> out-3.log; a name without an extension (and /dev/null) is left as it is, as PM2 leaves it."""
    if not isinstance(path, str) or path == DISCARD:
        return path
    stem, extension = os.path.splitext(path)
    return f"{stem}-{pm_id}{extension}" if extension else path


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
