"""The app's environment, kept in an owner-only EnvironmentFile=.

PM2 gives an app the environment `pm2 start` ran in, overlaid by `env` and `env_<name>`. Values can be
secrets, and unit properties such as Environment= are readable by every local user over D-Bus
(`systemctl show`), so pmsd writes them to a 0600 file the manager reads at each start (systemd.exec(5),
EnvironmentFile=).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping

# Variables systemd sets for each execution. A value from EnvironmentFile= would override systemd's own
# (exec_child merges the file last), so copying them from the caller would hand the app stale sockets,
# fds and ids; shell bookkeeping is dropped for the same reason.
_PER_EXECUTION = frozenset({
    "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "INVOCATION_ID", "JOURNAL_STREAM",
    "MAINPID", "MANAGERPID", "SYSTEMD_EXEC_PID", "WATCHDOG_PID", "WATCHDOG_USEC", "SERVICE_RESULT",
    "EXIT_CODE", "EXIT_STATUS", "MONITOR_SERVICE_RESULT", "MONITOR_EXIT_CODE", "MONITOR_EXIT_STATUS",
    "MONITOR_INVOCATION_ID", "MONITOR_UNIT", "TRIGGER_UNIT", "TRIGGER_PATH", "TRIGGER_TIMER_REALTIME_USEC",
    "TRIGGER_TIMER_MONOTONIC_USEC", "PIDFILE", "RUNTIME_DIRECTORY", "STATE_DIRECTORY", "CACHE_DIRECTORY",
    "LOGS_DIRECTORY", "CONFIGURATION_DIRECTORY", "CREDENTIALS_DIRECTORY", "PWD", "OLDPWD", "SHLVL", "_",
})


def app_environment(
    caller: Mapping[str, str], definition: Mapping[str, str], pm_id: int, name: str, namespace: str,
    instance: int | None = None, instance_var: str = "NODE_APP_INSTANCE", increment_var: str | None = None,
) -> dict[str, str]:
    # Names systemd would refuse to load from an EnvironmentFile (bash function exports, ...) cannot reach
    # the app anyway; leave them out rather than let systemd log a warning at every start.
    env = {k: v for k, v in caller.items() if k not in _PER_EXECUTION and is_valid_env_name(k)}
    env.update(definition)
    # What PM2 exposes to every app; NODE_APP_INSTANCE is 0 for a single instance.
    env.update({"pm_id": str(pm_id), "name": name, "namespace": namespace})
    if instance is None:
        env["NODE_APP_INSTANCE"] = env.get("NODE_APP_INSTANCE", "0")
        return env
    env[instance_var] = str(instance)
    if increment_var is not None:
        # PM2's increment_var: the definition's value plus the instance number (PORT 3000 -> 3000, 3001...).
        # A value that is not a number is left as it is, as PM2 does.
        with contextlib.suppress(ValueError):
            env[increment_var] = str(int(env.get(increment_var, "0")) + instance)
    return env


_VALID_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_valid_env_name(name: str) -> bool:
    """What systemd's env_name_is_valid() accepts (src/basic/env-util.c): a shell variable name."""
    return _VALID_NAME.fullmatch(name) is not None


def render_env_file(env: Mapping[str, str]) -> str:
    """KEY="value" lines. Inside double quotes systemd's env-file parser (src/basic/env-file.c) takes
    newlines literally and unescapes only \\\\, \\", \\` and \\$, so escaping exactly those round-trips any value."""
    lines = []
    for key in sorted(env):
        value = env[key]
        for char in ("\\", '"', "`", "$"):
            value = value.replace(char, "\\" + char)
        lines.append(f'{key}="{value}"\n')
    return "".join(lines)


def parse_env_file(text: str) -> dict[str, str]:
    """Inverse of render_env_file (for `pmsd env` and restarts that keep the stored environment)."""
    env: dict[str, str] = {}
    index = 0
    while index < len(text):
        end_key = text.find('="', index)
        if end_key < 0:
            break
        key = text[index:end_key]
        index = end_key + 2
        value: list[str] = []
        while index < len(text) and text[index] != '"':
            if text[index] == "\\" and index + 1 < len(text):
                index += 1
            value.append(text[index])
            index += 1
        env[key] = "".join(value)
        index += 2  # closing quote and newline
    return env


def write_env_file(path: str, env: Mapping[str, str]) -> None:
    """Write atomically with mode 0600 from the first byte (never briefly world-readable)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(render_env_file(env))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def read_env_file(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8", newline="") as handle:  # keep "\r" in values as systemd does
        return parse_env_file(handle.read())
