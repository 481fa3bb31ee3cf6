"""Build a validated app definition: one raw app mapping (from an ecosystem file or from `pmsd start` flags)
becomes a frozen `AppSpec`, using the settings table for every key; problems are reported with the file, app
and key.

`build_spec` runs one step per concern, in a fixed order (the order decides which error a broken definition
reports first): parse every key, then the environment, cwd, program, name, namespace, cluster mode and port,
watch paths and log paths, and last the unit text. Every other option reaches the `AppSpec` unchanged from its
parser.

Nothing a user writes reaches a systemd unit unchecked (issue 11): the parsers refuse what systemd could not
read back (pmsd.definition.unitvalues), and the values computed here (cwd, the program, log paths, the name)
are checked once computed, all before anything is created.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from pmsd.definition.interpreter import Program, resolve_program
from pmsd.definition.parsers import parse_port, port_number
from pmsd.definition.settings import ALIASES, NOT_YET_HONOURED, SETTINGS, SETTINGS_BY_KEY
from pmsd.definition.units import unit_text_problem
from pmsd.definition.unitvalues import (
    argument_problem,
    exec_path_problem,
    path_problem,
    plain_value_problem,
    unicode_problem,
)
from pmsd.errors import UsageError
from pmsd.model.spec import AppSpec, Source
from pmsd.systemd.names import check_app_name

# AppSpec fields that a step of build_spec computes (from the parsed values, the file system and each other)
# rather than copying a parsed value. exec_path and argv are not settings: program resolution makes them.
COMPUTED_FIELDS = frozenset({
    "name", "script", "interpreter", "exec_path", "argv", "cwd", "namespace", "env", "exec_mode", "port",
    "watch", "out_file", "error_file", "log_file",
})
# Settings whose parsed value is the AppSpec field as it is: every setting that is an AppSpec field and that
# no step computes.
PASSTHROUGH_KEYS = frozenset(
    ({setting.key for setting in SETTINGS} & {field.name for field in fields(AppSpec)}) - COMPUTED_FIELDS)
LOG_KEYS = ("out_file", "error_file", "log_file")
PATH_HINT = "use a path without control characters, spaces at its ends or a trailing backslash"


def build_spec(
    raw: Mapping[str, object], source: Source, env_name: str | None, path_env: str | None,
    warn: list[str],
) -> AppSpec:
    app = _App.of(raw, source)
    values = _parse_keys(raw, app, warn)
    if "script" not in values:
        raise app.fail("script", "missing", "every app needs a script (a file or a command on PATH)")
    env = _environment(values, raw, env_name, app)
    cwd = _working_directory(values, app)
    values = _command_string(values, cwd, env.get("PATH", path_env))
    program = _program(values, cwd, env.get("PATH", path_env), app)
    name = _name(values, program.script, app)
    namespace = _namespace(values, app)
    exec_mode = _exec_mode(values)
    port = _shared_port(values, exec_mode, env, app)
    if port is not None:  # the instances find the shared port in PORT, unless env sets it already
        env.setdefault("PORT", str(port_number(port)))
    watch = _watch_paths(values, cwd)
    out_file, error_file, log_file = (_log_path(values, key, cwd, app) for key in LOG_KEYS)
    spec = AppSpec(
        name=name, script=program.script, interpreter=program.interpreter, exec_path=program.exec_path,
        argv=program.argv, cwd=cwd, namespace=namespace, env=env, exec_mode=exec_mode, port=port, watch=watch,
        out_file=out_file, error_file=error_file, log_file=log_file,
        **{key: values[key] for key in PASSTHROUGH_KEYS if key in values},
    )
    _check_unit_text(spec, app)
    return spec


@dataclass(frozen=True)
class _App:
    """The app being built, as error messages and warnings name it."""

    source: Source
    label: str  # "app 'api'", or "an app" while it has no (valid) name

    @classmethod
    def of(cls, raw: Mapping[str, object], source: Source) -> _App:
        name = raw.get("name")
        return cls(source, f"app {name!r}" if isinstance(name, str) else "an app")

    def fail(self, key: str, problem: str, hint: str | None = None) -> UsageError:
        """The error for one key, spelled as the user wrote it: a flag or a file's key."""
        if self.source.from_command_line:
            return UsageError(f"--{key.replace('_', '-')}: {problem}", hint)
        return UsageError(f"{self.source.label}: {self.label}, key {key!r}: {problem}", hint)


