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

from pmsd.definition.ecosystem import DEPLOY_ENV
from pmsd.definition.interpreter import Program, resolve_program
from pmsd.definition.parsers import parse_port, port_number
from pmsd.definition.settings import ALIASES, NO_EFFECT, NO_EFFECT_ALIASES, SETTINGS, SETTINGS_BY_KEY, is_node
from pmsd.definition.units import unit_text_problem
from pmsd.definition.unitvalues import (
    argument_problem,
    exec_path_problem,
    path_problem,
    plain_value_problem,
    unicode_problem,
)
from pmsd.errors import UsageError
from pmsd.model.spec import DISCARD, AppSpec, Source
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
    name = _name(values, program.script, env_name, app)
    namespace = _namespace(values, app)
    exec_mode = _exec_mode(values, program.interpreter, env)
    port = _shared_port(values, exec_mode, env, app)
    if port is not None:  # the instances find the shared port in PORT, unless env sets it already
        env.setdefault("PORT", str(port_number(port)))
    elif "port" in values and not _overlay_sets(raw, env_name, "PORT"):
        # PM2 (lib/Common.js, prepareAppConf) only sets PORT for a fork app's `port`; env_<name> may set another.
        env["PORT"] = str(port_number(values["port"]))
    watch = _watch_paths(values, cwd)
    out_file, error_file, log_file = (_log_path(values, key, cwd, app, warn) for key in LOG_KEYS)
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
    """Every key through its setting's parser (an alias or camelCase spelling under its setting's key; the
    setting's own key wins over them, as in PM2's lib/tools/Config.js); env_<name> overlays are left for
    `_environment`, keys with no effect under pmsd and keys no setting knows end in a warning."""
    values: dict[str, Any] = {}
    spelled: dict[str, str] = {}  # setting key -> the spelling its value came from
    unknown: list[str] = []
    no_effect: list[str] = []
    for raw_key, value in raw.items():
        if not isinstance(raw_key, str):  # YAML allows `1: x` or `true: y`
            raise app.fail(str(raw_key), "option names must be strings")
        key = ALIASES.get(raw_key, raw_key)
        setting = SETTINGS_BY_KEY.get(key)
        if setting is None:
            if raw_key in NO_EFFECT or raw_key in NO_EFFECT_ALIASES:
                no_effect.append(raw_key)
            elif not raw_key.startswith("env_") and raw_key != DEPLOY_ENV:
                unknown.append(raw_key)
            continue
        if key in spelled and (spelled[key] == key or raw_key != key):
            continue  # the first spelling of the key, unless the setting's own key comes later
        try:
            values[key] = setting.parse(value)
        except ValueError as error:
            raise app.fail(raw_key, str(error), getattr(error, "hint", None)) from None
        spelled[key] = raw_key
    _warn_ignored_keys(app, unknown, no_effect, warn)
    return values


def _warn_ignored_keys(app: _App, unknown: list[str], no_effect: list[str], warn: list[str]) -> None:
    where = f"{app.source.label}: {app.label}"
    if unknown:
        # A key is printed as it is only when printable: "\n" or an escape sequence in one would forge lines.
        keys = (key if key.isprintable() else repr(key) for key in sorted(unknown))
        warn.append(f"{where}: unknown keys ignored: {', '.join(keys)}")
    if no_effect:
        reasons = (f"{key} ({NO_EFFECT[NO_EFFECT_ALIASES.get(key, key)]})" for key in sorted(no_effect))
        warn.append(f"{where}: accepted, no effect under pmsd: {'; '.join(reasons)}")


def _environment(values: Mapping[str, Any], raw: Mapping[str, object], env_name: str | None,
                 app: _App) -> dict[str, str]:
    """The app's env; with `--env <env_name>`, the file's deploy.<env_name>.env over it, then the app's
    env_<env_name> over both. That is what PM2 7 does (lib/Common.js, mergeEnvironmentVariables): its comment
    calls deploy's env the least priority, but it is merged into the app's env object, over its values."""
    env = dict(values.get("env", {}))
    if env_name is None:
        return env
    deploy = raw.get(DEPLOY_ENV)
    overlays = [(f"deploy.{env_name}.env", deploy.get(env_name) if isinstance(deploy, Mapping) else None),
                (f"env_{env_name}", raw.get(f"env_{env_name}"))]
    for key, overlay in overlays:
        if overlay is not None:
            try:
                env.update(SETTINGS_BY_KEY["env"].parse(overlay))
            except ValueError as error:
                raise app.fail(key, str(error)) from None
    return env


