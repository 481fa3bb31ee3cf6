"""pmsd's global settings, `pmsd set <key> <value>`: defaults for every app where PM2 has `pm2 set` (its
pm2-logrotate module's keys), the switch to PM2's default log file paths, and where god serves Prometheus
metrics (metrics_listen, pmsd.god.metrics_http).

An app's own option always wins over a global one (`--log-max-size` beside `pmsd set log_max_size`). The values
are kept in the state directory (pmsd.state.config) and read by god, which writes and rotates the files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pmsd.definition.parsers import (
    ValueHint,
    parse_bool,
    parse_count,
    parse_memory_bytes,
    parse_port,
    parse_positive_duration_ms,
    parse_str,
)
from pmsd.definition.settings import Setting
from pmsd.errors import UsageError
from pmsd.model.spec import AppSpec

METRICS_UNIX = "unix"  # metrics_listen: god's runtime directory's metrics.sock (pmsd.state.paths)


def parse_metrics_listen(value: object) -> str:
    """Where god serves Prometheus metrics over HTTP: "" (off), "unix", or an address and port."""
    text = parse_str(value).strip()
    if text.lower() in ("", "off"):
        return ""
    if text.lower() == METRICS_UNIX:
        return METRICS_UNIX
    try:
        listen = parse_port(text)
    except ValueError as error:
        raise ValueHint(f"{error}", "give 'unix', an IP address and port such as 127.0.0.1:9209, or 'off'") from None
    if ":" not in listen:
        raise ValueHint(f"{text!r} names a port but no address",
                        f"give 127.0.0.1:{listen} (this host only) or 0.0.0.0:{listen} (every interface)")
    return listen


# The rows of the settings table's shape (pmsd.definition.settings.Setting); the defaults are the global ones.
CONFIG_KEYS: dict[str, Setting] = {key.key: key for key in (
    Setting("log_max_size", parse_memory_bytes, None, "rotate every app's log files above this size ('10M')"),
    Setting("log_retain", parse_count, 30, "rotated files kept per log file"),
    Setting("log_compress", parse_bool, False, "gzip rotated log files"),
    Setting("log_rotate_interval", parse_positive_duration_ms, None, "rotate every app's log files this often "
            "('24h'), at the first line after the interval"),
    Setting("pm2_log_paths", parse_bool, False, "apps started from now on with no out_file/error_file log to "
            "PM2's default files, $PM2_HOME/logs/<app>-out.log and <app>-error.log ($PM2_HOME: ~/.pm2), "
            "written by god, instead of the journal"),
    Setting("metrics_listen", parse_metrics_listen, "", "god serves Prometheus metrics over HTTP (GET /metrics) on "
            "'unix' (metrics.sock beside god's socket: $XDG_RUNTIME_DIR/pmsd/, /run/pmsd/ for --system) or an "
            "address and port ('127.0.0.1:9209'); '' or 'off': not served (the default)"),
)}
# pm2-logrotate's names for the same settings (`pm2 set pm2-logrotate:max_size 10M`)
PM2_ALIASES = {"pm2-logrotate:max_size": "log_max_size", "pm2-logrotate:retain": "log_retain",
               "pm2-logrotate:compress": "log_compress"}


def config_key(key: str) -> Setting:
    """The key, or a UsageError listing those pmsd knows."""
    found = CONFIG_KEYS.get(PM2_ALIASES.get(key, key))
    if found is None:
        raise UsageError(f"set: no global setting {key!r}; pmsd has {', '.join(CONFIG_KEYS)}",
                         "an app's own settings go in its definition (ecosystem file, or `pmsd start` flags), its "
                         "variables in its env; then `pmsd restart <app> --update-env`")
    return found


def parse_config_value(key: str, raw: str) -> tuple[str, Any]:
    """(the setting's own key, the value as stored) for `pmsd set key raw`."""
    setting = config_key(key)
    try:
        return setting.key, setting.parse(raw)
    except ValueError as error:
        raise UsageError(f"set {key}: {error}", error.hint if isinstance(error, ValueHint) else None) from None


def config_value(config: Mapping[str, Any], key: str) -> Any:
    """The global value of a key: what `pmsd set` stored, else its default."""
    return config.get(key, CONFIG_KEYS[key].default)


def pm2_log_name(name: str) -> str:
    """The app name as PM2 puts it in its default file names (PM2 7: "we ird.n@me" -> "we-ird.n-me")."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", name)


def with_pm2_log_paths(spec: AppSpec, logs_dir: str) -> AppSpec:
    """PM2's default files for the streams the definition gives no file of their own (pm2_log_paths); a
    log_file path stays the combined file beside them, as in PM2."""
    if spec.disable_logs:
        return spec
    stem = os.path.join(logs_dir, pm2_log_name(spec.name))
    return replace(spec, out_file=spec.out_file or f"{stem}-out.log", error_file=spec.error_file or f"{stem}-error.log")
