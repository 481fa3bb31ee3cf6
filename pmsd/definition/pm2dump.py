"""Read PM2's saved process list (`pm2 save` writes $PM2_HOME/dump.pm2) as pmsd app definitions.

The dump is a JSON list with one object per PM2 process: the process's `pm2_env`, in which PM2 mixes the app's
options with its own bookkeeping (pm_*, axm_*, status, restart counters) and with the app's environment, which
it also copies to the top level. This module turns it into raw app mappings, the shape of an ecosystem file's
`apps` entries, so that `pmsd.definition.build.build_spec` validates them like any other definition. The shapes
described here are the ones PM2 7.0.4 writes (fork, cluster, stopped, cron and watched apps, checked by hand).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping

from pmsd.definition.ecosystem import check_document, unreadable
from pmsd.definition.environment import carried_over
from pmsd.definition.parsers import describe_value
from pmsd.definition.settings import ALIASES, SETTINGS_BY_KEY
from pmsd.errors import UsageError

# PM2 keys whose value becomes the pmsd setting of the same name or one of its aliases (exec_interpreter is
# interpreter, node_args interpreter_args, uid user, gid group). Only these are read: the top level also holds
# a copy of every env variable, and a variable named like a setting must not become one. Every other key is
# PM2's own (pm_uptime, axm_*, vizion, username, ...) and is dropped, so build_spec has nothing to warn about.
CARRIED_KEYS = (
    "name", "namespace", "exec_interpreter", "node_args", "args", "uid", "gid", "filter_env",
    "autorestart", "max_restarts", "min_uptime", "restart_delay", "exp_backoff_restart_delay", "kill_timeout",
    "treekill", "stop_exit_codes", "max_memory_restart", "cron_restart", "watch", "ignore_watch", "watch_delay",
    "log_date_format", "time", "merge_logs", "log_type", "disable_logs", "instance_var", "increment_var",
    "wait_ready", "listen_timeout", "port", "shutdown_with_message",
)
# PM2's resolved paths, under pm_ names of their own.
RENAMED_KEYS = {"pm_exec_path": "script", "pm_cwd": "cwd"}
LOG_PATH_KEYS = {"pm_out_log_path": "out_file", "pm_err_log_path": "error_file", "pm_log_path": "log_file"}

# Variables PM2 7 puts in every app's `env` object (seen in real dumps): PM2_HOME, PM2_USAGE ("CLI"),
# PM2_JSON_PROCESSING (ecosystem starts), PM2_INTERACTOR_PROCESSING (command-line starts), unique_id (a UUID per
# app), and one named after the app itself ({} or "{}"). pm_id, name, namespace and the instance variable
# (NODE_APP_INSTANCE) sit at the top level only, but pmsd sets them itself at every start, so a copy in `env`
# (older PM2 versions) is dropped too, as is anything named like PM2's pm_*/axm_* keys.
INJECTED_ENV = frozenset({"pm_id", "name", "namespace", "unique_id", "NODE_APP_INSTANCE"})
INJECTED_ENV_PREFIXES = ("PM2_", "pm_", "axm_")

STOPPED = "stopped"  # PM2's status of an app that `pm2 stop` stopped (others: online, errored, launching, ...)
_PID_FILE_ID = re.compile(r"-([0-9]{1,18})\.pid$")  # a pm_id: not "²" nor 5000 digits, which int() refuses


def load_pm2_dump(path: str) -> tuple[list[dict[str, object]], list[str]]:
    """The apps of a PM2 dump file as raw pmsd definitions, one per PM2 app, and warnings about entries left
    out. Each app's `autostart` says whether PM2 had it running. UsageError when the file cannot be read as a
    PM2 dump."""
    entries = _entries(path, _read(path))
    warnings: list[str] = []
    groups: dict[str | int, list[Mapping[str, object]]] = {}  # by name; an entry without one by its index
    for index, entry in enumerate(entries):
        if not isinstance(entry.get("pm_exec_path"), str) or not entry["pm_exec_path"]:
            warnings.append(f"{path}: {_label(entry, index)} has no script path (pm_exec_path); left out")
            continue
        # One PM2 app is one entry per instance, all with the app's name (names are unique in pmsd).
        name = entry.get("name")
        groups.setdefault(name if isinstance(name, str) else index, []).append(entry)
    home_logs = os.path.join(os.path.dirname(os.path.abspath(path)), "logs")  # `pm2 save` writes into PM2_HOME
    return [_definition(instances, home_logs) for instances in groups.values()], warnings


def _read(path: str) -> object:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise UsageError(f"PM2 dump file not found: {path}",
                         "`pm2 save` writes it, to $PM2_HOME/dump.pm2 (~/.pm2/dump.pm2 by default)") from None
    except OSError as error:
        raise UsageError(f"cannot read PM2 dump file {path}: {error.strerror}") from None
    try:
        return json.loads(data)
    except json.JSONDecodeError as error:
        raise UsageError(f"{path}:{error.lineno}:{error.colno}: not a PM2 dump: invalid JSON: {error.msg}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a PM2 dump: not UTF-8 text") from None
    except (ValueError, RecursionError) as error:  # a number int() does not read, nesting past the recursion limit
        raise unreadable(f"{path}: not a PM2 dump", "JSON", error) from None


def _entries(path: str, document: object) -> list[Mapping[str, object]]:
    check_document(document, f"{path}: not a PM2 dump")
    if not isinstance(document, list):
        raise UsageError(f"{path}: not a PM2 dump: expected a JSON list of processes (what `pm2 save` "
                         f"writes), got {describe_value(document)}")
    entries: list[Mapping[str, object]] = []
    for index, entry in enumerate(document):
        if not isinstance(entry, Mapping):
            raise UsageError(f"{path}: not a PM2 dump: process #{index + 1} is {describe_value(entry)}, "
                             "not an object")
        entries.append(entry)
    return entries


def _label(entry: Mapping[str, object], index: int) -> str:
    name = entry.get("name")
    return f"app {name!r}" if isinstance(name, str) else f"process #{index + 1}"


def _definition(instances: list[Mapping[str, object]], home_logs: str) -> dict[str, object]:
    """One app from its instances' entries. The options are the same in each; the env differs only in the
    increment_var, whose base value is instance 0's, so that one is read."""
    first = min(instances, key=_instance_number)
    raw: dict[str, object] = {}
    for key in CARRIED_KEYS:
        if first.get(key) is not None:
            raw[ALIASES.get(key, key)] = first[key]
    raw.update({pmsd_key: first[key] for key, pmsd_key in RENAMED_KEYS.items() if first.get(key) is not None})
    mode = first.get("exec_mode")
    raw["exec_mode"] = mode.removesuffix("_mode") if isinstance(mode, str) else "fork"  # fork_mode, cluster_mode
    raw["instances"] = len(instances)
    raw["env"] = _user_env(first.get("env"), first.get("instance_var"), first.get("name"))
    raw.update(_log_files(first, home_logs))
    # pmsd's autostart: false registers an app without starting it, as `pm2 resurrect` does with a stopped one.
    raw["autostart"] = any(entry.get("status") != STOPPED for entry in instances)
    # Only what pmsd's settings table knows: the table above names settings, and this keeps it so.
    return {key: value for key, value in raw.items() if key in SETTINGS_BY_KEY}