def _overlay_sets(raw: Mapping[str, object], env_name: str | None, variable: str) -> bool:
    overlay = raw.get(f"env_{env_name}") if env_name is not None else None
    return isinstance(overlay, Mapping) and variable in overlay


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


def _name(values: Mapping[str, Any], script: str, env_name: str | None, app: _App) -> str:
    name: str = values.get("name") or _default_name(script)
    if values.get("append_env_to_name") and env_name:
        name += f"-{env_name}"  # PM2's _startJson (lib/API.js)
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


def definition_of(spec: AppSpec) -> dict[str, object]:
    """An app's definition as an ecosystem file holds it: every setting the spec has a value for, by its key.
    build_spec of it gives the same app again (restart flags rebuild apps from it; `start -w` writes it)."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in spec.to_json().items()
            if key in SETTINGS_BY_KEY and value is not None}


def declared_name(raw: Mapping[str, object], env_name: str | None = None) -> str:
    """The name build_spec gives an app, from its raw definition alone, for targets that name a file's apps
    without building them: `name` (or another spelling of it, the key's own winning as in _parse_keys), else
    the script's base name; "-<env>" appended with append_env_to_name and `--env <env>`. "" when neither."""
    spelled: dict[str, object] = {}
    for key, value in raw.items():
        if isinstance(key, str):
            setting = ALIASES.get(key, key)
            if setting not in spelled or key == setting:
                spelled[setting] = value
    name = spelled.get("name")
    if not isinstance(name, str) or not name:
        script = spelled.get("script")
        name = _default_name(script) if isinstance(script, str) else ""
    try:
        append = SETTINGS_BY_KEY["append_env_to_name"].parse(spelled.get("append_env_to_name", False))
    except ValueError:
        append = False  # build_spec reports the bad value when the app is started
    return f"{name}-{env_name}" if name and append and env_name else name


def _default_name(script: str) -> str:
    base = os.path.basename(script)
    stem, _ = os.path.splitext(base)
    return stem or base


def _namespace(values: Mapping[str, Any], app: _App) -> str:
    namespace: str = values.get("namespace", "default")
    if not namespace:
        raise app.fail("namespace", "cannot be empty")
    return namespace


def _exec_mode(values: Mapping[str, Any], interpreter: str, env: Mapping[str, str]) -> str:
    """PM2 runs `-i N` Node apps in cluster mode unless told otherwise, and other languages' instances as
    fork-mode processes (PM2 7, checked by tests/pm2/test_differential_cluster.py). An explicit exec_mode, or a
    port to share (`port`, or env.PORT when increment_var does not give each instance its own), still gets
    pmsd's shared socket in any language, where PM2's fork instances would collide on the port.
    execute_command: true means fork."""
    if values.get("execute_command"):
        return "fork"
    explicit: str | None = values.get("exec_mode")
    if explicit:
        return explicit
    if "instances" not in values:
        return "fork"
    shares_env_port = "PORT" in env and values.get("increment_var") != "PORT"
    return "cluster" if is_node(interpreter) or "port" in values or shares_env_port else "fork"


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
    return port if clustered else None  # a fork app's port only sets PORT (build_spec)


def _watch_paths(values: Mapping[str, Any], cwd: str) -> tuple[str, ...]:
    """Absolute paths to watch (relative ones start at cwd); empty: not watched."""
    return tuple(os.path.normpath(os.path.join(cwd, os.path.expanduser(path))) for path in values.get("watch") or ())


def _log_path(values: Mapping[str, Any], key: str, cwd: str, app: _App, warn: list[str]) -> str | None:
    """PM2 log paths are relative to the app's cwd; their directories are created at start, as PM2 does (what
    exists of the path must be directories). "NULL" and
    "/dev/null" mean no file, as in PM2 (lib/Common.js): the stream is discarded (DISCARD), or for log_file
    nothing changes. log_file true asks for PM2's default combined file: the journal already holds both
    streams together, so they stay there."""
    value = values.get(key)
    if value is True:
        warn.append(f"{app.source.label}: {app.label}: log_file: true: both streams stay in the journal, "
                    f"where they are together already (`pmsd logs`); give a path for a file")
        return None
    if not value:
        return None
    if value in ("NULL", DISCARD):
        return DISCARD if key != "log_file" else None
    path = _normalized(os.path.join(cwd, os.path.expanduser(values[key])))
    if os.path.isdir(path):
        raise app.fail(key, f"{path} is a directory; give a file path")
    existing = os.path.dirname(path)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise app.fail(key, f"{existing} is not a directory", "give a path whose directories are directories")
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
