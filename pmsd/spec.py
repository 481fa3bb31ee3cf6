"""An app definition, validated: what the user asked for, resolved against the file system.

`build_spec` turns one raw app mapping (from an ecosystem file or from `pmsd start` flags) into a frozen
`AppSpec`, using the settings table for every key; problems are reported with the file, app and key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pmsd.errors import UsageError


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
    autorestart: bool = True
    autostart: bool = True
    restart_delay: int = 0
    max_restarts: int = 16
    min_uptime: int = 1000
    stop_exit_codes: tuple[int, ...] = ()
    kill_timeout: int = 1600
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

    @property
    def clustered(self) -> bool:
        """Run as instances of a template unit (pmsd-<app>@<n>.service) rather than one transient unit."""
        return self.exec_mode == "cluster" or self.instances > 1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AppSpec:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("argv", "args", "interpreter_args", "stop_exit_codes", "watch", "ignore_watch"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)


@dataclass(frozen=True)
class UnitInputs:
    """Everything the settings table's directives are computed from."""

    spec: AppSpec
    env_file: str
    system: bool = False  # for the system manager (some settings only mean something there)


COMMAND_LINE = "command line"


@dataclass(frozen=True)
class Source:
    """Where a definition came from, for error messages."""

    label: str  # "ecosystem.config.json" or "command line"
    base_dir: str  # relative script/cwd paths start here

    @property
    def from_command_line(self) -> bool:
        return self.label == COMMAND_LINE


def build_spec(
    raw: Mapping[str, object], source: Source, env_name: str | None, path_env: str | None,
    warn: list[str],
) -> AppSpec:
    # Imported here: reading the registry (every `pmsd ls`) needs AppSpec, not the validation machinery.
    from pmsd.interpreter import resolve_program
    from pmsd.settings import ALIASES, NOT_YET_HONOURED, SETTINGS_BY_KEY
    from pmsd.unitnames import check_app_name

    app_label = f"app {raw.get('name')!r}" if isinstance(raw.get("name"), str) else "an app"

    def fail(key: str, problem: str, hint: str | None = None) -> UsageError:
        if source.from_command_line:
            return UsageError(f"--{key.replace('_', '-')}: {problem}", hint)
        return UsageError(f"{source.label}: {app_label}, key {key!r}: {problem}", hint)

    values: dict[str, Any] = {}
    unknown: list[str] = []
    ignored: list[str] = []
    for raw_key, value in raw.items():
        if not isinstance(raw_key, str):  # YAML allows `1: x` or `true: y`
            raise fail(str(raw_key), "option names must be strings")
        key = ALIASES.get(raw_key, raw_key)
        setting = SETTINGS_BY_KEY.get(key)
        if setting is None:
            if raw_key.startswith("env_"):
                continue
            (ignored if raw_key in NOT_YET_HONOURED else unknown).append(raw_key)
            continue
        try:
            values[key] = setting.parse(value)
        except ValueError as error:
            raise fail(raw_key, str(error)) from None
    if unknown:
        warn.append(f"{source.label}: {app_label}: unknown keys ignored: {', '.join(sorted(unknown))}")
    if ignored:
        warn.append(f"{source.label}: {app_label}: PM2 options not supported by this pmsd version, ignored: "
                    f"{', '.join(sorted(ignored))}")

    if "script" not in values:
        raise fail("script", "missing", "every app needs a script (a file or a command on PATH)")
    env = dict(values.get("env", {}))
    if env_name is not None:
        overlay = raw.get(f"env_{env_name}")
        if overlay is not None:
            try:
                env.update(SETTINGS_BY_KEY["env"].parse(overlay))
            except ValueError as error:
                raise fail(f"env_{env_name}", str(error)) from None
    cwd = os.path.normpath(os.path.join(source.base_dir, os.path.expanduser(values.get("cwd") or ".")))
    if not os.path.isdir(cwd):
        raise fail("cwd", f"{cwd} is not a directory")
    try:
        program = resolve_program(
            values["script"], cwd, values.get("interpreter"), values.get("interpreter_args", ()),
            values.get("args", ()), env.get("PATH", path_env),
        )
    except UsageError as error:
        raise UsageError(f"{source.label}: {app_label}: {error.message}", error.hint) from None
    name = values.get("name") or _default_name(program.script)
    try:
        check_app_name(name)
    except UsageError as error:
        raise fail("name", error.message, error.hint) from None
    namespace = values.get("namespace", "default")
    if not namespace:
        raise fail("namespace", "cannot be empty")
    passthrough: dict[str, Any] = {k: values[k] for k in (
        "autorestart", "autostart", "restart_delay", "max_restarts", "min_uptime", "stop_exit_codes",
        "kill_timeout", "user", "group", "time", "interpreter_args", "args", "disable_logs", "merge_logs",
        "log_date_format", "log_type", "exp_backoff_restart_delay", "max_memory_restart", "memory_max",
        "cron_restart", "ignore_watch", "watch_delay", "instances", "wait_ready", "listen_timeout",
        "instance_var", "increment_var",
    ) if k in values}
    # PM2 runs `-i N` apps in cluster mode unless told otherwise.
    passthrough["exec_mode"] = values.get("exec_mode") or ("cluster" if "instances" in values else "fork")
    clustered = passthrough["exec_mode"] == "cluster" or values.get("instances", 1) > 1
    port = values.get("port")
    if port is None and clustered and passthrough["exec_mode"] == "cluster" and "PORT" in env \
            and values.get("increment_var") != "PORT":
        # PM2's convention: a cluster app listens on env.PORT; that is the port the instances share.
        from pmsd.settings import parse_port

        try:
            port = parse_port(env["PORT"])
        except ValueError as error:
            raise fail("env", f"PORT: {error}", "set `port` explicitly, or fix env.PORT") from None
    if port is not None:
        if not clustered:
            raise fail("port", "a shared port needs cluster mode", "add instances (-i N) or exec_mode: cluster")
        from pmsd.settings import port_number

        passthrough["port"] = port
        env.setdefault("PORT", str(port_number(port)))
    if values.get("watch"):
        passthrough["watch"] = tuple(os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))
                                     for path in values["watch"])
    for key in ("out_file", "error_file", "log_file"):
        if values.get(key):
            passthrough[key] = _log_path(values[key], cwd, fail, key)
    return AppSpec(
        name=name, script=program.script, interpreter=program.interpreter, exec_path=program.exec_path,
        argv=program.argv, cwd=cwd, namespace=namespace, env=env, **passthrough,
    )


def _log_path(value: str, cwd: str, fail: Any, key: str) -> str:
    """PM2 log paths are relative to the app's cwd; systemd creates the file but not its directory."""
    path = os.path.normpath(os.path.join(cwd, os.path.expanduser(value)))
    if os.path.isdir(path):
        raise fail(key, f"{path} is a directory; give a file path")
    if not os.path.isdir(os.path.dirname(path)):
        raise fail(key, f"directory {os.path.dirname(path)} does not exist", "create it first")
    return path


def _default_name(script: str) -> str:
    base = os.path.basename(script)
    stem, _ = os.path.splitext(base)
    return stem or base
