"""An app definition, validated: what the user asked for, resolved against the file system
(pmsd.definition.build makes one from an ecosystem file's app or `pmsd start` flags)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AppSpec:
    name: str
    script: str
    interpreter: str
    exec_path: str
    argv: tuple[str, ...]
    cwd: str
    args: tuple[str, ...] = ()
    interpreter_args: tuple[str, ...] = ()
    namespace: str = "default"
    env: dict[str, str] = field(default_factory=dict)  # definition's env, with env_<name> applied
    # PM2's filter_env: True leaves out the whole environment `pmsd start` ran in; strings leave out its
    # variables whose names contain one of them. False: the caller's environment is kept.
    filter_env: bool | tuple[str, ...] = False
    autorestart: bool = True
    autostart: bool = True
    restart_delay: int = 0
    max_restarts: int = 16
    min_uptime: int = 1000
    stop_exit_codes: tuple[int, ...] = ()
    kill_timeout: int = 1600
    treekill: bool = True  # False: the stop signal goes to the main process only (KillMode=mixed)
    user: str | None = None
    group: str | None = None
    time: bool = False
    out_file: str | None = None
    error_file: str | None = None
    log_file: str | None = None
    disable_logs: bool = False
    merge_logs: bool = False
    log_date_format: str | None = None
    log_type: str | None = None
    # Rotation of the log files god writes (pmsd.god.logwriter): pm2-logrotate's max_size, retain, compress,
    # and an interval instead of its cron pattern.
    log_max_size: int | None = None
    log_retain: int | None = None  # None: `pmsd set log_retain`, else 30 (pmsd.definition.config)
    log_compress: bool | None = None
    log_rotate_interval: int | None = None  # ms
    exp_backoff_restart_delay: int = 0
    max_memory_restart: int | None = None
    memory_max: int | None = None
    cron_restart: str | None = None
    watch: tuple[str, ...] = ()  # absolute paths; empty: not watched
    ignore_watch: tuple[str, ...] = ()
    watch_delay: int = 0
    instances: int = 1
    exec_mode: str = "fork"  # "cluster": instances share `port`, reload replaces them one by one
    port: str | None = None  # ListenStream= of the app's socket unit (cluster apps)
    wait_ready: bool = False
    listen_timeout: int = 3000
    instance_var: str = "NODE_APP_INSTANCE"
    increment_var: str | None = None
    shutdown_with_message: bool = False  # Node apps are asked to stop with process.send('shutdown')

    @property
    def clustered(self) -> bool:
        """Run as instances of a template unit (pmsd-<app>@<n>.service) rather than one transient unit."""
        return self.exec_mode == "cluster" or self.instances > 1

    def to_json(self) -> dict[str, Any]:
        """The fields by name, as dataclasses.asdict() gives them (a copy: the env dict too). Every field is a
        scalar, a tuple of scalars or a str->str dict, so a shallow walk does: asdict()'s deep one took
        ~190 us per app, and a registry write of 1,000 apps 0.2 s."""
        return {key: dict(value) if isinstance(value, dict) else value for key, value in self.__dict__.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AppSpec:
        fields = cls.__dataclass_fields__
        # Nearly always every key is a field (a record this version wrote): copied at C speed, 1,000 per `ls`
        known = dict(data) if data.keys() <= fields.keys() else {k: v for k, v in data.items() if k in fields}
        for key in ("argv", "args", "interpreter_args", "stop_exit_codes", "watch", "ignore_watch"):
            if key in known:
                known[key] = tuple(known[key])
        if isinstance(known.get("filter_env"), list):
            known["filter_env"] = tuple(known["filter_env"])
        if known.keys() != fields.keys():
            return cls(**known)  # an older record: the defaults fill in, and a missing name is a TypeError
        # Every field given: the instance's __dict__ is set in one step. A frozen dataclass's __init__ sets each
        # of its ~60 fields through object.__setattr__, ~30 us per record: 30 ms of `pmsd jlist` at 1,000 apps.
        spec = object.__new__(cls)
        spec.__dict__.update(known)
        return spec


@dataclass(frozen=True)
class UnitInputs:
    """Everything the settings table's directives are computed from."""

    spec: AppSpec
    env_file: str
    system: bool = False  # for the system manager (some settings only mean something there)
    # Log files pmsd opened itself, by stream ("out", "err"), handed to systemd as descriptors: those of an
    # app that runs as another user, opened with that user's rights (pmsd.linux.asuser).
    log_fds: Mapping[str, int] = field(default_factory=dict)
    # The pipes god reads the app's streams from, by stream, when god writes its log files (pmsd.definition.
    # logpipes); empty when systemd writes them (append:) or the journal keeps the lines.
    log_pipes: Mapping[str, str] = field(default_factory=dict)
    # The TCP ports a cluster app without a declared `port` was found listening on (pmsd.state.ports).
    found_ports: tuple[int, ...] = ()
    # Discovery on: the preload reports ports the app listens on that no inherited socket serves.
    discover_ports: bool = False

    @property
    def listen(self) -> tuple[str, ...]:
        """The addresses systemd listens on for the app's instances: the declared `port`, which wins, else the
        ports found."""
        if self.spec.port:
            return (self.spec.port,)
        return tuple(str(port) for port in self.found_ports)


# PM2's "no log file" (out_file/error_file "NULL" or "/dev/null"): the stream is discarded (StandardOutput=null).
DISCARD = "/dev/null"


def stdout_file(spec: AppSpec) -> str | None:
    """The file the app's stdout goes to, None for the journal or nowhere (disable_logs, out_file DISCARD):
    out_file, else log_file when error_file is unset (systemd cannot write one stream to two files)."""
    if spec.disable_logs or spec.out_file == DISCARD:
        return None
    return spec.out_file or (spec.log_file if not spec.error_file else None)


def stderr_file(spec: AppSpec) -> str | None:
    """The file the app's stderr goes to, None for the journal or nowhere (the mirror of stdout_file)."""
    if spec.disable_logs or spec.error_file == DISCARD:
        return None
    return spec.error_file or (spec.log_file if not spec.out_file else None)


COMMAND_LINE = "command line"


@dataclass(frozen=True)
class Source:
    """Where a definition came from, for error messages."""

    label: str  # "ecosystem.config.json" or "command line"
    base_dir: str  # relative script/cwd paths start here

    @property
    def from_command_line(self) -> bool:
        return self.label == COMMAND_LINE
