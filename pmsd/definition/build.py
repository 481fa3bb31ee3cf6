"""Build a validated app definition: one raw app mapping (from an ecosystem file or from `pmsd start` flags)
becomes a frozen `AppSpec`, using the settings table for every key; problems are reported with the file, app
and key."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pmsd.definition.interpreter import resolve_program
from pmsd.definition.settings import ALIASES, NOT_YET_HONOURED, SETTINGS_BY_KEY, parse_port, port_number
from pmsd.errors import UsageError
from pmsd.model.spec import AppSpec, Source
from pmsd.systemd.names import check_app_name


def build_spec(
    raw: Mapping[str, object], source: Source, env_name: str | None, path_env: str | None,
    warn: list[str],
) -> AppSpec:
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
        try:
            port = parse_port(env["PORT"])
        except ValueError as error:
            raise fail("env", f"PORT: {error}", "set `port` explicitly, or fix env.PORT") from None
    if port is not None:
        if not clustered:
            raise fail("port", "a shared port needs cluster mode", "add instances (-i N) or exec_mode: cluster")
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