def _instance_number(entry: Mapping[str, object]) -> int:
    """The instance's number, in the variable PM2 names instance_var (NODE_APP_INSTANCE unless set)."""
    variable = entry.get("instance_var")
    number = entry.get(variable if isinstance(variable, str) else "NODE_APP_INSTANCE")
    return number if isinstance(number, int) else 0


def _user_env(env: object, instance_var: object, name: object) -> dict[str, object]:
    """The `env` object without what PM2 injected. It also holds the environment `pm2 start` ran in (PM2 copies
    it in, after filter_env), which the app did see, so it stays; but not the shell's or systemd's variables of
    that one run (PWD, _, INVOCATION_ID, ...), which pmsd leaves out of a caller's environment too
    (pmsd.definition.environment), nor names systemd cannot load from an environment file."""
    if not isinstance(env, Mapping):
        return {}
    injected = INJECTED_ENV | {value for value in (instance_var, name) if isinstance(value, str)}
    return {key: value for key, value in env.items()
            if isinstance(key, str) and key not in injected and not key.startswith(INJECTED_ENV_PREFIXES)
            and carried_over(key)}


def _log_files(entry: Mapping[str, object], home_logs: str) -> dict[str, str]:
    """The log paths the user chose. PM2's own files, under $PM2_HOME/logs, are left out: under pmsd the output
    goes to the journal instead (`pmsd logs`), and PM2's directory goes away with PM2."""
    env = entry.get("env")
    home = env.get("PM2_HOME") if isinstance(env, Mapping) else None
    pm2_logs = {os.path.normpath(home_logs)}
    if isinstance(home, str):
        pm2_logs.add(os.path.normpath(os.path.join(home, "logs")))
    files: dict[str, str] = {}
    for key, pmsd_key in LOG_PATH_KEYS.items():
        path = entry.get(key)
        if isinstance(path, str) and path and os.path.dirname(os.path.normpath(path)) not in pm2_logs:
            files[pmsd_key] = _unsuffixed(path, entry)
    return files


def _unsuffixed(path: str, entry: Mapping[str, object]) -> str:
    """The path the user gave. Without merge_logs, PM2 gives each cluster instance its own file, inserting
    "-<pm_id>" before the extension (out.log is out-3.log; a name without an extension is left alone); pmsd's
    instances share one file, so the suffix goes. The dump has no pm_id, but the pid file's name carries it."""
    if entry.get("merge_logs"):
        return path
    pm_id = entry.get("pm_id")
    if not isinstance(pm_id, int):
        pid_file = entry.get("pm_pid_path")
        match = _PID_FILE_ID.search(pid_file) if isinstance(pid_file, str) else None
        if match is None:
            return path
        pm_id = int(match.group(1))
    return re.sub(rf"-{pm_id}(\.[^./]+)$", r"\1", path)
