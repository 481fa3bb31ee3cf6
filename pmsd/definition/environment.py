"""The environment an app runs with, as PM2 composes it.

PM2 gives an app the environment `pm2 start` ran in, overlaid by `env` and `env_<name>`, plus the variables it
exposes to every app (pm_id, name, namespace, NODE_APP_INSTANCE); `filter_env` leaves out all or part of the
caller's environment first. pmsd.state.envfiles stores the result.
"""

from __future__ import annotations

import pwd
import re
from collections.abc import Mapping

from pmsd.model.record import AppRecord

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


def carried_over(name: str) -> bool:
    """Whether a variable of the caller's environment reaches the app's environment file: not one systemd sets
    per execution (or shell bookkeeping), and a name systemd can load from an EnvironmentFile=."""
    return name not in _PER_EXECUTION and is_valid_env_name(name)


def record_environment(caller: Mapping[str, str], record: AppRecord) -> dict[str, str]:
    """app_environment for a registry record (an app, or one instance of a cluster app)."""
    spec = record.spec
    return app_environment(caller, spec.env, record.pm_id, record.name, spec.namespace, record.instance,
                           spec.instance_var, spec.increment_var, spec.filter_env, record.increment)


def app_environment(
    caller: Mapping[str, str], definition: Mapping[str, str], pm_id: int, name: str, namespace: str,
    instance: int | None = None, instance_var: str = "NODE_APP_INSTANCE", increment_var: str | None = None,
    filter_env: bool | tuple[str, ...] = False, increment: int | None = None,
) -> dict[str, str]:
    # Names systemd would refuse to load from an EnvironmentFile (bash function exports, ...) cannot reach
    # the app anyway; leave them out rather than let systemd log a warning at every start.
    env = {k: v for k, v in filter_caller(caller, filter_env).items() if carried_over(k)}
    env.update(definition)
    # What PM2 exposes to every app; NODE_APP_INSTANCE is 0 for a single instance.
    env.update({"pm_id": str(pm_id), "name": name, "namespace": namespace})
    if instance is None:
        env["NODE_APP_INSTANCE"] = env.get("NODE_APP_INSTANCE", "0")
        return env
    env[instance_var] = str(instance)
    if increment_var is not None:
        env[increment_var] = incremented(env.get(increment_var), instance if increment is None else increment)
    return env


def incremented(value: str | None, offset: int) -> str:
    """PM2's increment_var: the definition's value plus the instance's offset (PORT 3000 -> 3000, 3001...;
    pmsd.model.record.AppRecord.increment). A missing value counts from 0; one that is not a whole number
    stays as it is, as in PM2 (God.js: Number(x) || 0 only for a missing or non-numeric base)."""
    try:
        return str(int(value if value is not None else "0") + offset)
    except ValueError:
        return value if value is not None else str(offset)


def filter_caller(caller: Mapping[str, str], filter_env: bool | tuple[str, ...]) -> dict[str, str]:
    """PM2's filter_env (lib/Common.js): True leaves out the whole caller environment, strings its variables
    whose names contain one of them. Only the caller's environment is filtered: the definition's env and PM2's
    own variables are added afterwards."""
    if filter_env is True:
        return {}
    if not filter_env:
        return dict(caller)
    return {k: v for k, v in caller.items() if not any(part in k for part in filter_env)}


_VALID_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_valid_env_name(name: str) -> bool:
    """What systemd's env_name_is_valid() accepts (src/basic/env-util.c): a shell variable name."""
    return _VALID_NAME.fullmatch(name) is not None


def runs_as_another_user(user: str | None, system: bool, caller_uid: int) -> bool:
    """A system app whose User= is not the caller: it must not see the caller's environment (root's HOME, USER,
    or a secret exported in root's shell). systemd itself gives such a service the user's HOME, USER, LOGNAME
    and SHELL (systemd.exec(5), "Environment Variables in Spawned Processes"), as long as pmsd's environment file
    does not override them. An unknown user counts as another user."""
    if not system or user is None:
        return False
    if user.isascii() and user.isdigit():  # a uid, as systemd reads one ("²" is a name to it, and to int() nothing)
        return int(user) != caller_uid
    try:
        return pwd.getpwnam(user).pw_uid != caller_uid
    except KeyError:
        return True
