"""`pmsd jlist`/`prettylist`: PM2's process list shape (the keys tools rely on) plus pmsd's own."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from pmsd.model.status import ProcessInfo


def process_dict(info: ProcessInfo, user: bool) -> dict[str, Any]:
    spec = info.record.spec
    interpreter = "none" if spec.interpreter == "none" else spec.interpreter.rsplit("/", 1)[-1]
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
        "NODE_APP_INSTANCE": info.record.instance or 0,
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
        "username": spec.user,
        "unique_id": info.invocation_id or None,
        # pmsd's own
        "unit_name": info.unit,
        "invocation_id": info.invocation_id or None,
        "scope": "user" if user else "system",
    }
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
