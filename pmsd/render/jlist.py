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
    return with_runtime(record_entry(info.record, user), info)


def record_entry(record: AppRecord, user: bool) -> dict[str, Any]:
    """An app's entry as far as its record says; with_runtime() fills in the rest, in place, so the keys keep
    PM2's order. `pmsd jlist` builds these while god reads the apps' state (PreparedEntries)."""
    spec = record.spec
    interpreter = "none" if spec.interpreter == "none" else spec.interpreter.rsplit("/", 1)[-1]
    instance = record.instance or 0
    env = _instance_env(record)
    pm2_env: dict[str, Any] = {
        "name": spec.name,
        "namespace": spec.namespace,
        "pm_id": record.pm_id,
        "status": None,  # this key and the others set to None here: with_runtime()
        "restart_time": None,
        "unstable_restarts": None,
        "pm_uptime": None,
        "created_at": record.created_at,
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
        "exit_code": None,
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
        "unique_id": None,
        **_logs_and_more(record.log_spec, env),
        # pmsd's own
        "unit_name": None,
        "invocation_id": None,
        "scope": "user" if user else "system",
    }
    pm2_env.update({key: value for key, value in _repeated_variables(spec, instance, env).items()
                    if key not in pm2_env})
    return {"pid": None, "name": spec.name, "pm_id": record.pm_id, "namespace": spec.namespace, "monit": None,
            "pm2_env": pm2_env}


def with_runtime(entry: dict[str, Any], info: ProcessInfo) -> dict[str, Any]:
    """record_entry()'s entry with what systemd and god say of the app now."""
    entry["pid"] = info.pid
    entry["monit"] = {"memory": info.memory_bytes, "cpu": info.cpu_percent}
    pm2_env = entry["pm2_env"]
    pm2_env["status"] = str(info.status)
    pm2_env["restart_time"] = info.restart_time
    pm2_env["unstable_restarts"] = info.unstable_restarts
    pm2_env["pm_uptime"] = info.uptime_since_ms
    pm2_env["exit_code"] = info.exit_code
    pm2_env["unique_id"] = pm2_env["invocation_id"] = info.invocation_id or None
    pm2_env["unit_name"] = info.unit
    return entry


class PreparedEntries:
    """Entries built from the records while god reads the apps' state (list_processes' `meanwhile`), finished
    when it answers: on two cores the two overlap (issue 17: 5-8 ms of `pmsd jlist` of 1,000 apps, measured
    in-process with and without, alternating)."""

    def __init__(self, user: bool) -> None:
        self.user = user
        self.by_id: dict[int, tuple[AppRecord, dict[str, Any]]] = {}

    def prepare(self, records: Sequence[AppRecord]) -> None:
        self.by_id = {record.pm_id: (record, record_entry(record, self.user)) for record in records}

    def entries(self, infos: Sequence[ProcessInfo]) -> list[dict[str, Any]]:
        out = []
        for info in infos:
            record, entry = self.by_id.pop(info.pm_id, (None, {}))
            if record is not info.record:  # not prepared from this very record
                entry = record_entry(info.record, self.user)
            out.append(with_runtime(entry, info))
        return out


def jlist_entries(infos: Sequence[ProcessInfo], user: bool = True) -> list[dict[str, Any]]:
    return [process_dict(info, user) for info in infos]


def render_json(infos: Sequence[ProcessInfo], user: bool) -> str:
    entries = jlist_entries(infos, user)
    # No cycle check: entries are trees of plain values (10% of the encoding of 1,000 entries)
    return json.dumps(entries, ensure_ascii=False, check_circular=False) + "\n"


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


def render_pretty(infos: Sequence[ProcessInfo], user: bool, prepared: PreparedEntries | None = None) -> str:
    return js_literal(prepared.entries(infos) if prepared is not None else jlist_entries(infos, user)) + "\n"