def _parse_keys(raw: Mapping[str, object], app: _App, warn: list[str]) -> dict[str, Any]:
    """Every key through its setting's parser (aliases under their setting's key); env_<name> overlays are
    left for `_environment`, other keys no setting knows end in a warning."""
    values: dict[str, Any] = {}
    unknown: list[str] = []
    ignored: list[str] = []
    for raw_key, value in raw.items():
        if not isinstance(raw_key, str):  # YAML allows `1: x` or `true: y`
            raise app.fail(str(raw_key), "option names must be strings")
        key = ALIASES.get(raw_key, raw_key)
        setting = SETTINGS_BY_KEY.get(key)
        if setting is None:
            if not raw_key.startswith("env_"):
                (ignored if raw_key in NOT_YET_HONOURED else unknown).append(raw_key)
            continue
        try:
            values[key] = setting.parse(value)
        except ValueError as error:
            raise app.fail(raw_key, str(error), getattr(error, "hint", None)) from None
    _warn_ignored_keys(app, unknown, ignored, warn)
    return values


def _warn_ignored_keys(app: _App, unknown: list[str], ignored: list[str], warn: list[str]) -> None:
    where = f"{app.source.label}: {app.label}"
    if unknown:
        warn.append(f"{where}: unknown keys ignored: {', '.join(sorted(unknown))}")
    if ignored:
        warn.append(f"{where}: PM2 options not supported by this pmsd version, ignored: "
                    f"{', '.join(sorted(ignored))}")


def _environment(values: Mapping[str, Any], raw: Mapping[str, object], env_name: str | None,
                 app: _App) -> dict[str, str]:
    """The app's env, with the env_<env_name> overlay (`--env <env_name>`) applied when the app has one."""
    env = dict(values.get("env", {}))
    if env_name is not None:
        overlay = raw.get(f"env_{env_name}")
        if overlay is not None:
            try:
                env.update(SETTINGS_BY_KEY["env"].parse(overlay))
            except ValueError as error:
                raise app.fail(f"env_{env_name}", str(error)) from None
    return env


def _working_directory(values: Mapping[str, Any], app: _App) -> str:
    """cwd, relative to the ecosystem file's directory (or the current directory); it must exist."""
    cwd = _normalized(os.path.join(app.source.base_dir, os.path.expanduser(values.get("cwd") or ".")))
    if not os.path.isdir(cwd):
        raise app.fail("cwd", f"{cwd} is not a directory")
    problem = path_problem(cwd)  # WorkingDirectory=
    if problem is not None:
        raise app.fail("cwd", f"systemd cannot take this working directory: {problem}", PATH_HINT)
    return cwd


def _normalized(path: str) -> str:
    """os.path.normpath, and one leading slash where POSIX lets it keep two (systemd simplifies "//" to "/")."""
    path = os.path.normpath(path)
    return "/" + path.lstrip("/") if path.startswith("//") else path


def _command_string(values: dict[str, Any], cwd: str, path_env: str | None) -> dict[str, Any]:
    """PM2 runs a script with a space in it (`pm2 start "npm run dev"`) as `bash -c "<script>"` (sh when there
    is no bash), and names the app after the whole command. So does pmsd, when the script is not a file (a
    path with a space in it is run as a file); arguments after `--` are appended to the command, quoted, where
    PM2 drops them."""
    script: str = values["script"].strip()
    if " " not in script or values.get("interpreter") not in (None, "none"):
        return values
    if os.path.exists(os.path.join(cwd, os.path.expanduser(values["script"]))):
        return values
    shell = "bash" if shutil.which("bash", path=path_env) else "sh"
    command = " ".join([script, *(shlex.quote(arg) for arg in values.get("args", ()))])
    return {**values, "script": shell, "interpreter": "none", "args": ("-c", command),
            "name": values.get("name") or script}


