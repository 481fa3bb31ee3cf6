"""`pmsd jlist`/`prettylist`: PM2's process list shape (the keys tools rely on) plus pmsd's own."""

from __future__ import annotations

import functools
import json
import os
import pwd
import re
from collections.abc import Sequence
from typing import Any

from pmsd.definition.environment import incremented
from pmsd.model.record import AppRecord
from pmsd.model.spec import AppSpec, stderr_file, stdout_file
from pmsd.model.status import ProcessInfo


def log_paths(spec: AppSpec) -> tuple[str | None, str | None, str | None]:
    """PM2's (pm_out_log_path, pm_err_log_path, pm_log_path): the files the streams really go to.

    The files are pmsd.model.spec.stdout_file/stderr_file: log_file takes both streams when neither out_file
    nor error_file is set. A stream that goes to the journal has no file, so its path is null, never PM2's default
    ~/.pm2/logs/<name>-out.log (which would not exist). disable_logs is /dev/null, as PM2 writes it.
    """
    if spec.disable_logs:
        return "/dev/null", "/dev/null", None
    out, err = stdout_file(spec), stderr_file(spec)
    combined = spec.log_file if spec.log_file and not (spec.out_file or spec.error_file) else None
    return out, err, combined


def _username(spec: AppSpec, user: bool) -> str:
    """Who the app runs as: its User=, else the user manager's owner (the caller), else root."""
    if spec.user:
        return spec.user
    if not user:
        return "root"
    return _my_name()


@functools.lru_cache(maxsize=1)
def _my_name() -> str:
    """The caller's user name, looked up once however many apps are listed."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _logs_and_more(spec: AppSpec, env: dict[str, str]) -> dict[str, Any]:
    """The rest of PM2's pm2_env keys that mean something in pmsd."""
    out_log, err_log, combined_log = log_paths(spec)
    return {
        "version": "N/A",  # PM2 reads package.json's version for Node apps; pmsd reads no app file
        "pm_out_log_path": out_log,
        "pm_err_log_path": err_log,
        "pm_log_path": combined_log,
        # PM2 7: true for a single fork app (one set of files anyway) or with merge_logs; unset (null) for the
        # instances of a multi-instance app, each with its own files, "-<pm_id>" (AppRecord.log_spec)
        "merge_logs": True if spec.merge_logs or not spec.clustered else None,
        "disable_logs": spec.disable_logs,
        "log_date_format": spec.log_date_format,
        "log_type": spec.log_type,
        "increment_var": spec.increment_var,
        "treekill": spec.treekill,  # true: the whole cgroup is stopped; false: KillMode=mixed
        "env": env,  # the definition's env (env_<name>, increment_var applied); everything: `pmsd env <id>`
        # PM2's custom metrics and actions (pmx/@pm2/io): pmsd has none, and says so with PM2's empty values
        "axm_monitor": {},
        "axm_actions": [],
        "axm_options": {},
        "axm_dynamic": {},
    }


def _instance_env(record: AppRecord) -> dict[str, str]:
    """The definition's env as this instance has it: increment_var applied."""
    env = dict(record.spec.env)
    if record.spec.increment_var is not None and record.instance is not None:
        env[record.spec.increment_var] = incremented(env.get(record.spec.increment_var), record.increment_offset)
    return env


def _repeated_variables(spec: AppSpec, instance: int, env: dict[str, str]) -> dict[str, Any]:
    """PM2 also writes the instance under instance_var, and the incremented variable, beside its own keys."""
    extra: dict[str, Any] = {spec.instance_var: instance}
    if spec.increment_var is not None and spec.increment_var in env:
        extra[spec.increment_var] = env[spec.increment_var]
    return extra


def process_dict(info: ProcessInfo, user: bool) -> dict[str, Any]:
    spec = info.record.spec
    interpreter = "none" if spec.interpreter == "none" else spec.interpreter.rsplit("/", 1)[-1]
    instance = info.record.instance or 0
    env = _instance_env(info.record)
    pm2_env: dict[str, Any] = {
        "name": spec.name,
        "namespace": spec.namespace,
        "pm_id": info.pm_id,
        "status": str(info.status),
        "restart_time": info.restart_time,
        "unstable_restarts": info.unstable_restarts,
        "pm_uptime": info.uptime_since_ms,
        "created_at": info.record.created_at,
        "exec_mode": f"{spec.exec_mode}_mode",
        "instances": spec.instances if spec.clustered else 1,
        "NODE_APP_INSTANCE": instance,
        "instance_var": spec.instance_var,
        "wait_ready": spec.wait_ready,
        "listen_timeout": spec.listen_timeout,
        "port": spec.port,
        "pm_exec_path": spec.script,
        "pm_cwd": spec.cwd,
        "exec_interpreter": interpreter,
        "interpreter_args": list(spec.interpreter_args),
        "node_args": list(spec.interpreter_args),
        "args": list(spec.args),
        "exit_code": info.exit_code,
        "autorestart": spec.autorestart,
        "autostart": spec.autostart,
        "max_restarts": spec.max_restarts,
        "min_uptime": spec.min_uptime,
        "restart_delay": spec.restart_delay,
        "kill_timeout": spec.kill_timeout,
        "stop_exit_codes": list(spec.stop_exit_codes),
        "time": spec.time,
        "exp_backoff_restart_delay": spec.exp_backoff_restart_delay or None,
        "max_memory_restart": spec.max_memory_restart,
        "cron_restart": spec.cron_restart,
        "watch": list(spec.watch) or False,
        "ignore_watch": list(spec.ignore_watch),
        "watch_delay": spec.watch_delay,
        "username": _username(spec, user),
        "unique_id": info.invocation_id or None,
        **_logs_and_more(info.record.log_spec, env),
        # pmsd's own
        "unit_name": info.unit,
        "invocation_id": info.invocation_id or None,
        "scope": "user" if user else "system",
    }
    pm2_env.update({key: value for key, value in _repeated_variables(spec, instance, env).items()
                    if key not in pm2_env})
    return {
        "pid": info.pid,
        "name": spec.name,
        "pm_id": info.pm_id,
        "namespace": spec.namespace,
        "monit": {"memory": info.memory_bytes, "cpu": info.cpu_percent},
        "pm2_env": pm2_env,
    }


def jlist_entries(infos: Sequence[ProcessInfo], user: bool = True) -> list[dict[str, Any]]:
    return [process_dict(info, user) for info in infos]


def render_json(infos: Sequence[ProcessInfo], user: bool) -> str:
    return json.dumps(jlist_entries(infos, user), ensure_ascii=False) + "\n"


_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


def js_literal(value: Any, indent: int = 0) -> str:
    """A value as Node's util.inspect prints it (`status: 'online'`), which scripts grep for."""
    pad = "  " * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{pad}{k if _IDENTIFIER.match(k) else _js_string(k)}: {js_literal(v, indent + 1)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(pad + js_literal(v, indent + 1) for v in value) + "\n" + "  " * indent + "]"
    if isinstance(value, str):
        return _js_string(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def _js_string(text: str) -> str:
    body = json.dumps(text, ensure_ascii=False)[1:-1].replace('\\"', '"').replace("'", "\\'")
    return f"'{body}'"


def render_pretty(infos: Sequence[ProcessInfo], user: bool) -> str:
    return js_literal(jlist_entries(infos, user)) + "\n"