def _program(values: Mapping[str, Any], cwd: str, path_env: str | None, app: _App) -> Program:
    """What systemd executes: the script, its interpreter and their arguments, found on the app's PATH."""
    try:
        program = resolve_program(
            values["script"], cwd, values.get("interpreter"), values.get("interpreter_args", ()),
            values.get("args", ()), path_env,
        )
    except UsageError as error:
        raise UsageError(f"{app.source.label}: {app.label}: {error.message}", error.hint) from None
    key = "script" if program.interpreter == "none" else "interpreter"
    problem = exec_path_problem(program.exec_path)  # ExecStart='s program
    if problem is not None:
        raise app.fail(key, f"systemd cannot execute this program: {problem}",
                       "rename it, or run it through a symlink whose path systemd takes")
    problem = argument_problem(program.script)  # the script is an argument of its interpreter
    if problem is not None:
        raise app.fail("script", problem, "rename it")
    return program


def _name(values: Mapping[str, Any], script: str, app: _App) -> str:
    name: str = values.get("name") or _default_name(script)
    problem = unicode_problem(name)  # before check_app_name, whose escaping cannot encode it
    if problem is not None:
        raise app.fail("name", f"app name {problem}", "choose a name in valid text")
    try:
        check_app_name(name)
    except UsageError as error:
        raise app.fail("name", error.message, error.hint) from None
    # Description= and SyslogIdentifier= hold the name as a plain value (C1 control characters pass
    # check_app_name, which refuses C0 and DEL).
    problem = plain_value_problem(name)
    if problem is not None:
        raise app.fail("name", f"app name {problem}",
                       "choose a printable name without spaces at its ends or a trailing backslash")
    return name


def _default_name(script: str) -> str:
    base = os.path.basename(script)
    stem, _ = os.path.splitext(base)
    return stem or base


def _namespace(values: Mapping[str, Any], app: _App) -> str:
    namespace: str = values.get("namespace", "default")
    if not namespace:
        raise app.fail("namespace", "cannot be empty")
    return namespace


def _exec_mode(values: Mapping[str, Any]) -> str:
    # PM2 runs `-i N` apps in cluster mode unless told otherwise.
    mode: str = values.get("exec_mode") or ("cluster" if "instances" in values else "fork")
    return mode


def _shared_port(values: Mapping[str, Any], exec_mode: str, env: Mapping[str, str], app: _App) -> str | None:
    """The port a cluster app's instances share: `port`, or else env.PORT (not when every instance gets its
    own PORT through increment_var). Only apps that run as instances can share one."""
    clustered = exec_mode == "cluster" or values.get("instances", 1) > 1
    port: str | None = values.get("port")
    if port is None and exec_mode == "cluster" and "PORT" in env and values.get("increment_var") != "PORT":
        # PM2's convention: a cluster app listens on env.PORT; that is the port the instances share.
        try:
            port = parse_port(env["PORT"])
        except ValueError as error:
            raise app.fail("env", f"PORT: {error}", "set `port` explicitly, or fix env.PORT") from None
    if port is not None and not clustered:
        raise app.fail("port", "a shared port needs cluster mode", "add instances (-i N) or exec_mode: cluster")
    return port


def _watch_paths(values: Mapping[str, Any], cwd: str) -> tuple[str, ...]:
    """Absolute paths to watch (relative ones start at cwd); empty: not watched."""
    return tuple(os.path.normpath(os.path.join(cwd, os.path.expanduser(path))) for path in values.get("watch") or ())


def _log_path(values: Mapping[str, Any], key: str, cwd: str, app: _App) -> str | None:
    """PM2 log paths are relative to the app's cwd; systemd creates the file but not its directory."""
    if not values.get(key):
        return None
    path = _normalized(os.path.join(cwd, os.path.expanduser(values[key])))
    if os.path.isdir(path):
        raise app.fail(key, f"{path} is a directory; give a file path")
    if not os.path.isdir(os.path.dirname(path)):
        raise app.fail(key, f"directory {os.path.dirname(path)} does not exist", "create it first")
    problem = path_problem(path)  # StandardOutput=append:PATH
    if problem is not None:
        raise app.fail(key, f"systemd cannot append to this file: {problem}", PATH_HINT)
    return path


def _check_unit_text(spec: AppSpec, app: _App) -> None:
    """The last check: every unit-file line the definition renders is one line systemd reads (the values are
    checked above; what is left is a line too long, such as many long arguments)."""
    found = unit_text_problem(spec)
    if found is not None:
        key, problem = found
        raise app.fail(key, f"systemd cannot take this definition: {problem}", "shorten it")
